"""A one-page PDF report of one assessed slice, for the case file.

It holds the scan, the heat-map overlay, the class probabilities, the model's
name and checksum, the date and time, and the decision-support note; never a
patient identifier (the de-identified header summary only). A tumour-map
network's report also holds the tumour outline on the scan and the area it
encloses, beside the call; its heat map only when one was chosen.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone

import numpy as np
from PIL import Image

from brain_cnn.inference.assessment import OUTLINE_CAPTION, CaseAssessment, SliceAssessment
from brain_cnn.reports.deidentify import case_label, redact

__all__ = ["case_report_pdf", "new_report"]

DISCLAIMER = ("Decision support, not a diagnosis. This research tool classifies single MRI slices; "
              "a qualified radiologist must read every study.")


def _png(array: np.ndarray) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    buffer.seek(0)
    return buffer


def _latin1(text: str) -> str:
    # The core PDF fonts are Latin-1; replace anything else rather than fail.
    return text.encode("latin-1", "replace").decode("latin-1")


def new_report(title: str):
    """An A4 ``FPDF`` document with its first page and ``title``, the font set for the body text."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    return pdf


def case_report_pdf(case: CaseAssessment, chosen: SliceAssessment, overlay: np.ndarray | None, method: str | None,
                    model_name: str, model_sha256: str, when: datetime | None = None,
                    heat_map_note: str | None = None) -> bytes:
    """The PDF bytes of a one-page report on ``chosen``, a slice of ``case``.

    ``overlay`` is the heat map of ``method`` over the scan; None (a tumour-map
    network shown by its outline) leaves it out. ``heat_map_note`` says what
    the heat map is worth (see :func:`brain_cnn.reports.sentences.trust_note`).
    """
    when = when or datetime.now(timezone.utc)
    pdf = new_report("brain-cnn case report")
    # File names can carry patient names: the case is its label, and every text below is written without them.
    def text(line: str) -> str:
        return _latin1(redact(line, case))

    pdf.multi_cell(0, 5, text(f"Case {case_label(case)}. Created {when.strftime('%Y-%m-%d %H:%M:%S %Z')}. "
                              f"Input SHA-256: {case.sha256}"
                              + (f"; slice {chosen.label_text} of {len(case.slices)}" if case.is_volume else "")),
                   new_x="LMARGIN", new_y="NEXT")
    pdf.set_fill_color(255, 243, 205)
    pdf.set_font("Helvetica", "B", 10)
    pdf.multi_cell(0, 6, _latin1(DISCLAIMER), fill=True, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 12)
    pdf.multi_cell(0, 7, text(chosen.summary()), new_x="LMARGIN", new_y="NEXT")
    if chosen.has_map:  # the area goes with the call
        pdf.multi_cell(0, 7, text(chosen.outline_text() + "."), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    if said := chosen.set_text():  # the conformal set and what it promises
        pdf.multi_cell(0, 5, text(f"{said[0].upper()}{said[1:]}. {chosen.set_note()}"), new_x="LMARGIN",
                       new_y="NEXT")
    for warning in chosen.warnings:
        pdf.multi_cell(0, 5, text("Warning: " + warning), new_x="LMARGIN", new_y="NEXT")
    for note in case.notes:  # what the reader decided, and how far the model goes on this kind of scan
        pdf.multi_cell(0, 5, text("Note: " + note), new_x="LMARGIN", new_y="NEXT")
    explained = list(chosen.probabilities)[chosen.class_index]
    images = [(chosen.display, "Scan, cropped to the head")]
    if chosen.has_map:
        images.append((chosen.outline_image(), OUTLINE_CAPTION))
    if overlay is not None:
        images.append((overlay, f"{method} heat map for '{explained}'"))
    # Side by side across the 180 mm between the margins: two at 85 mm, three at 58 mm.
    side, gap = (85, 10) if len(images) <= 2 else (58, 3)
    top = pdf.get_y() + 2
    for k, (image, _) in enumerate(images):
        pdf.image(_png(image), x=15 + k * (side + gap), y=top, w=side, h=side)
    pdf.set_font("Helvetica", "I", 8)
    bottom = top + side + 2
    for k, (_, caption) in enumerate(images):
        pdf.set_xy(15 + k * (side + gap), top + side + 2)
        pdf.multi_cell(side, 4, _latin1(caption), align="L", new_x="LEFT", new_y="NEXT")
        bottom = max(bottom, pdf.get_y())
    pdf.set_xy(pdf.l_margin, bottom)
    if overlay is not None and heat_map_note:
        pdf.multi_cell(0, 4, _latin1(heat_map_note), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "Class probabilities (temperature-calibrated)", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    for name, p in sorted(chosen.probabilities.items(), key=lambda item: -item[1]):
        pdf.cell(60, 6, _latin1(name))
        pdf.set_fill_color(42, 111, 151)
        pdf.cell(max(0.5, 100 * p), 5, "", fill=True)
        pdf.cell(0, 6, f"  {p:.1%}", new_x="LMARGIN", new_y="NEXT")
    if note := chosen.decision_note():  # the card's rule (tumour first) called another class than the largest
        pdf.set_font("Helvetica", "I", 9)
        pdf.multi_cell(0, 5, _latin1(note), new_x="LMARGIN", new_y="NEXT")
    if case.header:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 7, "Scan (de-identified)", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        for key, value in case.header.items():
            pdf.cell(0, 5, text(f"{key}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(0, 4, _latin1(f"Model: {model_name}, SHA-256 {model_sha256}"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())

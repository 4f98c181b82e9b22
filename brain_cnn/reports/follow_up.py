"""What the Follow-up page and its PDF show: each study's largest slice with the tumour's outline and its two
diameters drawn, the measures side by side, and the change."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import cv2
import numpy as np

from brain_cnn.inference.assessment import CaseAssessment
from brain_cnn.inference.study import Change, StudyMeasure
from brain_cnn.reports.deidentify import case_label, redact
from brain_cnn.reports.pdf import DISCLAIMER, _latin1, _png, new_report

__all__ = ["largest_slice_image", "measure_rows", "change_sentence", "follow_up_pdf", "RANO_NOTE", "trust_sentence"]

RANO_NOTE = ("The category follows RANO's thresholds on the product of the two diameters (at least 25 % larger: "
             "progression; at least 50 % smaller: partial response; gone: complete response; else stable). It is "
             "a measurement aid, not the RANO assessment, which also weighs new lesions, non-enhancing disease, "
             "steroid dose and the clinical state.")
OUTLINE, LONGEST, ACROSS = (255, 210, 0), (255, 80, 80), (80, 200, 255)


def trust_sentence(report: dict[str, Any] | None) -> str:
    """How far this model's measurements can be trusted, from its ``follow_up.json``
    (:mod:`brain_cnn.evaluation.studies`), in one sentence."""
    if not report or not report.get("by_sequence"):
        return "How well this model measures a study has not been measured against expert masks."
    parts = []
    for sequence, figures in report["by_sequence"].items():
        volume = figures.get("volume_error_percent", {})
        if volume.get("count"):
            parts.append(f"{sequence} {volume['median']:+.0f} % (worst {volume['worst_abs']:.0f} % off)")
    agreement = [c for f in report["by_sequence"].values() for level, c in f.get("category_agreement", {}).items()
                 if level == "all"]
    text = (f"Against expert masks on {report['by_sequence'][next(iter(report['by_sequence']))]['studies']} LGG "
            f"test patients, this model's tumour volumes differed from the experts' by a median of "
            f"{', '.join(parts)}.")
    if agreement:
        agree, total = sum(c["agree"] for c in agreement), sum(c["studies"] for c in agreement)
        text += (f" With the whole tumour painted out of a study, it called a complete response in {agree} of "
                 f"{total} comparisons: read its change with the images, never alone.")
    return text


def largest_slice_image(case: CaseAssessment, measure: StudyMeasure) -> np.ndarray | None:
    """The head crop of the study's largest slice (RGB) with the kept tumour's outline and the two diameters
    drawn; None when nothing is outlined."""
    if measure.largest_slice is None:
        return None
    chosen = case.slices[measure.largest_slice]
    display = chosen.display
    dx, dy = chosen.offset
    # The kept mask is in the slice's pixels; the display is the head crop, where (x, y) lies at (x+dx, y+dy).
    on_display = np.zeros(display.shape, np.uint8)
    mask = measure.mask[measure.largest_slice]
    h, w = mask.shape
    x0, y0 = max(0, -dx), max(0, -dy)
    x1, y1 = min(w, display.shape[1] - dx), min(h, display.shape[0] - dy)
    if x1 > x0 and y1 > y0:
        on_display[y0 + dy:y1 + dy, x0 + dx:x1 + dx] = mask[y0:y1, x0:x1]
    rgb = cv2.cvtColor(np.ascontiguousarray(display), cv2.COLOR_GRAY2RGB)
    thickness = max(1, round(max(display.shape) / 256))
    contours, _ = cv2.findContours(on_display, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(rgb, contours, -1, OUTLINE, thickness, lineType=cv2.LINE_AA)
    for ends, colour in ((measure.longest_ends, LONGEST), (measure.perpendicular_ends, ACROSS)):
        (ax, ay), (bx, by) = ends
        cv2.line(rgb, (round(ax + dx), round(ay + dy)), (round(bx + dx), round(by + dy)), colour, thickness,
                 lineType=cv2.LINE_AA)
    return rgb


def _length(value: float | None, units: str, square: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f} {units}{'²' if square else ''}"


def measure_rows(current: StudyMeasure, prior: StudyMeasure | None = None,
                 change: Change | None = None) -> list[dict[str, Any]]:
    """The measures as table rows: what, the prior study, the current study, the change."""

    def volume(m: StudyMeasure) -> str:
        return f"{m.volume_ml:,.2f} mL" if m.volume_ml is not None else f"{m.voxels:,} voxels"

    def largest(m: StudyMeasure) -> str:
        return "none outlined" if m.largest_slice is None else f"{m.largest_slice + 1} of {m.slices}"

    def diameter(m: StudyMeasure, k: int) -> str:
        return _length(m.diameters[k] if m.diameters else None, m.units)

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1f} %"

    rows = [("tumour volume", volume, percent(change.volume_percent) if change else ""),
            ("largest on slice", largest, ""),
            ("longest diameter", lambda m: diameter(m, 0), ""),
            ("perpendicular diameter", lambda m: diameter(m, 1), ""),
            ("product of the two", lambda m: _length(m.product, m.units, True),
             percent(change.product_percent) if change else "")]
    return [{"measure": name, **({"prior": show(prior)} if prior else {}), "current": show(current),
             **({"change": said} if prior else {})} for name, show, said in rows]


def change_sentence(change: Change) -> str:
    """One line for the change, its RANO category first."""
    said = [f"product {change.product_percent:+.1f} %" if change.product_percent is not None else None,
            f"volume {change.volume_percent:+.1f} %" if change.volume_percent is not None else None]
    return f"{change.category[0].upper()}{change.category[1:]}" + (
        f" ({', '.join(s for s in said if s)})" if any(said) else "") + " by RANO's thresholds."


def follow_up_pdf(current: tuple[CaseAssessment, StudyMeasure], prior: tuple[CaseAssessment, StudyMeasure] | None,
                  change: Change | None, model_name: str, model_sha256: str, when: datetime | None = None,
                  trust: str | None = None) -> bytes:
    """A one-page PDF of the follow-up: the largest slices with outline and diameters, the measures, the change.
    Cases are named by their labels; nothing that names a patient is written."""
    when = when or datetime.now(timezone.utc)
    pdf = new_report("brain-cnn follow-up report")
    studies = [("Prior", *prior)] if prior else []
    studies.append(("Current", *current))
    for title, case, _ in studies:
        pdf.multi_cell(0, 5, _latin1(f"{title} study: case {case_label(case)}, {len(case.slices)} slices"
                                     + (f", {case.sequence}" if case.sequence else "") + f"; input SHA-256 {case.sha256}"),
                       new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 5, _latin1(f"Created {when.strftime('%Y-%m-%d %H:%M:%S %Z')}."), new_x="LMARGIN", new_y="NEXT")
    pdf.set_fill_color(255, 243, 205)
    pdf.set_font("Helvetica", "B", 10)
    pdf.multi_cell(0, 6, _latin1(DISCLAIMER), fill=True, new_x="LMARGIN", new_y="NEXT")
    if change is not None:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 12)
        pdf.multi_cell(0, 7, _latin1(change_sentence(change)), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        for warning in change.warnings:
            pdf.multi_cell(0, 5, _latin1("Warning: " + warning), new_x="LMARGIN", new_y="NEXT")
    images = [(title, largest_slice_image(case, measure), measure) for title, case, measure in studies]
    side, top = 85, pdf.get_y() + 3
    for k, (title, image, measure) in enumerate(images):
        x = 15 + k * (side + 10)
        if image is not None:
            pdf.image(_png(image), x=x, y=top, w=side, h=side)
        pdf.set_xy(x, top + side + 1)
        pdf.set_font("Helvetica", "I", 8)
        caption = (f"{title}: slice {measure.largest_slice + 1}; outline (yellow), longest diameter (red), "
                   "perpendicular (blue)" if image is not None else f"{title}: no tumour outlined")
        pdf.multi_cell(side, 4, _latin1(caption), new_x="LEFT", new_y="NEXT")
    pdf.set_xy(pdf.l_margin, top + side + 12)
    rows = measure_rows(current[1], prior[1] if prior else None, change)
    pdf.set_font("Helvetica", "B", 10)
    widths = [55, 45, 45, 35][:len(rows[0])]
    for name, width in zip(rows[0], widths):
        pdf.cell(width, 6, _latin1(name), border="B")
    pdf.ln(6)
    pdf.set_font("Helvetica", "", 10)
    for row in rows:
        for value, width in zip(row.values(), widths):
            pdf.cell(width, 6, _latin1(str(value)))
        pdf.ln(6)
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 8)
    for title, case, measure in studies:
        for note in measure.notes:
            pdf.multi_cell(0, 4, _latin1(redact(f"{title}: {note}", case)), new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 4, _latin1(RANO_NOTE), new_x="LMARGIN", new_y="NEXT")
    if trust:
        pdf.multi_cell(0, 4, _latin1(trust), new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 4, _latin1(f"Model: {model_name}, SHA-256 {model_sha256}"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())

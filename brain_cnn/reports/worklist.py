"""A batch worklist: one row per assessed case, sortable, downloadable as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from brain_cnn.inference.assessment import CaseAssessment
from brain_cnn.inference.conformal import flagged
from brain_cnn.reports.deidentify import case_label, redact

__all__ = ["worklist_row", "worklist_csv", "audit_entry", "case_label", "sort_rows", "ORDERS", "SESSION_ONLY"]

# Columns shown in the session but never written to a download: a file name can carry a patient's name.
SESSION_ONLY = ("file",)
# A cell a spreadsheet would run as a formula (OWASP, CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def worklist_row(case: CaseAssessment, screening: float | None = None) -> dict[str, Any]:
    """The case's headline: the single slice, or the most suspicious slice of a volume.

    ``screening``: the screening mode's threshold on the tumour probability
    (:meth:`brain_cnn.inference.conformal.Conformal.screening_threshold`), for a "screening" column.

    A tumour-map network's case also has the area its outline encloses on
    that slice: in mm² where the file gives the pixel spacing (else empty),
    and in the slice's pixels, so either column sorts.
    """
    chosen = case.overall()
    row = {
        "file": case.name,
        "case": case_label(case),
        "slices": len(case.slices),
        "slice": redact(chosen.label_text, case) if case.is_volume else "",
        "sequence": case.sequence or "",  # a "no tumour" on a sequence the model misses tumours on reads differently
        "class": chosen.label or "",
        "probability": round(chosen.confidence, 4) if chosen.confidence is not None else None,
        "tumour probability": round(chosen.tumour_probability, 4) if chosen.tumour_probability is not None else None,
        "flags": ", ".join(chosen.flags),
        "refused slices": sum(s.refused for s in case.slices),
    }
    if screening is not None and chosen.tumour_probability is not None:
        row["screening"] = "tumour possible" if flagged(chosen.tumour_probability, screening) else "below threshold"
    if chosen.prediction_set is not None:  # a model with a conformal calibration
        row["prediction set"] = chosen.set_text()
        row["set size"] = len(chosen.prediction_set)
    if case.has_map:
        area = chosen.tumour_area
        row["tumour area (mm²)"] = round(area.mm2, 1) if area is not None and area.mm2 is not None else None
        row["tumour area (pixels)"] = area.pixels if area is not None else None
    return row


# How the worklist can be ordered: as uploaded, the least certain first (the largest conformal sets: the model
# could narrow these least), or the likeliest tumours first.
ORDERS = ("as uploaded", "largest prediction set first", "highest tumour probability first")


def sort_rows(rows: list[dict[str, Any]], order: str = ORDERS[0]) -> list[dict[str, Any]]:
    """The rows in ``order`` (:data:`ORDERS`); rows without the value (refused, no calibration) last, stably."""
    key = {ORDERS[1]: "set size", ORDERS[2]: "tumour probability"}.get(order)
    if key is None:
        return list(rows)
    return sorted(rows, key=lambda row: (row.get(key) is None, -(row.get(key) or 0)))


def _cell(value: Any) -> Any:
    """A value as a CSV cell that no spreadsheet runs: text starting like a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def worklist_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV, without the session-only columns (:data:`SESSION_ONLY`), every column any row has."""
    if not rows:
        return ""
    fields = [name for name in dict.fromkeys(k for row in rows for k in row) if name not in SESSION_ONLY]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def audit_entry(case: CaseAssessment, model_name: str, model_sha256: str) -> dict[str, Any]:
    """What the audit trail keeps of an assessment: no image, no identifiers; a tumour-map model's outlined area
    too, as it was shown."""
    row = worklist_row(case)
    entry = {"case": case_label(case), "input_sha256": case.sha256, "kind": case.kind, "slices": row["slices"], "model": model_name,
             "model_sha256": model_sha256, "sequence": row["sequence"], "result": row["class"] or "cannot assess",
             "probability": row["probability"], "flags": row["flags"]}
    if case.has_map:
        entry["tumour_area_mm2"], entry["tumour_area_pixels"] = row["tumour area (mm²)"], row["tumour area (pixels)"]
    return entry

"""A study's tumour measured as one: volume, the largest slice, RANO's two diameters, and the change since a
prior study.

The tumour is where the tumour map reaches :data:`~brain_cnn.inference.outline.OUTLINE_LEVEL` on each slice,
brought back to the slice's own pixels. Regions are connected across neighbouring slices (26-connectivity):
a region outlined on one slice only, in a study of several slices, is left out and reported (a tumour is a
3-D body; a lone blob is most often the map firing on one slice's anatomy). On the slice where the kept tumour
is largest, the longest diameter and the longest diameter perpendicular to it are measured in mm, as RANO's
bidimensional measurement (Wen et al., J Clin Oncol 2010; RANO 2.0, 2023) asks; each counts the pixels' own
extent, so a disc of diameter d measures d, not d less a pixel.

The category of a change follows RANO's thresholds on the product of the two diameters: at least 25 % larger
is progression, at least 50 % smaller a partial response, gone a complete response, else stable. It is a
measurement aid, not the RANO assessment, which also weighs new lesions, non-enhancing disease, steroids and
the clinical state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from brain_cnn.errors import BrainCnnError
from brain_cnn.inference.assessment import CaseAssessment
from brain_cnn.inference.outline import OUTLINE_LEVEL

__all__ = ["StudyMeasure", "Change", "DifferentPatients", "measure_masks", "measure_case", "compare",
           "PROGRESSION", "PARTIAL_RESPONSE", "COMPLETE_RESPONSE", "STABLE", "MEASURABLE_MM"]

PROGRESSION, PARTIAL_RESPONSE, COMPLETE_RESPONSE, STABLE = ("progression", "partial response", "complete response",
                                                            "stable")
NO_TUMOUR = "no tumour outlined in either study"
# RANO: measurable disease is at least 10 mm in both perpendicular diameters.
MEASURABLE_MM = 10.0
# Spacings that differ by more than this share make the two studies' figures hard to compare.
SPACING_TOLERANCE = 0.10


class DifferentPatients(BrainCnnError):
    """The two studies' DICOM headers name different patients."""


@dataclass
class StudyMeasure:
    """The tumour of one study. Lengths in mm and volume in mL where the study gives its spacing; otherwise
    in pixels and voxels (``units`` says which)."""

    slices: int
    units: str  # "mm" or "pixels"
    volume_ml: float | None  # None without a slice spacing
    voxels: int
    regions: int  # connected regions kept
    largest_slice: int | None  # index into the study's slices; None when nothing is outlined
    diameters: tuple[float, float] | None  # (longest, longest perpendicular to it), in ``units``
    product: float | None  # of the two diameters, in ``units``²
    # Ends of the two diameters on the largest slice, (x, y) in the slice's pixels, for drawing.
    longest_ends: tuple[tuple[float, float], tuple[float, float]] | None = None
    perpendicular_ends: tuple[tuple[float, float], tuple[float, float]] | None = None
    spacing: tuple[float, float, float] | None = None  # (row, column, slice) mm
    sequence: str | None = None
    notes: list[str] = field(default_factory=list)
    mask: np.ndarray | None = field(default=None, repr=False)  # (N, H, W) bool: the tumour kept
    patient_key: str | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        """The keys of ``brain-cnn study --json``; lengths in mm (null, with ``units`` "pixels", without)."""
        mm = self.units == "mm"
        return {
            "volume_ml": None if self.volume_ml is None else round(self.volume_ml, 3),
            "voxels": self.voxels,
            "largest_slice": None if self.largest_slice is None else self.largest_slice + 1,  # 1-based, as shown
            "diameters_mm": [round(d, 1) for d in self.diameters] if mm and self.diameters else None,
            "product_mm2": round(self.product, 1) if mm and self.product is not None else None,
            "diameters_pixels": [round(d, 1) for d in self.diameters] if not mm and self.diameters else None,
            "product_pixels": round(self.product, 1) if not mm and self.product is not None else None,
            "regions": self.regions, "slices": self.slices, "units": self.units,
            "spacing_mm": list(self.spacing) if self.spacing else None, "sequence": self.sequence,
            "notes": self.notes,
        }


def _diameters(mask: np.ndarray, row: float, col: float):
    """(longest, perpendicular, longest ends, perpendicular ends) of a 2-D mask with (row, col) pixel sizes.

    Pixel centres in mm; the longest diameter is the widest pair of the convex hull, plus the extent of
    one pixel along that direction; the perpendicular one is the widest extent across it among strips one
    pixel wide along it, plus one pixel's extent across.
    """
    import cv2

    ys, xs = np.nonzero(mask)
    points = np.stack([xs * col, ys * row], axis=1).astype(np.float64)
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64) if len(points) > 2 else points
    gaps = np.linalg.norm(hull[:, None, :] - hull[None, :, :], axis=-1)
    i, j = np.unravel_index(np.argmax(gaps), gaps.shape)
    a, b = hull[i], hull[j]
    direction = (b - a) / gaps[i, j] if gaps[i, j] > 0 else np.array([1.0, 0.0])
    across = np.array([-direction[1], direction[0]])

    def extent(unit):  # the length of one pixel (a col x row box) projected on a unit vector
        return abs(unit[0]) * col + abs(unit[1]) * row

    longest = gaps[i, j] + extent(direction)
    along, side = points @ direction, points @ across
    step = extent(direction)
    strips = np.floor((along - along.min()) / step).astype(int)
    widest, ends = 0.0, (points[0], points[0])
    for strip in np.unique(strips):
        inside = strips == strip
        low, high = side[inside].min(), side[inside].max()
        if high - low >= widest:
            widest = high - low
            centre = along[inside].mean()
            ends = (centre * direction + low * across, centre * direction + high * across)
    perpendicular = widest + extent(across)

    def pixel(p):  # mm back to (x, y) pixels
        return float(p[0] / col), float(p[1] / row)

    return longest, perpendicular, (pixel(a), pixel(b)), (pixel(ends[0]), pixel(ends[1]))


def measure_masks(masks: np.ndarray, pixel_spacing: tuple[float, float] | None = None,
                  slice_spacing: float | None = None, min_slices: int = 2) -> StudyMeasure:
    """Measure the tumour in ``masks`` ((N, H, W) bool, slices in order).

    Regions are connected in 3-D; in a study of more than one slice, a region on fewer than ``min_slices``
    slices is left out and said so. Without a pixel spacing lengths are in pixels, without a slice spacing
    the volume is in voxels only.
    """
    masks = np.asarray(masks, bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (slices, rows, columns), not {masks.shape}")
    notes = []
    labelled, count = ndimage.label(masks, structure=np.ones((3, 3, 3), bool))
    kept = np.zeros_like(masks)
    regions = 0
    for index, found in enumerate(ndimage.find_objects(labelled), start=1):
        depth = found[0].stop - found[0].start
        if len(masks) > 1 and depth < min_slices:
            z = found[0].start
            area = int((labelled[found] == index).sum())
            notes.append(f"an outline on slice {z + 1} alone ({area} pixels) was left out: it continues on no "
                         "neighbouring slice")
            continue
        kept |= labelled == index
        regions += 1
    units = "mm" if pixel_spacing else "pixels"
    row, col = (float(pixel_spacing[0]), float(pixel_spacing[1])) if pixel_spacing else (1.0, 1.0)
    voxels = int(kept.sum())
    volume = voxels * row * col * slice_spacing / 1000.0 if pixel_spacing and slice_spacing else None
    spacing = (row, col, float(slice_spacing)) if pixel_spacing and slice_spacing else None
    if not voxels:
        return StudyMeasure(len(masks), units, 0.0 if volume is not None else None, 0, 0, None, None, None,
                            spacing=spacing, notes=notes, mask=kept)
    areas = kept.reshape(len(kept), -1).sum(axis=1)
    largest = int(np.argmax(areas))
    longest, perpendicular, ends, across = _diameters(kept[largest], row, col)
    if units == "mm" and min(longest, perpendicular) < MEASURABLE_MM:
        notes.append(f"the tumour is under {MEASURABLE_MM:g} mm across on its largest slice: RANO counts it as "
                     "non-measurable")
    return StudyMeasure(len(masks), units, volume, voxels, regions, largest, (longest, perpendicular),
                        longest * perpendicular, ends, across, spacing, notes=notes, mask=kept)


def measure_case(case: CaseAssessment, level: float = OUTLINE_LEVEL) -> StudyMeasure:
    """Measure the tumour a tumour-map network outlined on the slices of ``case`` (refused slices count as
    nothing outlined, and are said so)."""
    if not case.has_map:
        raise BrainCnnError("this model draws no tumour map, so a study cannot be measured with it; choose a "
                            "tumour-map model")
    shape = case.slices[0].slice_shape or case.slices[0].display.shape
    if any((s.slice_shape or s.display.shape) != shape for s in case.slices):
        raise BrainCnnError("the study's slices differ in size, so they cannot be stacked into one volume")
    masks = np.stack([np.zeros(shape, bool) if s.refused else s.map_on_slice() >= level for s in case.slices])
    measure = measure_masks(masks, case.slices[0].pixel_spacing, case.slice_spacing)
    refused = sum(s.refused for s in case.slices)
    if refused:
        measure.notes.append(f"{refused} of {len(case.slices)} slices could not be assessed and count as no tumour")
    if case.spacing_note and len(case.slices) > 1:
        measure.notes.append(case.spacing_note + "; the volume is given in voxels")
    if case.slices[0].pixel_spacing is None:
        measure.notes.append("the file gives no pixel spacing: lengths are in pixels")
    measure.sequence, measure.patient_key = case.sequence, case.patient_key
    return measure


@dataclass
class Change:
    """The change from a prior study to the current one."""

    volume_percent: float | None
    product_percent: float | None
    category: str
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"volume_percent": None if self.volume_percent is None else round(self.volume_percent, 1),
                "product_percent": None if self.product_percent is None else round(self.product_percent, 1),
                "category": self.category, "warnings": self.warnings}


def _percent(now: float | None, before: float | None) -> float | None:
    if now is None or before is None or before == 0:
        return None
    return 100.0 * (now - before) / before


def category_of(product_now: float, product_before: float) -> str:
    """RANO's category for a change of the bidimensional product (a measurement aid, see the module)."""
    if product_before == 0:
        return NO_TUMOUR if product_now == 0 else PROGRESSION  # a tumour where none was outlined
    if product_now == 0:
        return COMPLETE_RESPONSE
    change = (product_now - product_before) / product_before
    if change >= 0.25:
        return PROGRESSION
    if change <= -0.50:
        return PARTIAL_RESPONSE
    return STABLE


def compare(current: StudyMeasure, prior: StudyMeasure, same_patient_confirmed: bool = False) -> Change:
    """The change from ``prior`` to ``current``.

    Raises:
        DifferentPatients: the DICOM headers name different patients, unless ``same_patient_confirmed``.
    """
    warnings = []
    if current.patient_key and prior.patient_key and current.patient_key != prior.patient_key:
        if not same_patient_confirmed:
            raise DifferentPatients("the two studies' DICOM headers name different patients; confirm that they "
                                    "are the same patient to compare them")
        warnings.append("the DICOM headers name different patients; compared because the user confirmed it")
    if current.units != prior.units:
        warnings.append("one study gives its pixel spacing and the other does not: the diameters are not "
                        "comparable")
    elif current.spacing and prior.spacing:
        differs = [name for name, a, b in zip(("row", "column", "slice"), current.spacing, prior.spacing)
                   if abs(a - b) > SPACING_TOLERANCE * max(a, b)]
        if differs:
            warnings.append(f"the studies' {' and '.join(differs)} spacings differ by more than "
                            f"{SPACING_TOLERANCE:.0%}: a change may come from the resolution, not the tumour")
    if current.sequence != prior.sequence:
        warnings.append(f"the studies are different sequences ({prior.sequence or 'unknown'} before, "
                        f"{current.sequence or 'unknown'} now): a tumour looks different sizes in each")
    if (current.volume_ml is None) != (prior.volume_ml is None):
        warnings.append("only one study gives its slice spacing: the volumes are compared in voxels")
    if current.volume_ml is not None and prior.volume_ml is not None:
        volume = _percent(current.volume_ml, prior.volume_ml)
    else:
        volume = _percent(current.voxels, prior.voxels)
    now, before = current.product or 0.0, prior.product or 0.0
    comparable = current.units == prior.units
    return Change(volume, _percent(now, before) if comparable else None,
                  category_of(now, before) if comparable else "not comparable", warnings)


# A study is measured with a tumour-map network: the default model when it draws maps, else this bundled one.
STUDY_MODEL = "brain-tumor-maps"


def study_files(path) -> list[tuple[str, bytes]]:
    """The files of a study given as a path: one file (NIfTI, DICOM, a ZIP of a series), or a folder of one
    DICOM series (searched recursively, hidden files skipped). Sizes are checked before anything is read."""
    from pathlib import Path

    from brain_cnn.scan.decode import MAX_BYTES

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise BrainCnnError(f"{path}: the folder holds no files")
        if sum(p.stat().st_size for p in files) > 2 * MAX_BYTES:
            raise BrainCnnError(f"{path}: the folder holds over {2 * MAX_BYTES // 2**20} MB; give one series")
        return [(str(p.relative_to(path)), p.read_bytes()) for p in files]
    if not path.is_file():
        raise BrainCnnError(f"{path}: no such file or folder")
    if path.stat().st_size > MAX_BYTES:
        raise BrainCnnError(f"{path}: the file is over the {MAX_BYTES // 2**20} MB limit")
    return [(path.name, path.read_bytes())]


def assess_study(predictor, files: list[tuple[str, bytes]], axis: int | None = None) -> CaseAssessment:
    """One study (:func:`study_files`, or uploads) assessed slice by slice: a lone file as it is, several
    files as one DICOM series."""
    from brain_cnn.inference.assessment import assess, assess_series
    from brain_cnn.scan.read import AXES, is_dicom

    if len(files) == 1:
        name, data = files[0]
        return assess(predictor, data, name, AXES["axial"] if axis is None else axis)
    dicoms = [(n, d) for n, d in files if is_dicom(d, n)]
    if not dicoms:
        raise BrainCnnError("a study of several files must be one DICOM series; these hold no DICOM file")
    return assess_series(predictor, dicoms)

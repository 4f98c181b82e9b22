"""An uploaded case, assessed: the call for every slice, how sure it is, and what to say.

The app renders a :class:`CaseAssessment`; everything it says is decided here,
where it is tested. A case is one upload (an image, a DICOM file, a NIfTI
volume, a ZIP of a series) or several DICOM files of one series.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from brain_cnn.data.classes import is_no_tumour
from brain_cnn.inference.conformal import guarantee_note, set_text
from brain_cnn.inference.outline import OUTLINE_LEVEL, TumourArea, brain_mask, draw_outline, map_on_slice, \
    map_on_square, outline_doubt, tumour_area
from brain_cnn.inference.predictor import SliceCall
from brain_cnn.model.card import read_external
from brain_cnn.reports.sentences import decision_note, sequence_note
from brain_cnn.scan.preprocess import prepare_slice
from brain_cnn.scan.read import AXES, Scan, read_scan, read_study

__all__ = ["SliceAssessment", "CaseAssessment", "assess", "assess_series", "assess_stack", "LOW_CONFIDENCE", "CLOSE_CALL_MARGIN",
           "RANKINGS", "OUTLINE_CAPTION"]

# Below this top-class probability the app warns that the call is uncertain.
LOW_CONFIDENCE = 0.70
# If the two most likely classes are closer than this, the app says so.
CLOSE_CALL_MARGIN = 0.20
# How the slices of a study can be ranked: by the call's tumour probability, or (a tumour-map network) by the
# area its outline encloses.
RANKINGS = ("probability", "tumour area")
# Under the outline image, in the app and the PDF.
OUTLINE_CAPTION = f"Tumour outline: where the tumour map reaches {OUTLINE_LEVEL:.0%}"


@dataclass
class SliceAssessment:
    """The model's answer for one slice, ready to display."""

    label_text: str  # file name, or the slice's position in a volume
    display: np.ndarray  # head crop at its own resolution, uint8 (H, W)
    model_input: np.ndarray  # (S, S, 1) uint8, what the network saw
    call: SliceCall
    offset: tuple[int, int] = (0, 0)  # (dx, dy): a slice pixel (x, y) lies at (x + dx, y + dy) in ``display``
    slice_shape: tuple[int, int] | None = None  # (H, W) of the slice as uploaded
    pixel_spacing: tuple[float, float] | None = None  # (row, column) mm, where the file tells it

    @property
    def has_map(self) -> bool:
        return self.call.tumour_map is not None

    def map_on_display(self) -> np.ndarray | None:
        """The tumour map over ``display`` (the head crop), or None for a network without maps."""
        return None if not self.has_map else map_on_square(self.call.tumour_map, self.display.shape[0])

    def map_on_slice(self) -> np.ndarray | None:
        """The tumour map in the uploaded slice's own coordinates, or None."""
        if not self.has_map:
            return None
        shape = self.slice_shape or self.display.shape
        return map_on_slice(self.call.tumour_map, self.offset, self.display.shape[0], shape)

    @cached_property
    def outline_doubt(self) -> str | None:
        """Why the map's outline is not shown as the tumour (:func:`~brain_cnn.inference.outline.outline_doubt`):
        it contradicts the call, or lies where maps fire on normal anatomy; None when it is shown (or absent)."""
        if not self.has_map or self.refused:
            return None
        square = map_on_square(self.call.tumour_map, self.model_input.shape[0])
        if not (square >= OUTLINE_LEVEL).any():  # nothing outlined: no brain mask needed
            return None
        return outline_doubt(square, brain_mask(self.model_input[..., 0]), not is_no_tumour(self.label))

    @cached_property  # the map resized to the whole slice: counted once, as a study's ranking asks every slice
    def tumour_area(self) -> TumourArea | None:
        """Area inside the outline, counted on the slice (mm² with a pixel spacing); none for a doubtful outline
        (:attr:`outline_doubt`); None without a map or when refused."""
        if not self.has_map or self.refused:
            return None
        if self.outline_doubt:
            return TumourArea(0, None if self.pixel_spacing is None else 0.0)
        return tumour_area(self.map_on_slice(), self.pixel_spacing)

    def outline_text(self) -> str | None:
        """What the outline encloses, said beside the call; None for a network without maps.

        "Tumour outline: 1,234 mm²" (pixels where the file gives no pixel spacing), "No tumour outlined", or,
        for a slice the model cannot assess, that there is no outline.
        """
        if not self.has_map:
            return None
        if self.refused:
            return "No tumour outline: the model cannot assess this slice"
        if self.outline_doubt:
            return f"Outline uncertain, not drawn as the tumour: {self.outline_doubt}"
        area = self.tumour_area
        return f"Tumour outline: {area}" if area.pixels else "No tumour outlined"

    def outline_image(self) -> np.ndarray | None:
        """The head crop (RGB) with the tumour map's outline on it; none drawn on a refused slice or for a doubtful
        outline (:attr:`outline_doubt`); None without a map."""
        full = self.map_on_display()
        if full is None:
            return None
        return draw_outline(self.display, np.zeros_like(full) if self.refused or self.outline_doubt else full)

    @property
    def probabilities(self) -> dict[str, float]:
        return self.call.probabilities

    @property
    def refused(self) -> bool:
        return self.call.refusal is not None

    @property
    def label(self) -> str | None:
        return self.call.label

    @property
    def confidence(self) -> float | None:
        return None if self.refused else self.probabilities[self.label]

    @property
    def class_index(self) -> int:
        """Index of the class to explain: the call, or the top class of a refused slice."""
        return list(self.probabilities).index(self.call.top_class if self.refused else self.label)

    def decision_note(self) -> str | None:
        """Why the call is not the most probable class (the card's rule is tumour first, and the tumour classes
        together outweighed no tumour, or the other way round); None when it is the most probable class."""
        if self.refused or self.label == self.call.top_class:
            return None
        normal = sum(p for c, p in self.probabilities.items() if is_no_tumour(c))
        return decision_note(self.label, 1.0 - normal, normal, not is_no_tumour(self.label))

    @property
    def tumour_probability(self) -> float | None:
        """1 - P(no-tumour classes), or None without a no-tumour class or for a refused slice."""
        negative = [c for c in self.probabilities if is_no_tumour(c)]
        if self.refused or not negative or len(negative) == len(self.probabilities):
            return None
        return 1.0 - sum(self.probabilities[c] for c in negative)

    @property
    def prediction_set(self) -> list[str] | None:
        """The conformal set (most likely class first), or None for a refused slice or a model without
        calibration (:mod:`brain_cnn.inference.conformal`)."""
        return None if self.refused else self.call.prediction_set

    def set_text(self) -> str | None:
        """"90% set: glioma or meningioma"; None without a set."""
        chosen = self.prediction_set
        return None if chosen is None else set_text(chosen, list(self.probabilities), self.call.coverage)

    def set_note(self, gate_limit: float | None = None) -> str | None:
        """What the set's guarantee means and when it does not hold, with this slice's gate distance."""
        if self.prediction_set is None:
            return None
        return guarantee_note(self.call.coverage, self.call.distance, gate_limit)

    @property
    def warnings(self) -> list[str]:
        if self.refused:
            return []
        ranked = sorted(self.probabilities.items(), key=lambda item: item[1], reverse=True)
        (first, p1), (second, p2) = ranked[0], ranked[1]
        notes = []
        if p1 < LOW_CONFIDENCE:
            notes.append(f"Low confidence: the top class has only {p1:.0%}. Treat this call as uncertain.")
        if p1 - p2 < CLOSE_CALL_MARGIN:
            notes.append(f"Close call between {first} ({p1:.0%}) and {second} ({p2:.0%}).")
        return notes

    @property
    def flags(self) -> list[str]:
        """Short flags for a worklist: refused, low confidence, close call."""
        if self.refused:
            return ["cannot assess"]
        return [w.split(":")[0].split(" between")[0].lower() for w in self.warnings]

    def summary(self) -> str:
        """One sentence a clinician can read at a glance."""
        if self.refused:
            return self.call.refusal[0].upper() + self.call.refusal[1:] + "."
        tumour = self.tumour_probability
        if tumour is None:
            return f"Most likely {self.label} ({self.confidence:.0%})."
        if is_no_tumour(self.label):
            return f"No tumour seen: {self.label} ({self.confidence:.0%}); tumour classes together {tumour:.0%}."
        return f"Tumour suspected: most likely {self.label} ({self.confidence:.0%}); probability of no tumour {1 - tumour:.0%}."


@dataclass
class CaseAssessment:
    """Every slice of one case, with the scan's de-identified header."""

    name: str
    kind: str  # "image", "dicom", "nifti"
    sha256: str  # of the uploaded bytes (all files of a series, in upload order)
    slices: list[SliceAssessment]
    header: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sequence: str | None = None  # the MRI sequence, where a DICOM header tells it ("T2", "T1C+", ...)
    file_names: list[str] = field(default_factory=list)  # never written out of the session (see Scan)
    label: str | None = None  # a case label the user typed, for what leaves the session
    slice_spacing: float | None = None  # mm between slices, where the file tells it (see Scan)
    spacing_note: str | None = None
    patient_key: str | None = None  # this process's keyed hash of the DICOM PatientID (see Scan)

    @property
    def is_volume(self) -> bool:
        return len(self.slices) > 1

    def start_index(self) -> int:
        """The slice to show first: the middle one of a volume."""
        return len(self.slices) // 2

    @property
    def has_map(self) -> bool:
        """Assessed by a tumour-map network: every slice has an outline and an area."""
        return any(s.has_map for s in self.slices)

    def most_suspicious(self, count: int = 3) -> list[int]:
        """Indices of the slices most likely to show a tumour (assessable slices only)."""
        scored = [(s.tumour_probability, i) for i, s in enumerate(self.slices) if s.tumour_probability is not None]
        return [i for _, i in sorted(scored, reverse=True)[:count]]

    def largest_tumours(self, count: int = 3) -> list[int]:
        """Indices of the slices with the largest outlined tumour, largest first.

        Assessable slices with something outlined only (none for a network
        without maps); equal areas go by tumour probability, then slice order.
        """
        scored = [(-s.tumour_area.pixels, -(s.tumour_probability or 0.0), i)
                  for i, s in enumerate(self.slices) if s.tumour_area is not None and s.tumour_area.pixels]
        return [i for *_, i in sorted(scored)[:count]]

    def top_slices(self, by: str = RANKINGS[0], count: int = 3) -> list[int]:
        """The ``count`` slices to look at first, ranked ``by`` one of :data:`RANKINGS`.

        Raises:
            ValueError: an unknown ranking.
        """
        if by == "probability":
            return self.most_suspicious(count)
        if by == "tumour area":
            return self.largest_tumours(count)
        raise ValueError(f"unknown ranking {by!r}; choose from {', '.join(RANKINGS)}")

    def slice_button_text(self, index: int) -> str:
        """A slice in the strip of suspicious slices: its number, tumour probability and, with a map, its area."""
        chosen = self.slices[index]
        said = [f"tumour {chosen.tumour_probability:.0%}"] if chosen.tumour_probability is not None else []
        if chosen.tumour_area is not None:
            said.append(str(chosen.tumour_area) if chosen.tumour_area.pixels else "nothing outlined")
        return f"slice {index + 1}" + (f" ({', '.join(said)})" if said else "")

    def overall(self) -> SliceAssessment:
        """The slice that speaks for the case: the single slice, or the most suspicious one."""
        if not self.is_volume:
            return self.slices[0]
        top = self.most_suspicious(1)
        return self.slices[top[0]] if top else self.slices[self.start_index()]


def _assess_scan(predictor, scan: Scan, name: str, sha: str) -> CaseAssessment:
    prepared = [prepare_slice(s, predictor.image_size) for s in scan.slices]
    inputs = np.stack([p.model_input for p in prepared])
    calls = predictor.call_slices(scan, inputs)
    slices = [SliceAssessment(label, p.crop, p.model_input, call, p.offset, grey.shape, scan.pixel_spacing)
              for label, p, call, grey in zip(scan.slice_labels, prepared, calls, scan.slices)]
    notes = list(scan.notes)
    if scan.sequence is not None:  # how far this model can be trusted on this kind of scan
        notes.append(sequence_note(scan.sequence.name, scan.sequence.evidence, read_external(predictor.loaded.folder),
                                   predictor.card.trained_data_sets()))
    return CaseAssessment(name, scan.kind, sha, slices, scan.header, notes,
                          scan.sequence.name if scan.sequence is not None else None,
                          list(dict.fromkeys([name, *scan.file_names])), slice_spacing=scan.slice_spacing,
                          spacing_note=scan.spacing_note, patient_key=scan.patient_key)


def assess_stack(predictor, scan: Scan) -> CaseAssessment:
    """Classify the slices of a :class:`Scan` made in code (a data set's slices stacked as one study)."""
    return _assess_scan(predictor, scan, scan.name, hashlib.sha256(scan.slices.tobytes()).hexdigest())


def assess(predictor, data: bytes, name: str, axis: int = AXES["axial"]) -> CaseAssessment:
    """Read and classify one uploaded file (image, DICOM, NIfTI, ZIP of a series).

    Raises:
        UnreadableImageError: the file cannot be read, with the reason.
    """
    return _assess_scan(predictor, read_scan(data, name, axis), name, hashlib.sha256(data).hexdigest())


def assess_series(predictor, files: list[tuple[str, bytes]]) -> CaseAssessment:
    """Several DICOM files of one series as one case, slices sorted by position."""
    digest = hashlib.sha256()
    for _, data in files:
        digest.update(data)
    scan = read_study(files)
    return _assess_scan(predictor, scan, scan.name, digest.hexdigest())

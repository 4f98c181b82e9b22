"""One uploaded scan, assessed: the call, how sure it is, and a plain-language summary.

The app renders an :class:`Assessment`; everything it says is decided here,
where it is tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .decode import decode_image
from .metrics import is_no_tumour
from .preprocess import crop_to_head, resize_square

__all__ = ["Assessment", "assess", "LOW_CONFIDENCE", "CLOSE_CALL_MARGIN"]

# Below this top-class probability the app warns that the call is uncertain.
LOW_CONFIDENCE = 0.70
# If the two most likely classes are closer than this, the app says so.
CLOSE_CALL_MARGIN = 0.20


@dataclass
class Assessment:
    """The model's answer for one scan, ready to display."""

    name: str
    display: np.ndarray  # head crop at its own resolution, uint8 (H, W), for showing
    model_input: np.ndarray  # (S, S, 1) uint8, what the network saw
    probabilities: dict[str, float]
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    @property
    def class_index(self) -> int:
        return list(self.probabilities).index(self.label)

    def summary(self) -> str:
        """One sentence a clinician can read at a glance."""
        classes = list(self.probabilities)
        negative = [c for c in classes if is_no_tumour(c)]
        if not negative or len(negative) == len(classes):
            return f"Most likely {self.label} ({self.confidence:.0%})."
        p_none = sum(self.probabilities[c] for c in negative)
        if is_no_tumour(self.label):
            return f"No tumour seen: {self.label} ({self.confidence:.0%}); tumour classes together {1 - p_none:.0%}."
        return (f"Tumour suspected: most likely {self.label} ({self.confidence:.0%}); "
                f"probability of no tumour {p_none:.0%}.")


def _warnings(probabilities: dict[str, float]) -> list[str]:
    ranked = sorted(probabilities.items(), key=lambda item: item[1], reverse=True)
    (first, p1), (second, p2) = ranked[0], ranked[1]
    notes = []
    if p1 < LOW_CONFIDENCE:
        notes.append(f"Low confidence: the top class has only {p1:.0%}. Treat this call as uncertain.")
    if p1 - p2 < CLOSE_CALL_MARGIN:
        notes.append(f"Close call between {first} ({p1:.0%}) and {second} ({p2:.0%}).")
    return notes


def assess(predictor, data: bytes, name: str) -> Assessment:
    """Decode, prepare and classify one file's bytes.

    Raises:
        UnreadableImageError: the bytes are not a readable image.
    """
    display = crop_to_head(decode_image(data, name))
    model_input = resize_square(display, predictor.image_size)  # = prepare(), keeping the crop to show
    probs = predictor.predict_inputs(model_input[None])[0]
    probabilities = {c: float(p) for c, p in zip(predictor.classes, probs)}
    return Assessment(name=name, display=display, model_input=model_input,
                      probabilities=probabilities, warnings=_warnings(probabilities))

"""Which class a model calls from its probabilities: the top class, or tumour first.

The top class can call a tumour "no tumour" that the model itself thinks
likely: with P(notumor) = 0.40, P(glioma) = 0.30 and P(meningioma) = 0.30 the
model gives a tumour 60 %, yet the top class is "notumor". For a screening
tool that is the worst mistake to make, so the Bayes rule for the question
that matters first, is there a tumour, decides first (**tumour first**):
tumour when the tumour classes together hold at least as much as the
no-tumour classes (at least 50 %; a tie goes to tumour), then the most
probable tumour class; otherwise the most probable no-tumour class. A model
without a no-tumour class, or with only no-tumour classes, keeps the top class.

Each model card names its rule (``ModelCard.decision``); the Predictor, the
evaluation, screening and the app all call through :func:`decide`.

Example:
    >>> decide(np.array([[0.3, 0.3, 0.4]]), ["glioma", "meningioma", "notumor"], TUMOUR_FIRST).tolist()
    [0]
    >>> called_class({"glioma": 0.3, "meningioma": 0.3, "notumor": 0.4}, TOP_CLASS)
    'notumor'
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from brain_cnn.data.classes import is_no_tumour

__all__ = ["TOP_CLASS", "TUMOUR_FIRST", "DECISIONS", "check_decision", "decide", "called_class"]

TOP_CLASS = "top class"
TUMOUR_FIRST = "tumour first"
DECISIONS = (TOP_CLASS, TUMOUR_FIRST)

# Probabilities that differ by less than this are a tie (sums of floats rarely tie exactly); a tie goes to tumour.
_TIE = 1e-9


def check_decision(rule: str) -> str:
    """``rule`` if it is one of :data:`DECISIONS`.

    Raises:
        ValueError: an unknown rule.
    """
    if rule not in DECISIONS:
        raise ValueError(f"unknown decision rule {rule!r}; choose from {', '.join(map(repr, DECISIONS))}")
    return rule


def decide(probabilities: np.ndarray, classes: Sequence[str], rule: str = TOP_CLASS) -> np.ndarray:
    """The called class index of each row of ``probabilities`` (N, K) under ``rule``.

    Args:
        probabilities: (N, K) class probabilities, rows summing to 1.
        classes: the K class names in output order (which are no-tumour classes: ``is_no_tumour``).
        rule: :data:`TOP_CLASS` or :data:`TUMOUR_FIRST`.

    Returns:
        (N,) int class indices.

    Raises:
        ValueError: an unknown rule, or probabilities whose columns are not the classes.
    """
    check_decision(rule)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(classes):
        raise ValueError(f"probabilities of shape {probabilities.shape} do not fit {len(classes)} classes")
    top = probabilities.argmax(axis=1)
    negative = np.array([is_no_tumour(c) for c in classes])
    if rule == TOP_CLASS or not negative.any() or negative.all():
        return top
    tumours, normals = np.flatnonzero(~negative), np.flatnonzero(negative)
    tumour = probabilities[:, tumours].sum(axis=1)
    normal = probabilities[:, normals].sum(axis=1)
    called = tumour >= normal - _TIE
    return np.where(called, tumours[probabilities[:, tumours].argmax(axis=1)],
                    normals[probabilities[:, normals].argmax(axis=1)])


def called_class(probabilities: Mapping[str, float], rule: str = TOP_CLASS) -> str:
    """The called class name for one slice's ``{class: probability}`` (see :func:`decide`)."""
    classes = list(probabilities)
    return classes[int(decide(np.array([[probabilities[c] for c in classes]]), classes, rule)[0])]

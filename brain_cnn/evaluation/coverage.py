"""How a model folder's conformal sets and screening threshold did on held-out images.

The guarantee (:mod:`brain_cnn.inference.conformal`) holds on scans
exchangeable with the calibration images; these figures say whether it held
on a given split, so a source where it does not is shown plainly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import binom

from brain_cnn.data.classes import is_no_tumour
from brain_cnn.inference.conformal import DEFAULT_COVERAGE, DEFAULT_MISSED_RATE, Conformal, CoverageError, \
    tumour_probability

__all__ = ["set_figures", "screening_figures"]


def _rate(part: np.ndarray) -> float | None:
    return round(float(part.mean()), 5) if part.size else None


def _short(hits: np.ndarray, level: float) -> bool | None:
    """Whether the share of hits lies below ``level`` by more than chance: a one-sided binomial test at 5 %
    (fewer hits than exchangeable scans would give once in twenty). None without images."""
    if not hits.size:
        return None
    return bool(binom.cdf(int(hits.sum()), hits.size, level) < 0.05)


def set_figures(conformal: Conformal, probabilities: np.ndarray, labels: np.ndarray, classes: list[str],
                coverage: float = DEFAULT_COVERAGE, missed_rate: float = DEFAULT_MISSED_RATE) -> dict[str, Any]:
    """Empirical coverage and set sizes at ``coverage``, overall, per class and at the level of tumour / no
    tumour, and the screening threshold's realised missed-tumour rate.

    ``labels``: class indices, -1 for a tumour of a type the model has no class for (it counts for tumour /
    no tumour only). A presence-level hit: a tumour slice's set holds a tumour class, a normal slice's a
    no-tumour class.
    """
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, int)
    sets = conformal.sets(probabilities, coverage)
    sizes = sets.sum(axis=1)
    known = labels >= 0
    hit = sets[np.flatnonzero(known), labels[known]]
    negative = np.array([is_no_tumour(c) for c in classes])
    normal = known & np.isin(labels, np.flatnonzero(negative))
    presence_hit = np.where(normal, sets[:, negative].any(axis=1), sets[:, ~negative].any(axis=1)) \
        if negative.any() else None
    figures: dict[str, Any] = {
        "coverage_level": coverage,
        "images": int(len(labels)),
        "coverage": _rate(hit),
        # Below the level by more than chance: the scans are not like the calibration scans.
        "coverage_short": _short(hit, coverage),
        "mean_set_size": _rate(sizes[known]),
        "empty_sets": int((sizes == 0).sum()),
        "sets_of_every_class": int((sizes == len(classes)).sum()),
        "size_counts": {str(k): int((sizes == k).sum()) for k in range(len(classes) + 1) if (sizes == k).any()},
        "per_class": {c: {"images": int((labels == i).sum()), "coverage": _rate(hit[labels[known] == i]),
                          "mean_set_size": _rate(sizes[labels == i])}
                      for i, c in enumerate(classes) if (labels == i).any()},
    }
    if presence_hit is not None:
        figures["presence_coverage"] = _rate(presence_hit)
        figures["presence_coverage_short"] = _short(presence_hit, coverage)
        figures["screening"] = screening_figures(conformal, tumour_probability(probabilities, classes), ~normal,
                                                 missed_rate)
    return figures


def screening_figures(conformal: Conformal, presence: np.ndarray, tumour: np.ndarray,
                      missed_rate: float = DEFAULT_MISSED_RATE) -> dict[str, Any]:
    """The screening threshold at ``missed_rate`` and what it did: the share of tumours it missed and of
    normal slices it flagged."""
    presence, tumour = np.asarray(presence, np.float64), np.asarray(tumour, bool)
    try:
        threshold = conformal.screening_threshold(missed_rate)
    except CoverageError as error:
        return {"missed_rate_bound": missed_rate, "unavailable": str(error)}
    flagged = presence >= threshold - 1e-12
    return {
        "missed_rate_bound": missed_rate,
        "threshold": round(threshold, 6),
        "tumours": int(tumour.sum()),
        "missed": int((tumour & ~flagged).sum()),
        "missed_rate": _rate(~flagged[tumour]),
        "normals": int((~tumour).sum()),
        "normals_flagged": int((~tumour & flagged).sum()),
        "normals_flagged_rate": _rate(flagged[~tumour]),
    }

"""Hiding a box under black instead of painting it over (``tumour_deletion.py --fill black``).

A black hole can itself look like a lesion (a glioma's dark necrotic core),
so ``explain-eval``'s removal test paints boxes over from their surroundings
(:func:`brain_cnn.evaluation.explanations.hide_box`); this is the comparison.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hide_black"]


def hide_black(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A copy of ``image`` (S, S, 1) with ``box`` (x0, y0, x1, y1) black."""
    out = image.copy()
    x0, y0, x1, y1 = box
    out[y0:y1, x0:x1] = 0
    return out

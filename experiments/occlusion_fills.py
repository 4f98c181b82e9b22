"""What an occluding square shows, besides the product's black: the slice blurred, or the head's mean grey.

Measured against the expert tumour boxes by ``occlusion_variants.py``
(docs/experiments.md); neither moved the peak onto the tumour, so the app's
occlusion stays black.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["FILLS", "occlusion_fill"]

FILLS = ("black", "blur", "mean")


def occlusion_fill(pixels: np.ndarray, fill: str, side: int) -> np.ndarray:
    """What an occluding square of ``side`` pixels shows at each place (S, S) ``uint8``.

    Raises:
        ValueError: an unknown fill.
    """
    if fill == "black":
        return np.zeros_like(pixels)
    if fill == "blur":
        return cv2.GaussianBlur(pixels, (0, 0), side / 2)
    if fill == "mean":
        head = pixels > 20  # brighter than the dark background around the head
        return np.full_like(pixels, int(round(float(pixels[head].mean()))) if head.any() else 0)
    raise ValueError(f"unknown occlusion fill {fill!r}; choose from {', '.join(FILLS)}")

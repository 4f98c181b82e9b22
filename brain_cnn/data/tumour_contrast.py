"""How bright a masked tumour is against the brain around it: the contrast bands the map network is judged on.

Every tumour-map network so far finds the tumours that stand out bright and misses those about as bright as
the brain or darker (non-enhancing gliomas, T1 without contrast): docs/tumour-maps.md. The bands name them, so
training can draw them more often and each epoch can be scored on them.
"""

from __future__ import annotations

import cv2
import numpy as np

# (name, low, high): the contrast in grey levels (0-255, the model input), low inclusive.
BANDS = (("dark", -256.0, -10.0), ("alike", -10.0, 10.0), ("bright", 10.0, 256.0))


def contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean grey level inside ``mask`` minus the mean of the head's pixels in a ring 3-6 pixels outside it
    (NaN where nothing lies around the mask).

    ``image`` and ``mask`` are 2-D and of one size; ``mask`` is boolean and not empty.
    """
    near = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    far = cv2.dilate(mask.astype(np.uint8), np.ones((13, 13), np.uint8)).astype(bool)
    ring = far & ~near & (image > 10)  # the head, not the black around it
    if not ring.any():
        ring = far & ~near
    if not ring.any():  # a mask that fills the image: nothing around it to compare with
        return float("nan")
    return float(image[mask].mean() - image[ring].mean())


def band_of(level: float) -> str:
    """The name of the band a contrast falls in (the bands are contiguous, lowest first); ``""`` for NaN."""
    if np.isnan(level):
        return ""
    return next((name for name, _, high in BANDS if level < high), BANDS[-1][0])


def bands(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The band of each (image, mask) pair, ``""`` where the mask is empty or fills the image.

    ``images``: (N, H, W[, 1]) grey levels; ``masks``: the same shape, boolean or any value above 127 inside
    the tumour.
    """
    images = images.reshape(images.shape[:3])
    masks = masks.reshape(masks.shape[:3])
    masks = masks if masks.dtype == bool else masks > 127
    return np.array([band_of(contrast(image, mask)) if mask.any() else "" for image, mask in zip(images, masks)],
                    dtype=object).astype(str)

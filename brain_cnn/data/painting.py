"""Painting a region out of a slice: the removal test's edit, and the training counterfactuals made the same way.

A region (a tumour's mask, or the same shape moved elsewhere in the brain) is
grown by a few pixels to take its rim and filled from the tissue around it by
inpainting. Two fills: Telea's, which the removal test uses
(:mod:`brain_cnn.evaluation.tumour_maps`), and Navier-Stokes, which the
training counterfactuals use (:mod:`brain_cnn.training.tumour_maps`), so
that a network cannot pass the test by knowing the one fill it saw.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

__all__ = ["TELEA", "NAVIER_STOKES", "paint_out", "clear_margin", "moved_region", "brain_regions", "brain_region"]

TELEA, NAVIER_STOKES = "telea", "navier-stokes"
# The inpainting radius: how far from the grown region the fill reads the tissue it copies.
RADIUS = 5
_FILLS = {TELEA: (cv2.INPAINT_TELEA, 2), NAVIER_STOKES: (cv2.INPAINT_NS, 3)}  # method, pixels the region grows by


def paint_out(image: np.ndarray, region: np.ndarray, fill: str = TELEA) -> np.ndarray:
    """``image`` (S, S, 1 uint8) with ``region`` (S, S bool) grown to take its rim and filled from around it.

    Telea: grown by 2 px (the removal test); Navier-Stokes: by 3 px (training).
    """
    method, grow = _FILLS[fill]
    grown = cv2.dilate(region.astype(np.uint8), np.ones((2 * grow + 1,) * 2, np.uint8))
    return cv2.inpaint(np.ascontiguousarray(image[..., 0]), grown, RADIUS, method)[..., None]


def clear_margin(fill: str) -> int:
    """How far (pixels) a region painted out with ``fill`` is kept from a tumour: more than the fill grows the
    region by, so no tumour pixel is painted. (The fill still reads the tissue up to :data:`RADIUS` pixels
    beyond, so a region this close may copy some of the tumour's brightness; a margin that excluded that
    would leave no place for most large tumours.)"""
    return _FILLS[fill][1] + 1


def moved_region(region: np.ndarray, brain: np.ndarray, rng: np.random.Generator, tries: int = 200,
                 margin: int = 0) -> np.ndarray | None:
    """``region`` shifted to a place inside ``brain`` clear of where it was (by ``margin`` pixels); None if none
    is found. A margin larger than the fill's growth keeps the painting off the region itself."""
    ys, xs = np.nonzero(region)
    clear = cv2.dilate(region.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)) > 0 if margin else region
    side = region.shape[0]
    for _ in range(tries):
        dy, dx = rng.integers(-side // 2, side // 2, size=2)
        y, x = ys + dy, xs + dx
        if y.min() < 0 or x.min() < 0 or y.max() >= side or x.max() >= side:
            continue
        moved = np.zeros_like(region)
        moved[y, x] = True
        if brain[moved].all() and not (moved & clear).any():
            return moved
    return None


def brain_regions(pixels: np.ndarray) -> list[np.ndarray | None]:
    """Where the brain can be in each model input (N, S, S): what :class:`~brain_cnn.model.layers.BrainOnly`
    keeps; None for an image with no head.

    The same mask a brain-only network sees through, so "peak off the brain"
    and "elsewhere in the brain" mean the same for every model.
    """
    masks = np.asarray(_brain_only().brain_mask(pixels[..., None].astype(np.float32) / 255.0))[..., 0] > 0.5
    return [mask if mask.any() else None for mask in masks]


def brain_region(pixels: np.ndarray) -> np.ndarray | None:
    """:func:`brain_regions` of one model input (S, S)."""
    return brain_regions(pixels[None])[0]


@functools.lru_cache(maxsize=1)
def _brain_only():
    from brain_cnn.model.layers import BrainOnly  # Keras: imported when first needed

    return BrainOnly()

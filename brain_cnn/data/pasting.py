"""Tumours shown in every look: expert-masked tumours pasted into tumour-free slices of other sources.

Object-level copy-paste after TumorCP (Yang et al., MICCAI 2021) and CarveMix
(Zhang et al., MICCAI 2021). The donor's tumour (its mask's pixels) is cut
out, flipped, turned and rescaled at random, placed where a tumour of its
kind could be in the target's brain, its intensities matched to the target's
brain, its edge blended; the pasted slice is a tumour of the donor's type with
the pasted mask. Whole looks (sequences, scanners) of this project's training
sources show tumour-free brains only; with pasting each of them shows a mass
labelled a tumour too, and with the painted-out twins
(:mod:`brain_cnn.data.painting`) the same slice without one.

Intensities are matched by quantile inside the brain: a tumour pixel at the
q-th quantile of the donor's brain becomes the target brain's q-th quantile
(histogram matching; ranks, so the tumour's texture, are kept). Which way a
tumour's contrast runs depends on the sequence (bright on FLAIR and T2, dark
on T1 without contrast), and no source says its sequence for every slice, so
a share of the pastes take the quantile turned round (1 - q), as SynthSeg
(Billot et al., 2023) randomises tissue contrast rather than guess it.

Plausible places: inside the brain, clear of its centre (the ventricles and
the midline structures, where the slice's own anatomy is brightest or
darkest) and not across the midline; a meningioma, which grows from the
meninges, touching the brain's edge; pituitary tumours, which sit at the
sella, are not pasted.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Paste", "paste_tumour", "allowed_places", "match_quantiles", "INVERTED_SHARE"]

# The share of pastes whose tumour contrast is turned round (see the module's docstring).
INVERTED_SHARE = 1 / 3
# Edge blending: the mask's edge softened over about this many pixels (at 128 px).
BLEND_SIGMA = 1.5
# The largest pasted tumour, as a share of the target's brain area.
MAX_BRAIN_SHARE = 0.25


@dataclass(frozen=True)
class Paste:
    """One pasted slice: the image (S, S, 1 uint8), its tumour mask (S, S, 1 uint8, 0/255), and whether the
    tumour's contrast was turned round."""

    image: np.ndarray
    mask: np.ndarray
    inverted: bool


def allowed_places(brain: np.ndarray, edge: bool) -> np.ndarray:
    """Where a pasted tumour's pixels may lie in a brain (S, S bool).

    Inside the brain 3 px from its edge, outside an ellipse at its centre (an eighth of its width and 15 % of
    its height each way from the centre: the lateral ventricles and the deep midline structures of an axial
    slice) and off a band along its vertical centre line (the falx; a twentieth of its width). ``edge``: only the ring within 8 px of the brain's edge
    (meningiomas); a tumour placed there still has to lie in the brain.
    """
    brain8 = brain.astype(np.uint8)
    inner = cv2.erode(brain8, np.ones((7, 7), np.uint8)) > 0
    ys, xs = np.nonzero(brain)
    if len(ys) == 0:
        return np.zeros_like(brain, bool)
    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    cy, cx = (top + bottom) / 2, (left + right) / 2
    half_h, half_w = max((bottom - top) / 2, 1), max((right - left) / 2, 1)
    yy, xx = np.mgrid[:brain.shape[0], :brain.shape[1]]
    centre = ((yy - cy) / (0.3 * half_h)) ** 2 + ((xx - cx) / (0.25 * half_w)) ** 2 <= 1
    midline = np.abs(xx - cx) <= 0.05 * half_w
    allowed = inner & ~centre & ~midline
    if edge:
        ring = brain & ~(cv2.erode(brain8, np.ones((17, 17), np.uint8)) > 0)
        return allowed | (ring & inner)
    return allowed


def match_quantiles(values: np.ndarray, donor_brain: np.ndarray, target_brain: np.ndarray,
                    inverted: bool = False) -> np.ndarray:
    """``values`` (donor pixels) mapped from the donor brain's intensity distribution onto the target brain's:
    each value's quantile among ``donor_brain``'s pixels, read off ``target_brain``'s (1 - q when ``inverted``)."""
    donor_sorted = np.sort(donor_brain.astype(np.float32).ravel())
    quantile = (np.searchsorted(donor_sorted, values.astype(np.float32), side="left")
                + np.searchsorted(donor_sorted, values.astype(np.float32), side="right")) / (2.0 * len(donor_sorted))
    if inverted:
        quantile = 1.0 - quantile
    return np.quantile(target_brain.astype(np.float32).ravel(), np.clip(quantile, 0.0, 1.0))


def _transformed(patch: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The tumour's crop and mask flipped, turned by a multiple of 90 degrees and rescaled by 0.8-1.25 at random."""
    if rng.random() < 0.5:
        patch, region = patch[:, ::-1], region[:, ::-1]
    turns = int(rng.integers(4))
    patch, region = np.rot90(patch, turns), np.rot90(region, turns)
    scale = float(rng.uniform(0.8, 1.25))
    size = (max(int(round(patch.shape[1] * scale)), 1), max(int(round(patch.shape[0] * scale)), 1))
    patch = cv2.resize(np.ascontiguousarray(patch, np.float32), size, interpolation=cv2.INTER_LINEAR)
    region = cv2.resize(np.ascontiguousarray(region, np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return patch, region


def paste_tumour(donor: np.ndarray, tumour: np.ndarray, donor_brain: np.ndarray, target: np.ndarray,
                 target_brain: np.ndarray, rng: np.random.Generator, meningioma: bool = False,
                 inverted: bool = False, tries: int = 20) -> Paste | None:
    """The donor's tumour pasted into the target slice; None when it finds no plausible place.

    Args:
        donor, target: model inputs (S, S, 1 uint8).
        tumour: the donor's expert mask (S, S bool).
        donor_brain, target_brain: their brains (S, S bool, :func:`brain_cnn.data.painting.brain_regions`).
        meningioma: the tumour must touch the target brain's edge (:func:`allowed_places`).
        inverted: the tumour's contrast turned round (:func:`match_quantiles`).
    """
    ys, xs = np.nonzero(tumour)
    if len(ys) == 0 or donor_brain.sum() < 50 or target_brain.sum() < 50:
        return None
    top, left = ys.min(), xs.min()
    patch = donor[top:ys.max() + 1, left:xs.max() + 1, 0].astype(np.float32)
    region = tumour[top:ys.max() + 1, left:xs.max() + 1]
    patch, region = _transformed(patch, region, rng)
    if region.sum() > MAX_BRAIN_SHARE * target_brain.sum():
        return None
    allowed = allowed_places(target_brain, meningioma)
    edge_ring = target_brain & ~(cv2.erode(target_brain.astype(np.uint8), np.ones((17, 17), np.uint8)) > 0)
    h, w = region.shape
    if h >= target_brain.shape[0] or w >= target_brain.shape[1]:
        return None
    # Where the tumour's top-left corner can go with every one of its pixels allowed: an erosion by its shape
    # anchored at the corner (outside the slice counts as not allowed).
    fits = cv2.erode(allowed.astype(np.uint8), np.ascontiguousarray(region, np.uint8), anchor=(0, 0),
                     borderType=cv2.BORDER_CONSTANT, borderValue=0)
    corners = np.argwhere(fits > 0)
    if not len(corners):
        return None
    for y, x in corners[rng.permutation(len(corners))[:tries]]:
        placed = np.zeros_like(target_brain, bool)
        placed[y:y + h, x:x + w] = region
        if not allowed[placed].all() or (meningioma and not edge_ring[placed].any()):
            continue
        values = match_quantiles(patch[region], donor[..., 0][donor_brain], target[..., 0][target_brain], inverted)
        pasted = target[..., 0].astype(np.float32).copy()
        pasted[placed] = values
        # Outside the tumour the pasted slice is the target, so the blur softens the edge from inside.
        alpha = cv2.GaussianBlur(placed.astype(np.float32), (0, 0), BLEND_SIGMA)
        image = alpha * pasted + (1 - alpha) * target[..., 0].astype(np.float32)
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)[..., None]
        return Paste(image, (placed.astype(np.uint8) * 255)[..., None], inverted)
    return None

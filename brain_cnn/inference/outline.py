"""A tumour map brought back to its slice: the outline, the area, the map in the input's own coordinates.

A tumour-map network (:mod:`brain_cnn.model.tumour_maps`) maps the model
input: the head crop padded to a square (:func:`brain_cnn.scan.preprocess.prepare_slice`)
and resized, at half its resolution. Here the map is resized to the square
and the crop is undone (``offset``), so the outline lies on the slice as it
was uploaded and the area is counted in the slice's own pixels, which the
DICOM's pixel spacing turns into mm².
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["OUTLINE_LEVEL", "OFF_BRAIN", "MIRRORED", "TumourArea", "map_on_square", "map_on_slice", "outline",
           "brain_mask", "outline_doubt", "tumour_area", "draw_outline", "map_png"]

# Where the outline is drawn, and what the area and Dice count: the map at even odds.
OUTLINE_LEVEL = 0.5
# An outline is not drawn as the tumour when it lands where a map fires on normal anatomy (outline_doubt): more
# than this share of it outside the brain (skull, scalp fat, background) ...
OFF_BRAIN = 0.5
# ... or in two or more parts that lie alike on both sides of the midline (the overlap, intersection over union,
# of the outlined region and its mirror image about the brain's midline at least this): the lateral ventricles,
# bright on T2, are paired and symmetric; a tumour seldom is. A single part across the midline (a pituitary
# tumour) is not doubted.
MIRRORED = 0.3


def map_on_square(tumour_map: np.ndarray, side: int) -> np.ndarray:
    """The (h, w) map resized (bilinear) to the ``side`` x ``side`` head crop."""
    return cv2.resize(np.asarray(tumour_map, np.float32), (side, side), interpolation=cv2.INTER_LINEAR)


def map_on_slice(tumour_map: np.ndarray, offset: tuple[int, int], side: int, shape: tuple[int, int]) -> np.ndarray:
    """The map in the slice's own coordinates (``shape`` = (H, W)); 0 outside the head crop.

    ``offset`` (dx, dy) and ``side`` are those of the slice's
    :class:`~brain_cnn.scan.preprocess.PreparedSlice`: a slice pixel (x, y)
    lies at (x + dx, y + dy) in the square crop.
    """
    square = map_on_square(tumour_map, side)
    dx, dy = offset
    height, width = shape
    out = np.zeros((height, width), np.float32)
    # The part of the slice the square covers, and where it lies in the square.
    x0, y0 = max(0, -dx), max(0, -dy)
    x1, y1 = min(width, side - dx), min(height, side - dy)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = square[y0 + dy : y1 + dy, x0 + dx : x1 + dx]
    return out


def outline(full_map: np.ndarray, level: float = OUTLINE_LEVEL) -> list[np.ndarray]:
    """The contours (OpenCV point arrays) of where ``full_map`` reaches ``level``; empty when nowhere."""
    found = (np.asarray(full_map) >= level).astype(np.uint8)
    contours, _ = cv2.findContours(found, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return list(contours)


def brain_mask(image: np.ndarray) -> np.ndarray | None:
    """Where the brain can be in a model input (S, S) ``uint8``: the mask of
    :class:`~brain_cnn.model.layers.BrainOnly` (the head as the crop finds it, opened, holes filled, less the
    outer :data:`~brain_cnn.scan.preprocess.RIM` of the side), in OpenCV: a millisecond, where the layer run
    eagerly for one slice takes fifty. None when no head is found."""
    from brain_cnn.scan.preprocess import HEAD_LEVEL, RIM

    blurred = cv2.blur(np.asarray(image, np.float32), (5, 5))
    head = (blurred > min(HEAD_LEVEL, 0.2 * float(blurred.max()))).astype(np.uint8)
    head = cv2.morphologyEx(head, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))

    def both_sides(axis: int) -> np.ndarray:
        return np.maximum.accumulate(head, axis=axis) & np.flip(np.maximum.accumulate(np.flip(head, axis), axis), axis)

    filled = both_sides(0) & both_sides(1)
    radius = max(1, round(RIM * head.shape[0]))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    brain = cv2.erode(filled, disc, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    return brain if brain.any() else None


def outline_doubt(square_map: np.ndarray, brain: np.ndarray | None, called_tumour: bool,
                  level: float = OUTLINE_LEVEL) -> str | None:
    """Why the outline of ``square_map`` (the map over the model input, (S, S)) should not be shown as the tumour;
    None when it can be (or when there is nothing outlined).

    ``brain``: the brain mask of the same input (:func:`brain_mask`), None when no head was found; ``called_tumour``: whether the call is a tumour (an outline beside a "no tumour" call contradicts it).
    """
    found = np.asarray(square_map) >= level
    if not found.any():
        return None
    if not called_tumour:
        return "the tumour map marks a region, but the call is no tumour"
    side = found.shape[1]
    if brain is not None and brain.shape == found.shape:
        if (found & ~brain).sum() > OFF_BRAIN * found.sum():
            return "most of it lies outside the brain (skull, scalp or background), where normal tissue is often bright"
        columns = np.flatnonzero(brain.any(axis=0))
        midline = (columns[0] + columns[-1]) / 2
    else:
        midline = (side - 1) / 2
    parts, _ = cv2.connectedComponents(found.astype(np.uint8))
    if parts - 1 >= 2:
        source = np.rint(2 * midline - np.arange(side)).astype(int)  # the column each column mirrors
        inside = (source >= 0) & (source < side)
        mirror = np.zeros_like(found)
        mirror[:, inside] = found[:, source[inside]]
        if (found & mirror).sum() >= MIRRORED * (found | mirror).sum():
            return "it lies alike on both sides of the midline, as the ventricles do"
    return None


@dataclass(frozen=True)
class TumourArea:
    """The area where the map reaches the outline level, in the slice's pixels and, with a spacing, in mm²."""

    pixels: int
    mm2: float | None = None

    def __str__(self) -> str:
        if self.mm2 is not None:
            return f"{self.mm2:,.0f} mm²" if self.mm2 >= 10 else f"{self.mm2:.1f} mm²"
        return f"{self.pixels:,} pixels"


def tumour_area(full_map: np.ndarray, spacing: tuple[float, float] | None = None,
                level: float = OUTLINE_LEVEL) -> TumourArea:
    """Area of ``full_map`` (in the slice's coordinates) at or above ``level``; mm² from (row, column) spacing."""
    pixels = int((np.asarray(full_map) >= level).sum())
    return TumourArea(pixels, None if spacing is None else pixels * float(spacing[0]) * float(spacing[1]))


def draw_outline(grey: np.ndarray, full_map: np.ndarray, colour: tuple[int, int, int] = (255, 210, 0),
                 level: float = OUTLINE_LEVEL) -> np.ndarray:
    """An RGB copy of the ``uint8`` slice with the map's outline drawn on it (2 px on a 512 px image)."""
    rgb = cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2RGB)
    thickness = max(1, round(max(grey.shape) / 256))
    cv2.drawContours(rgb, outline(full_map, level), -1, colour, thickness, lineType=cv2.LINE_AA)
    return rgb


def map_png(full_map: np.ndarray) -> bytes:
    """The map as an 8-bit PNG: probability 0-1 as 0-255."""
    scaled = np.clip(np.rint(np.asarray(full_map, np.float32) * 255), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", scaled)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 array
        raise RuntimeError("the map could not be encoded as PNG")
    return encoded.tobytes()

"""From a decoded greyscale slice to the array the network sees.

The one preprocessing path of the project: training, evaluation, the CLI and
the app all call :func:`load_scan` (or :func:`prepare` on decoded pixels), so
a model never sees at serving time anything it did not see in training.
Bump :data:`PREPROCESSING_VERSION` whenever the output of this module changes;
model cards record it and loading refuses a mismatch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from brain_cnn.errors import UnreadableImageError
from brain_cnn.scan.read import read_scan

__all__ = [
    "PREPROCESSING_VERSION",
    "HeadBox",
    "find_head",
    "crop_to_head",
    "crop_to_head_with_offset",
    "square_crop",
    "PreparedSlice",
    "prepare_slice",
    "prepare",
    "resize_square",
    "load_scan",
    "load_slices",
    "load_prepared",
    "read_file",
]

PREPROCESSING_VERSION = "1"
# A slice is roughly square; padding a 65000x48 strip to a square would take gigabytes.
MAX_ASPECT = 8
# Threads for decoding many files: Pillow and OpenCV release the GIL.
DECODE_WORKERS = min(8, (os.cpu_count() or 1) * 2)


# The head is what is brighter than a fifth of the slice's brightest level, capped at this.
HEAD_LEVEL = 45.0
# Skull and scalp together are about 1 cm thick on a head about 15 cm across, and
# after the crop the head fills the square: a band of 7 % of the side inside the
# head's outline holds them (see brain_cnn.model.layers.BrainOnly).
RIM = 0.07

HeadBox = tuple[int, int, int, int]  # (x0, y0, x1, y1) in the decoded slice


def find_head(grey: np.ndarray) -> HeadBox:
    """Locate the head in a slice: bounding box of the largest bright blob.

    Public data sets mix tight crops with slices that float in wide black
    margins (and burnt-in text); cropping to the head puts every source on
    the same scale. If nothing sensible is found the whole image is kept.
    """
    height, width = grey.shape
    whole = (0, 0, width, height)
    blurred = cv2.GaussianBlur(grey, (5, 5), 0)
    level = float(np.percentile(blurred, 99.5))
    if level < 8:  # blank or nearly black image
        return whole
    threshold = min(HEAD_LEVEL, 0.2 * level)
    mask = (blurred > threshold).astype(np.uint8)
    kernel = np.ones((5, 5), np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel, iterations=2)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return whole
    largest = max(contours, key=cv2.contourArea)
    x, y, w, h = cv2.boundingRect(largest)
    if w * h < 0.05 * width * height:
        return whole
    margin = int(round(0.02 * max(w, h)))
    return (
        max(0, x - margin), max(0, y - margin), min(width, x + w + margin), min(height, y + h + margin)
    )


def crop_to_head(grey: np.ndarray) -> np.ndarray:
    """Crop to :func:`find_head` and pad with black to a centred square."""
    return crop_to_head_with_offset(grey)[0]


def crop_to_head_with_offset(grey: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`crop_to_head`, and the (dx, dy) that maps an original pixel (x, y) to (x + dx, y + dy) in the square."""
    height, width = grey.shape
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise UnreadableImageError(f"the image is {width}x{height} pixels, too elongated to be a scan slice")
    return square_crop(grey, find_head(grey))


def square_crop(array: np.ndarray, box: HeadBox) -> tuple[np.ndarray, tuple[int, int]]:
    """``array`` cropped to ``box`` and padded with zeros to a centred square, and the (dx, dy) of
    :func:`crop_to_head_with_offset`. A tumour mask goes through this with its slice's box."""
    x0, y0, x1, y1 = box
    crop = array[y0:y1, x0:x1]
    h, w = crop.shape
    side = max(h, w)
    square = np.zeros((side, side), dtype=array.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = crop
    return square, (left - x0, top - y0)


@dataclass(frozen=True)
class PreparedSlice:
    """One slice on its way to the network, with what the app and the box scores need of the way."""

    crop: np.ndarray  # the head crop padded to a square, at the slice's own resolution (shown in the app)
    offset: tuple[int, int]  # (dx, dy): an original pixel (x, y) lies at (x + dx, y + dy) in ``crop``
    model_input: np.ndarray  # (S, S, 1) uint8: what the network sees


def prepare_slice(grey: np.ndarray, image_size: int) -> PreparedSlice:
    """Crop to the head and resize, keeping the crop and where it lies in the slice.

    The network scales to [0, 1] itself, so the cached training set and the
    served input are the same compact ``uint8`` array.
    """
    if grey.ndim != 2:
        raise UnreadableImageError(f"expected a 2-D greyscale slice, got shape {grey.shape}")
    square, offset = crop_to_head_with_offset(grey)
    return PreparedSlice(square, offset, resize_square(square, image_size))


def prepare(grey: np.ndarray, image_size: int) -> np.ndarray:
    """The model input of one decoded slice: ``uint8`` array of shape (S, S, 1) (see :func:`prepare_slice`)."""
    return prepare_slice(grey, image_size).model_input


def resize_square(square: np.ndarray, image_size: int) -> np.ndarray:
    """Second step of :func:`prepare`: a square head crop to (S, S, 1)."""
    interpolation = cv2.INTER_AREA if square.shape[0] > image_size else cv2.INTER_CUBIC
    resized = cv2.resize(square, (image_size, image_size), interpolation=interpolation)
    return resized[:, :, None]


def read_file(path: str | Path) -> bytes:
    """Read a file's bytes, mapping OS errors to a clear message."""
    path = Path(path)
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise UnreadableImageError(f"{path.name}: is a folder, not a file") from None
    except FileNotFoundError:
        raise UnreadableImageError(f"{path}: no such file") from None
    except PermissionError:
        raise UnreadableImageError(f"{path.name}: permission denied") from None
    except OSError as error:
        raise UnreadableImageError(f"{path.name}: cannot be read ({error.strerror})") from None


def load_scan(source: str | Path | bytes, image_size: int, name: str | None = None) -> np.ndarray:
    """One-slice file (path or bytes) to model input (S, S, 1) ``uint8``; see :func:`prepare`.

    Images and single-frame DICOM files are read; a volume (multi-frame
    DICOM, NIfTI) is refused here: use :func:`load_slices` for those.

    Raises:
        UnreadableImageError: when the file cannot be read or decoded.
    """
    inputs, scan = load_slices(source, image_size, name)
    if scan.is_volume:
        raise UnreadableImageError(f"{scan.name}: a volume of {len(inputs)} slices, not a single slice")
    return inputs[0]


def load_slices(source: str | Path | bytes, image_size: int, name: str | None = None):
    """Any supported file to model inputs (N, S, S, 1) ``uint8`` and its :class:`~brain_cnn.scan.read.Scan`."""
    scan = _read_scan(source, name)
    return np.stack([prepare(s, image_size) for s in scan.slices]), scan


def load_prepared(source: str | Path | bytes, image_size: int, name: str | None = None):
    """:func:`load_slices` keeping each slice's head crop and offset: a :class:`PreparedSlice` per slice, and the
    :class:`~brain_cnn.scan.read.Scan` (to bring a tumour map back to its slice)."""
    scan = _read_scan(source, name)
    return [prepare_slice(s, image_size) for s in scan.slices], scan


def _read_scan(source: str | Path | bytes, name: str | None):
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "upload"
    else:
        data, label = read_file(source), name or Path(source).name
    return read_scan(data, label)

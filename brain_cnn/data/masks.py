"""Tumour masks of a data set, brought through the same head crop as their images.

Masks sit beside a data set as ``<data set>-masks/``: either mirroring the
images' paths (``brain-tumor-mri-masks/Training/glioma/Tr-gl_0001.png`` for
``brain-tumor-mri/Training/glioma/Tr-gl_0001.jpg``) or flat by file stem
(``brain-tumor-lgg-masks/<case>_<slice>.png``, one mask for the slice's three
co-registered sequences). 0 is background, anything above 127 tumour.

What a sample's mask says (:func:`mask_status`):

* ``MASK``: a mask file exists: train and measure on it;
* ``EMPTY``: a no-tumour image: the mask is known to be empty;
* ``UNKNOWN``: a tumour image without a mask: the segmentation loss must not
  see it (no mask file does not mean no tumour).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from brain_cnn.errors import UnreadableImageError
from brain_cnn.scan.preprocess import find_head, read_file, resize_square, square_crop

__all__ = ["MASK", "EMPTY", "UNKNOWN", "mask_folder", "mask_file", "mask_status", "read_mask", "prepare_pair"]

MASK, EMPTY, UNKNOWN = "mask", "empty", "unknown"


def mask_folder(data_root: str | Path) -> Path | None:
    """The ``<data set>-masks/`` folder beside a data set, if there is one; for a folder of data sets (a model
    trained on several, its paths "<data set>/..."), the folder itself when some data set in it has masks
    (:func:`mask_file` then looks in ``<data set>-masks/``)."""
    root = Path(data_root).resolve()
    candidate = root.parent / f"{root.name}-masks"
    if candidate.is_dir():
        return candidate
    if _holds_mask_folders(root):
        return root
    return None


@functools.lru_cache(maxsize=64)
def _holds_mask_folders(folder: Path) -> bool:
    return any(c.is_dir() and c.name.endswith("-masks") for c in folder.iterdir()) if folder.is_dir() else False


def mask_file(masks: Path, relative: str) -> Path | None:
    """The mask of the image at ``relative`` (a path inside the data set): mirrored path, else flat by stem; in a
    folder of data sets, the same inside ``<data set>-masks/`` for a path "<data set>/..."."""
    parts = Path(relative).parts
    if len(parts) > 1 and _holds_mask_folders(masks):  # a folder of data sets: never its images as masks
        inside = masks / f"{parts[0]}-masks"
        return mask_file(inside, str(Path(*parts[1:]))) if inside.is_dir() else None
    mirrored = (masks / relative).with_suffix(".png")
    if mirrored.is_file():
        return mirrored
    flat = masks / f"{Path(relative).stem}.png"
    return flat if flat.is_file() else None


def mask_status(masks: Path | None, relative: str, no_tumour: bool) -> tuple[str, Path | None]:
    """(status, mask file) of one image; see the module docstring."""
    found = mask_file(masks, relative) if masks is not None else None
    if found is not None:
        return MASK, found
    return (EMPTY if no_tumour else UNKNOWN), None


def read_mask(path: str | Path) -> np.ndarray:
    """A mask file as a (H, W) ``uint8`` array of 0 and 255.

    Raises:
        UnreadableImageError: the file cannot be decoded.
    """
    data = np.frombuffer(read_file(path), np.uint8)
    mask = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise UnreadableImageError(f"{Path(path).name}: not a readable mask image")
    return np.where(mask > 127, 255, 0).astype(np.uint8)


def prepare_pair(grey: np.ndarray, mask: np.ndarray | None, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A slice and its mask (None: empty) to model input and target, both (S, S, 1) ``uint8``.

    The head box is found on the slice (as :func:`brain_cnn.scan.preprocess.prepare`
    does) and the mask is cropped, padded and resized with the same box, so the
    two stay aligned pixel for pixel. A mask of another size than its slice is
    resized to it first.

    Raises:
        UnreadableImageError: the slice is not 2-D.
    """
    if grey.ndim != 2:
        raise UnreadableImageError(f"expected a 2-D greyscale slice, got shape {grey.shape}")
    box = find_head(grey)
    image = resize_square(square_crop(grey, box)[0], image_size)
    if mask is None:
        return image, np.zeros_like(image)
    if mask.shape != grey.shape:
        mask = cv2.resize(mask, (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_NEAREST)
    target = resize_square(square_crop(mask, box)[0], image_size)
    return image, np.where(target > 127, 255, 0).astype(np.uint8)

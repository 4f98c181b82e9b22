"""Scoring a tumour map against expert masks: Dice and whether the map's peak lies inside the tumour.

Shared by ``brain-cnn evaluate`` (a model's own test split, or another data
set screened), and the tumour-map measurement (:mod:`brain_cnn.evaluation.tumour_maps`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from brain_cnn.data.masks import MASK, mask_folder
from brain_cnn.errors import DatasetError, ModelFolderError
from brain_cnn.model.tumour_maps import map_output

__all__ = ["dice", "map_scores", "masks_for", "split_map_scores"]


def dice(truth: np.ndarray, found: np.ndarray) -> float:
    """Dice overlap of two boolean masks; 1.0 when both are empty (a correct "nothing here")."""
    total = truth.sum() + found.sum()
    return 1.0 if total == 0 else float(2 * (truth & found).sum() / total)


def map_scores(maps: np.ndarray, masks: np.ndarray) -> dict[str, Any]:
    """Mean Dice and the share of peaks inside the tumour, over images whose mask is not empty."""
    side = masks.shape[1]
    dices, inside = [], []
    for found, truth in zip(maps[..., 0], masks[..., 0] > 127):
        if not truth.any():
            continue
        full = cv2.resize(found, (side, side), interpolation=cv2.INTER_LINEAR)
        dices.append(dice(truth, full > 0.5))
        inside.append(bool(truth.flat[int(np.argmax(full))]))
    return {"images": len(dices), "mean_dice": round(float(np.mean(dices)), 4) if dices else None,
            "median_dice": round(float(np.median(dices)), 4) if dices else None,
            "peak_inside": round(float(np.mean(inside)), 4) if inside else None,
            "dice_counted": "per image with a non-empty expert mask; the map above 0.5, upsampled to the input"}


def masks_for(loaded, root: Path, masks: str | Path | None) -> Path | None:
    """The tumour masks to measure the maps on: ``masks``, else the data's ``-masks`` folder; None for a model
    without tumour maps (its evaluation decodes no masks)."""
    has_map = map_output(loaded.model) is not None
    if masks is not None:
        if not has_map:
            raise ModelFolderError(f"--masks needs a model with tumour maps; {loaded.folder} has none")
        if not Path(masks).is_dir():
            raise DatasetError(f"masks folder not found: {masks}")
        return Path(masks)
    return mask_folder(root) if has_map else None


def split_map_scores(decoded, maps: np.ndarray, masks: Path, keep: np.ndarray | None = None) -> dict[str, Any]:
    """Dice and peak inside the tumour over the decoded images with a tumour mask (among ``keep``, when given);
    the others counted."""
    keep = np.ones(len(decoded.labels), bool) if keep is None else keep
    has_mask = (decoded.mask_status == MASK) & keep  # a mask file; map_scores counts those that are not empty
    scores = map_scores(maps[has_mask][..., None], decoded.masks[has_mask])
    with_tumour = scores.pop("images")
    return {"masks": str(masks), "with_tumour_mask": with_tumour,
            "without_tumour_mask": int(keep.sum()) - with_tumour, **scores,
            "unreadable_masks": [{"file": f, "error": e} for f, e in decoded.unreadable_masks
                                 if keep[decoded.files.index(f)]]}

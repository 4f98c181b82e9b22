"""What the tumour map's half resolution costs: the Dice a perfect map at that resolution could reach.

The tumour-map network draws its map at half the input's resolution (64 x 64
at 128 px) and the outline is that map brought up to the input and cut at
0.5. A perfect map at that resolution holds, in each cell, the share of the
cell that is tumour; brought up and cut the same way, its Dice against the
expert mask is the most any network drawing such a map can score. This
measures that ceiling on the official test masks (measuring only), by
tumour type and by tumour size, at half and at a quarter of the input's
resolution, beside a network's own Dice on the same masks (``--model``):
where the network is far below the ceiling, the resolution is not what
holds it back.

    python experiments/map_resolution.py [--data ../shared/data] [--model models/brain-tumor-maps]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from brain_cnn.data.dataset import discover
from brain_cnn.data.masks import mask_file, mask_folder, prepare_pair, read_mask
from brain_cnn.evaluation.map_scores import dice
from brain_cnn.scan.preprocess import read_file
from brain_cnn.scan.read import read_scan

# Tumour area in the model input's pixels (128 px across the head crop). With the head crop about 180 mm
# across (an assumption: the JPEGs carry no spacing), a pixel is about 1.4 mm and 1 cm² about 50 pixels.
SIZES = [(0, 50, "under ~1 cm² (< 50 px)"), (50, 200, "~1-4 cm² (50-200 px)"), (200, 800, "~4-16 cm² (200-800 px)"),
         (800, 10**9, "over ~16 cm² (> 800 px)")]


def ceiling(masks: np.ndarray, factor: int) -> np.ndarray:
    """Dice of a perfect map at 1/``factor`` of the input's resolution, brought up and cut at 0.5, per mask."""
    side = masks.shape[1]
    small = masks.reshape(len(masks), side // factor, factor, side // factor, factor).mean(axis=(2, 4))
    return np.array([dice(truth, cv2.resize(cell.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
                          > 0.5) for truth, cell in zip(masks, small)])


def test_masks(data: Path, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The official test images with an expert mask, prepared as the network sees them: images, masks, types."""
    four = discover(data / "brain-tumor-mri")
    masks_root = mask_folder(four.root)
    images, masks, types = [], [], []
    for sample in four.splits["test"]:
        found = mask_file(masks_root, sample.path)
        if found is None:
            continue
        grey = read_scan(read_file(four.root / sample.path), sample.path).slices[0]
        image, mask = prepare_pair(grey, read_mask(found), size)
        if mask.any():
            images.append(image)
            masks.append(mask[..., 0] > 127)
            types.append(sample.label)
    return np.stack(images), np.stack(masks), types


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--size", type=int, default=128, help="the network's input size")
    parser.add_argument("--model", help="a tumour-map model folder whose own Dice to show beside the ceilings")
    args = parser.parse_args()
    images, masks, types = test_masks(Path(args.data), args.size)
    half, quarter = ceiling(masks, 2), ceiling(masks, 4)
    found = None
    if args.model:
        from brain_cnn.inference.predictor import predict_all
        from brain_cnn.model.folder import load_model

        loaded = load_model(args.model)
        maps = predict_all(loaded.model, images, 64, loaded.card.flip_averaging)[2]
        found = np.array([dice(truth, cv2.resize(m, (args.size, args.size), interpolation=cv2.INTER_LINEAR) > 0.5)
                          for truth, m in zip(masks, maps)])
    area = masks.reshape(len(masks), -1).sum(axis=1)
    types = np.array(types)
    print(f"{len(masks)} official test images with a non-empty expert mask, at {args.size} px")
    print("| tumours | images | perfect half-resolution map: Dice mean (5th percentile) | perfect quarter-resolution "
          "| " + ("network's Dice, mean |" if found is not None else ""))
    print("|---|---|---|---|" + ("---|" if found is not None else ""))
    groups = [("all", np.ones(len(masks), bool))] + [(t, types == t) for t in sorted(set(types))] + \
        [(name, (area >= low) & (area < high)) for low, high, name in SIZES]
    for name, chosen in groups:
        if not chosen.any():
            continue
        cells = [f"{half[chosen].mean():.3f} ({np.percentile(half[chosen], 5):.3f})",
                 f"{quarter[chosen].mean():.3f} ({np.percentile(quarter[chosen], 5):.3f})"]
        if found is not None:
            cells.append(f"{found[chosen].mean():.3f}")
        print(f"| {name} | {int(chosen.sum())} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

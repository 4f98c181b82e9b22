"""Which validation tumours a tumour-map network misses, by how bright the tumour is against the brain around it.

    python experiments/dark_tumours.py runs/tumour-maps-v9/decoded-validation.npz models/brain-tumor-maps runs/...

The images are a map run's decoded validation split (``decoded-validation.npz``, written by
``python -m brain_cnn.training.tumour_maps``: the 4-class validation images carved by copies and the LGG
validation patients, with their masks at the input's size), so only folders that did not train on them may be
given. Each tumour slice with a mask is put in a contrast band (:mod:`brain_cnn.data.tumour_contrast`): the mean
grey level (0-255, the model input) inside the mask minus the mean in a ring 3-6 input pixels around it, within
the head; dark below -10, alike from -10 to 10, bright above. Per band and source (the
LGG set by sequence): the share of tumours called "no tumour" at the folder's own decision rule and
temperature, and of those whose map (above 0.5) touches no masked pixel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from brain_cnn.data.tumour_contrast import BANDS, contrast
from brain_cnn.inference.calibration import apply_temperature
from brain_cnn.inference.decision import decide
from brain_cnn.inference.predictor import predict_all
from brain_cnn.model.folder import load_model
from brain_cnn.scan.sequences import sequence_of


def _where(files: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Source, and the sequence for the LGG set (from the class folder's name)."""
    return np.array([f"{s} {sequence_of(Path(f).parent.name)}" if s == "brain-tumor-lgg" else s
                     for f, s in zip(files, sources)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("decoded", help="a map run's decoded-validation.npz")
    parser.add_argument("folders", nargs="+", help="tumour-map model folders (none trained on those images)")
    args = parser.parse_args()
    d = np.load(args.decoded, allow_pickle=False)
    masks = d["masks"][..., 0] > 127
    keep = d["known"] & masks.reshape(len(masks), -1).any(axis=1)
    images, masks = d["images"][keep], masks[keep]
    where = _where(d["files"][keep], d["sources"][keep])
    level = np.array([contrast(x[..., 0], m) for x, m in zip(images, masks)])
    print(f"{keep.sum()} masked validation tumours")
    for folder in args.folders:
        loaded = load_model(folder)
        card = loaded.card
        _, raw, maps = predict_all(loaded.model, images, 32, card.flip_averaging, card.mixed_precision)
        probabilities = apply_temperature(raw, card.temperature)
        missed = np.array([card.classes[i] == "notumor" for i in decide(probabilities, card.classes, card.decision)])
        side = maps.shape[1:][::-1]  # the map is at half the input's resolution
        touched = np.array([(cv2.resize(m.astype(np.uint8), side, interpolation=cv2.INTER_NEAREST).astype(bool)
                             & (mp > 0.5)).any() for m, mp in zip(masks, maps)])
        print(f"\n{folder}: called no tumour / no outline on the tumour, % (tumours)")
        for cell in sorted(set(where.tolist())):
            parts = []
            for name, low, high in BANDS:
                here = (where == cell) & (level >= low) & (level < high)
                if here.any():
                    parts.append(f"{name}: {100 * missed[here].mean():.1f} / {100 * (~touched[here]).mean():.1f} "
                                 f"({here.sum()})")
            print(f"  {cell:24s} " + "; ".join(parts))


if __name__ == "__main__":
    main()

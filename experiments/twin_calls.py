"""What a map network calls a training tumour and its painted-out twin, by contrast band.

    python experiments/twin_calls.py runs/tumour-maps-v9/decoded-train.npz FOLDER [--count 300]

Draws ``--count`` masked training tumours per contrast band (seed 0; :mod:`brain_cnn.data.tumour_contrast`),
paints each out as the paired twins do, and prints per band the median tumour probability (the folder's own
temperature) of the tumours and of their painted-out twins, and the share of tumours called "no tumour" at 0.5.
A network trained with the twins that cannot tell a tumour from its twin gives both about the same probability.
"""

from __future__ import annotations

import argparse

import numpy as np

from brain_cnn.data.painting import NAVIER_STOKES, paint_out
from brain_cnn.data.tumour_contrast import BANDS, bands
from brain_cnn.inference.calibration import apply_temperature
from brain_cnn.inference.predictor import predict_all
from brain_cnn.model.folder import load_model
from brain_cnn.training.tumour_maps import _masked_tumours, read_decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("decoded", help="a map run's decoded-train.npz")
    parser.add_argument("folder", help="a tumour-map model folder that trained on those images")
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    pairs = read_decoded(args.decoded)
    masked = _masked_tumours(pairs)
    band = bands(pairs.images[masked], pairs.masks[masked])
    loaded = load_model(args.folder)
    normal = loaded.card.classes.index("notumor")
    rng = np.random.default_rng(0)
    for name, _, _ in BANDS:
        for source in sorted(set(pairs.sources)):
            here = masked[(band == name) & (np.array(pairs.sources)[masked] == source)]
            if not len(here):
                continue
            chosen = rng.choice(here, min(args.count, len(here)), replace=False)
            twins = np.stack([paint_out(pairs.images[i], pairs.masks[i, ..., 0] > 127, NAVIER_STOKES) for i in chosen])
            tumour = []
            for images in (pairs.images[chosen], twins):
                _, raw, _ = predict_all(loaded.model, images, 32, loaded.card.flip_averaging,
                                        loaded.card.mixed_precision)
                tumour.append(1 - apply_temperature(raw, loaded.card.temperature)[:, normal])
            print(f"{source:18s} {name:7s} {len(chosen):4d}: tumour {np.median(tumour[0]):.2f}, its twin "
                  f"{np.median(tumour[1]):.2f}; called no tumour {100 * (tumour[0] < 0.5).mean():.1f} %")


if __name__ == "__main__":
    main()

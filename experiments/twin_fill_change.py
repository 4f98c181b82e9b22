"""How much painting a masked tumour out changes the image, by contrast band: is its painted-out twin a counterfactual?

    python experiments/twin_fill_change.py runs/tumour-maps-v9/decoded-train.npz [--count 1500]

Reads a map run's decoded training split, draws ``--count`` masked tumours (seed 0), paints each out as the
paired twins do (:func:`brain_cnn.data.painting.paint_out`, Navier-Stokes) and prints, per source and contrast
band (:mod:`brain_cnn.data.tumour_contrast`), the median over tumours of the mean and 90th percentile of the
absolute change inside the mask, and of the tumour's own standard deviation (grey levels, 0-255).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from brain_cnn.data.painting import NAVIER_STOKES, paint_out
from brain_cnn.data.tumour_contrast import bands
from brain_cnn.training.tumour_maps import _masked_tumours, read_decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("decoded", help="a map run's decoded-train.npz")
    parser.add_argument("--count", type=int, default=1500)
    args = parser.parse_args()
    pairs = read_decoded(args.decoded)
    masked = _masked_tumours(pairs)
    chosen = np.random.default_rng(0).choice(masked, min(args.count, len(masked)), replace=False)
    cells = defaultdict(list)
    for i, band in zip(chosen, bands(pairs.images[chosen], pairs.masks[chosen])):
        tumour = pairs.masks[i, ..., 0] > 127
        image = pairs.images[i, ..., 0].astype(float)
        change = np.abs(paint_out(pairs.images[i], tumour, NAVIER_STOKES)[..., 0] - image)[tumour]
        cells[(pairs.sources[i], band)].append((change.mean(), np.percentile(change, 90), image[tumour].std()))
    print("source, band: tumours; median of (mean change, 90th percentile of the change, tumour's own sd)")
    for (source, band), rows in sorted(cells.items()):
        mean, p90, sd = np.median(np.array(rows), axis=0)
        print(f"  {source:18s} {band:7s} {len(rows):5d}; {mean:5.1f} {p90:5.1f} {sd:5.1f}")


if __name__ == "__main__":
    main()

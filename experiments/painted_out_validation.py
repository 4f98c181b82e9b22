"""What would a shipping rule that also saw painted-out validation tumours have picked?

Scores tumour-map networks on a run's validation slices (intact) and on its
masked validation tumours painted out as in training
(:func:`brain_cnn.training.tumour_maps.counterfactuals`, labelled no tumour
with an empty mask), with the training loss, and on both together.

    python experiments/painted_out_validation.py --validation runs/tumour-maps-v4/decoded-validation.npz \\
        models/brain-tumor-maps/model.keras runs/tumour-maps-v4/model.keras
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--validation", required=True, help="a run's decoded-validation.npz")
    parser.add_argument("models", nargs="+", help="model.keras files of runs with that validation split")
    args = parser.parse_args()

    import keras

    import brain_cnn.model.layers  # noqa: F401  (registers the custom layers)
    from brain_cnn.training.tumour_maps import DecodedPairs, _compile, counterfactuals, make_pair_dataset

    with np.load(args.validation) as d:
        intact = DecodedPairs(d["images"], d["masks"], d["labels"], d["known"], d["sources"].tolist(),
                              d["files"].tolist(), [])
    both = counterfactuals(intact, 1.0, seed=42)
    n = len(intact.labels)
    painted = DecodedPairs(both.images[n:], both.masks[n:], both.labels[n:], both.known[n:], both.sources[n:],
                           both.files[n:], [])
    share = len(painted.labels) / len(both.labels)
    print(f"validation: {n} intact slices, {len(painted.labels)} masked tumours painted out")
    for path in args.models:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
        _compile(model, 1e-3)
        a = model.evaluate(make_pair_dataset(intact, 64, False), verbose=0, return_dict=True)
        b = model.evaluate(make_pair_dataset(painted, 64, False), verbose=0, return_dict=True)
        print(f"{path}: intact loss {a['loss']:.3f}; painted out {b['loss']:.3f} (the call's part "
              f"{b['probabilities_loss']:.3f}); all {(1 - share) * a['loss'] + share * b['loss']:.3f}")


if __name__ == "__main__":
    main()

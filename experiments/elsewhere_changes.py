"""What changes when a tumour's shape is painted out elsewhere in the brain: the tumour call, or its type?

On a run's masked validation tumours (the shipping rule's third figure,
:func:`brain_cnn.training.tumour_maps.removal_validation`), splits the calls
that change into tumour → no tumour, no tumour → tumour and one tumour type →
another, with the tumour probability's mean shift.

    python experiments/elsewhere_changes.py --validation runs/tumour-maps-v6/decoded-validation.npz \\
        models/brain-tumor-maps/model.keras runs/tumour-maps-v6/model.keras
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
    from brain_cnn.inference.decision import TUMOUR_FIRST, decide
    from brain_cnn.model.tumour_maps import CLASSES, PROBABILITIES
    from brain_cnn.training.tumour_maps import DecodedPairs, painted_elsewhere

    with np.load(args.validation) as d:
        intact = DecodedPairs(d["images"], d["masks"], d["labels"], d["known"], d["sources"].tolist(),
                              d["files"].tolist(), [])
    count = len(intact.labels)
    edited = painted_elsewhere(intact, 1.0, seed=42)  # as the shipping rule scores it
    originals = np.array([intact.files.index(f.rsplit("#", 1)[0]) for f in edited.files[count:]], int)
    normal = CLASSES.index("notumor")
    print(f"{len(originals)} masked validation tumours painted out elsewhere")
    for path in args.models:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
        before = model.predict(intact.images[originals], batch_size=64, verbose=0)[PROBABILITIES]
        after = model.predict(edited.images[count:], batch_size=64, verbose=0)[PROBABILITIES]
        call_before, call_after = decide(before, CLASSES, TUMOUR_FIRST), decide(after, CLASSES, TUMOUR_FIRST)
        lost = (call_before != normal) & (call_after == normal)
        gained = (call_before == normal) & (call_after != normal)
        flipped = (call_before != normal) & (call_after != normal) & (call_before != call_after)
        shift = (1 - after[:, normal]) - (1 - before[:, normal])
        print(f"{path}: changed {(call_before != call_after).mean():.1%}: tumour → none {lost.sum()}, "
              f"none → tumour {gained.sum()}, type → type {flipped.sum()}; tumour probability shift "
              f"mean {shift.mean():+.3f}, |shift| > 0.2 for {(np.abs(shift) > 0.2).mean():.1%}")


if __name__ == "__main__":
    main()

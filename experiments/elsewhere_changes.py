"""What changes when a tumour's shape is painted out elsewhere in the brain: the tumour call, or its type?

On a run's masked validation tumours (the shipping rule's third figure,
:func:`brain_cnn.training.tumour_maps.removal_validation`), splits the calls
that change into tumour → no tumour, no tumour → tumour and one tumour type →
another, with the tumour probability's mean shift.

    python experiments/elsewhere_changes.py --validation runs/tumour-maps-v6/decoded-validation.npz \\
        models/brain-tumor-maps/model.keras runs/tumour-maps-v6/model.keras
"""

from __future__ import annotations

import numpy as np

from validation_runs import validation_and_models


def main() -> None:
    intact, models = validation_and_models(__doc__)
    from brain_cnn.inference.decision import TUMOUR_FIRST, decide
    from brain_cnn.model.tumour_maps import CLASSES, PROBABILITIES
    from brain_cnn.training.tumour_maps import painted_elsewhere

    count = len(intact.labels)
    edited = painted_elsewhere(intact, 1.0, seed=42)  # as the shipping rule scores it
    originals = np.array([intact.files.index(f.rsplit("#", 1)[0]) for f in edited.files[count:]], int)
    normal = CLASSES.index("notumor")
    print(f"{len(originals)} masked validation tumours painted out elsewhere")
    for path, model in models:
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

"""What would a shipping rule that also saw painted-out validation tumours have picked?

Scores tumour-map networks on a run's validation slices (intact) and on its
masked validation tumours painted out as in training
(:func:`brain_cnn.training.tumour_maps.counterfactuals`, labelled no tumour
with an empty mask), with the training loss, and on both together.

    python experiments/painted_out_validation.py --validation runs/tumour-maps-v4/decoded-validation.npz \\
        models/brain-tumor-maps/model.keras runs/tumour-maps-v4/model.keras
"""

from __future__ import annotations

from validation_runs import validation_and_models


def main() -> None:
    intact, models = validation_and_models(__doc__)
    from brain_cnn.training.tumour_maps import DecodedPairs, counterfactuals, make_pair_dataset

    both = counterfactuals(intact, 1.0, seed=42)
    n = len(intact.labels)
    painted = DecodedPairs(both.images[n:], both.masks[n:], both.labels[n:], both.known[n:], both.sources[n:],
                           both.files[n:], [])
    share = len(painted.labels) / len(both.labels)
    print(f"validation: {n} intact slices, {len(painted.labels)} masked tumours painted out")
    for path, model in models:
        a = model.evaluate(make_pair_dataset(intact, 64, False), verbose=0, return_dict=True)
        b = model.evaluate(make_pair_dataset(painted, 64, False), verbose=0, return_dict=True)
        print(f"{path}: intact loss {a['loss']:.3f}; painted out {b['loss']:.3f} (the call's part "
              f"{b['probabilities_loss']:.3f}); all {(1 - share) * a['loss'] + share * b['loss']:.3f}")


if __name__ == "__main__":
    main()

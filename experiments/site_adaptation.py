"""Does re-estimating batch-norm statistics on a held-out source's own scans (AdaBN) help screening there?

For each data set, every image is screened twice: by the model as it is, and
by a copy adapted (:func:`adaptation.adapt_batch_norm`) on the
*other half* of that set's images (two random halves, each adapted on the
other: the scans an image is judged with never include itself). With
``--by-sequence`` the halves and the adaptation are per MRI sequence, as a
site would adapt one protocol at a time. Figures leave out images with a near
duplicate in the model's training data, as the screening reports do.

    python experiments/site_adaptation.py --model runs/fold-yesno --data ../shared/data/brain-tumor-yes-no
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def cross_adapted(model, images: np.ndarray, groups: np.ndarray, flip: bool, seed: int = 0) -> np.ndarray:
    """Raw probabilities of each image from a copy adapted on the other half of its group."""
    from adaptation import adapt_batch_norm
    from brain_cnn.inference.predictor import predict_probabilities

    rng = np.random.default_rng(seed)
    out = np.zeros((len(images), model.output_shape[-1]))
    for group in sorted(set(groups)):
        members = np.flatnonzero(groups == group)
        half = rng.permutation(len(members)) < len(members) // 2
        for judged, adapted_on in ((members[half], members[~half]), (members[~half], members[half])):
            adapted = adapt_batch_norm(model, images[adapted_on], seed=seed)
            out[judged] = predict_probabilities(adapted, images[judged], flip=flip)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--by-sequence", action="store_true", help="adapt per MRI sequence of the folder names")
    args = parser.parse_args()

    from brain_cnn.inference.calibration import apply_temperature
    from brain_cnn.data.classes import is_no_tumour
    from brain_cnn.model.folder import load_model
    from brain_cnn.evaluation.screening import screening_outputs
    from screening_compare import side_by_side

    loaded = load_model(args.model)
    card = loaded.card
    negative = np.array([is_no_tumour(c) for c in card.classes])
    print(f"model {args.model}; images without a copy in its training data")
    print(f"{'':30} {'as trained: sens / spec / AUC':>30} {'adapted: sens / spec / AUC':>30}")
    for data in args.data:
        _, _, kept, decoded, probs, seen = screening_outputs(loaded, data)
        kinds, sequences = np.array([r[1] for r in kept]), np.array([r[3] for r in kept])
        groups = sequences if args.by_sequence else np.zeros(len(kept), int)
        adapted = apply_temperature(cross_adapted(loaded.model, decoded.images, groups, card.flip_averaging),
                                    card.temperature)
        unseen = np.array([f not in seen for f in decoded.files])
        print("\n".join(side_by_side(Path(data).name, unseen, kinds, sequences, negative, [probs, adapted])))


if __name__ == "__main__":
    main()

"""How well two familiarities tell the classifiers' training look from the other sources' looks.

A combined model's look-dependent rule (:mod:`brain_cnn.training.combined`)
reads how much a slice looks like the classifiers' training source off the
first classifier's pooled features. Two ways to get that number were
weighed; this measures both on a combined folder's validation images
(nothing held out), by the ROC AUC of each familiarity for "a slice of the
home source" against the others:

* **density**: the first classifier's own out-of-distribution distance
  (class-conditional Gaussians with a shared Ledoit-Wolf covariance,
  :func:`brain_cnn.model.ood.fit_gate`) fitted on a sample of its training
  images; it never saw the other sources, so it behaves on them as on any
  unseen look;
* **look**: the folder's fitted logistic look (its card), which saw every
  source of the validation images, so its AUC on them is in-sample: the
  card's ``source_left_out`` figures say how it does on a source it did not see.

    python experiments/familiarity.py runs/combined-l [--train-sample 1200]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from brain_cnn.data.dataset import Sample, SplitManifest
from brain_cnn.data.pipeline import decode_samples
from brain_cnn.model.card import SPLIT_FILE, load_card
from brain_cnn.model.combined import familiarity
from brain_cnn.model.folder import load_model
from brain_cnn.model.ood import fit_gate


def auc(home: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(home, score))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="a combined model folder with a look-dependent rule")
    parser.add_argument("--train-sample", type=int, default=1200, help="first classifier's training images used")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from brain_cnn.inference.predictor import predict_outputs

    folder = Path(args.folder)
    card = load_card(folder)
    rule = card.training["combination"]
    if not rule.get("look"):
        raise SystemExit(f"{folder} has no look-dependent rule")
    first_member = next(m for m in card.members if m.get("role") is None)
    first = load_model((folder / first_member["folder"]).resolve())
    split = SplitManifest.load(folder / SPLIT_FILE)
    validation = decode_samples(split.splits["validation"], split.root, card.classes, card.image_size)
    home = np.array([any(part in rule["look"]["home"] for part in Path(f).parts) for f in validation.files])
    features = predict_outputs(first.model, validation.images)[0]

    own = SplitManifest.load(first.folder / SPLIT_FILE)
    train = own.splits["train"]
    picked = [train[i] for i in np.random.default_rng(args.seed).choice(len(train), min(args.train_sample, len(train)),
                                                                        replace=False)]
    decoded = decode_samples([Sample(s.path, s.label) for s in picked], own.root, card.classes, card.image_size)
    train_features = predict_outputs(first.model, decoded.images)[0]
    gate = fit_gate(train_features, decoded.labels, features)
    distance = gate.distances(features)
    print(f"{len(validation.files)} validation images of {folder} ({int(home.sum())} of the home source "
          f"{', '.join(rule['look']['home'])}); density fitted on {len(decoded.files)} training images of "
          f"{os.path.basename(str(first.folder))}")
    print(f"density (smaller distance = more familiar): ROC AUC {auc(home, -distance):.3f}")
    print(f"look (in-sample: it was fitted on these images): ROC AUC "
          f"{auc(home, familiarity(features, rule['look'])):.3f}")


if __name__ == "__main__":
    main()

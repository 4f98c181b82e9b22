"""Would matching each scan's intensities to the training set's help screening on other sources?

The public sources differ in brightness and contrast; the script prints the
median over images of the head's 99th grey level for the training images and
each data set. It then maps every model input's head pixels (grey level
above 10) onto the head-pixel histogram of the model's training images
(quantile matching; the background stays black) and screens each data set
with and without it. The
4-class test split is scored too: a harmonisation step must not cost
accuracy at home. Figures leave out images with a copy (in any orientation) in the
model's training data, as the screening reports do.

    python experiments/intensity_matching.py --model models/brain-tumor-mri-multisource \\
        --data ../shared/data/brain-tumor-yes-no models/brain-tumor-44c/split.json:test
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HEAD = 10  # grey levels above this are the head
LEVELS = np.linspace(0, 1, 257)


def reference_quantiles(images: np.ndarray) -> np.ndarray:
    """Head-pixel quantiles (at LEVELS) pooled over ``images`` (N, S, S, 1)."""
    pixels = images[images > HEAD].astype(np.float64)
    return np.quantile(pixels, LEVELS)


def head_top(images: np.ndarray) -> float:
    """Median over images of the 99th percentile of the head's grey levels."""
    return float(np.median([np.percentile(i[i > HEAD], 99) for i in images if (i > HEAD).sum() >= 100]))


def match(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each image's head pixels mapped so that their quantiles are ``reference``'s."""
    out = images.copy()
    for image in out:
        head = image > HEAD
        if head.sum() < 100:
            continue
        own = np.quantile(image[head].astype(np.float64), LEVELS)
        image[head] = np.clip(np.interp(image[head], own, reference) + 0.5, 0, 255).astype(np.uint8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", nargs="+", required=True, metavar="DATA[:SPLIT]")
    parser.add_argument("--reference-images", type=int, default=1000)
    args = parser.parse_args()

    from brain_cnn.inference.calibration import apply_temperature
    from brain_cnn.data.dataset import SplitManifest
    from brain_cnn.data.classes import is_no_tumour
    from brain_cnn.model.folder import load_model
    from brain_cnn.data.pipeline import decode_samples
    from brain_cnn.inference.predictor import predict_probabilities
    from brain_cnn.evaluation.screening import screening_outputs
    from screening_compare import side_by_side

    loaded = load_model(args.model)
    card = loaded.card
    negative = np.array([is_no_tumour(c) for c in card.classes])
    split = SplitManifest.load(Path(args.model) / "split.json")
    rng = np.random.default_rng(0)
    train = [split.splits["train"][i] for i in rng.permutation(len(split.splits["train"]))[: args.reference_images]]
    sample = decode_samples(train, split.root, card.classes, card.image_size).images
    reference = reference_quantiles(sample)
    print(f"head's 99th grey level (median over images): {head_top(sample):.0f} in {len(sample)} training images")

    def probabilities(images):
        raw = predict_probabilities(loaded.model, images, flip=card.flip_averaging)
        return apply_temperature(raw, card.temperature)

    test = decode_samples(split.splits["test"], split.root, card.classes, card.image_size)
    for name, images in (("as given", test.images), ("matched", match(test.images, reference))):
        print(f"{split.root} test split, {name}: accuracy {(probabilities(images).argmax(1) == test.labels).mean():.2%}")

    print(f"\n{'':30} {'as given: sens / spec / AUC':>30} {'matched: sens / spec / AUC':>30}")
    for text in args.data:
        data, _, part = text.partition(":")
        _, _, kept, decoded, probs, seen = screening_outputs(loaded, data, None, [part] if part else None)
        unseen = np.array([f not in seen for f in decoded.files])
        kinds, sequences = np.array([r[1] for r in kept]), np.array([r[3] for r in kept])
        matched = probabilities(match(decoded.images, reference))
        print(f"head's 99th grey level (median over images): {head_top(decoded.images):.0f} in {text}")
        print("\n".join(side_by_side(text, unseen, kinds, sequences, negative, [probs, matched])))


if __name__ == "__main__":
    main()

"""Two model folders' accuracy on the test images unseen by both: the comparison the rule for replacing a
shipped model by its retrained version asks for (docs/models.md, "The other shipped models, retrained with a
calibration split").

A test image (of both folders' test splits) counts when it has no copy in any orientation among what either
folder, or a model either started from, trained or validated on (the test of ``brain-cnn evaluate``'s
``unseen``). Each model calls it as it would in the app: its own preprocessing size, flip averaging,
temperature and decision rule.

    python experiments/unseen_by_both.py models/brain-tumor-yes-no runs/yes-no-c
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from brain_cnn.data.dataset import Sample, SplitManifest
from brain_cnn.data.leakage import hash_samples
from brain_cnn.data.pipeline import decode_samples
from brain_cnn.evaluation.evaluate import seen_copies
from brain_cnn.inference.decision import decide
from brain_cnn.inference.predictor import Predictor
from brain_cnn.model.card import SPLIT_FILE


def _test(folder: Path) -> dict[str, str]:
    """The folder's test images, absolute path -> label."""
    manifest = SplitManifest.load(folder / SPLIT_FILE)
    return {os.path.abspath(os.path.join(manifest.root, s.path)): s.label for s in manifest.splits["test"]}


def _seen(folder: Path, predictor: Predictor, query) -> set[str]:
    """Files of ``query`` that the folder, or a model it started from, has as good as seen."""
    manifest = SplitManifest.load(folder / SPLIT_FILE)
    return set(seen_copies(query, manifest.root, manifest, predictor.card.training)[0])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    folders = [Path(a) for a in argv]
    tests = [_test(f) for f in folders]
    common = sorted(set(tests[0]) & set(tests[1]))
    if any(tests[0][f] != tests[1][f] for f in common):
        print("error: the two test splits label an image differently", file=sys.stderr)
        return 1
    root = os.path.commonpath(common)
    samples = [Sample(os.path.relpath(f, root), tests[0][f]) for f in common]
    query = hash_samples(root, samples)
    predictors = [Predictor(f) for f in folders]
    seen = set().union(*(_seen(f, p, query) for f, p in zip(folders, predictors)))
    unseen = [s for s in samples if s.path not in seen]
    print(f"test images: {len(tests[0])} and {len(tests[1])}; in both: {len(common)}; unseen by both: {len(unseen)}")
    for folder, predictor in zip(folders, predictors):
        decoded = decode_samples(unseen, root, predictor.classes, predictor.image_size)
        probabilities = predictor.predict_inputs(decoded.images)
        called = decide(probabilities, predictor.classes, predictor.card.decision)
        right = called == decoded.labels
        print(f"{folder}: {int(right.sum())} of {len(right)} right ({right.mean():.1%}); "
              f"wrong: {', '.join(f for f, r in zip(decoded.files, right) if not r) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Could another threshold on P(tumour) make a model screen other sources well?

A model calls "tumour" when its top class is not "no tumour". On another
scanner the tumour score 1 - P(no tumour) can still rank tumours above normal
slices (a high ROC AUC) while that operating point misses many of them. This
script asks whether one threshold on the score would do better, and whether a
threshold fitted on one source holds on the others. For each data set it
prints sensitivity / specificity at the top-class call and at a grid of
thresholds. Then, for each data set used as the calibration source, it
prints the highest threshold that finds 90 % of that set's tumours, and what
that threshold gives on every other set. Every figure leaves out images with a
copy (in any orientation) in the model's training data, as the screening reports do.

    python experiments/screening_thresholds.py --model models/brain-tumor-mri-multisource \\
        --data models/brain-tumor-44c/split.json:validation models/brain-tumor-44c/split.json:test \\
        ../shared/data/brain-tumor-yes-no ../shared/data/brain-tumor-sartaj
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def groups(name: str, score, kinds, sequences) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(group name, scores, is-tumour) for the whole set and each named sequence with both kinds."""
    from brain_cnn.data.label_maps import NO_TUMOUR, TUMOUR

    scored = np.isin(kinds, [TUMOUR, NO_TUMOUR])
    out = [(name, score[scored], kinds[scored] == TUMOUR)]
    for sequence in sorted(set(sequences[scored]) - {"unstated"}):
        mask = scored & (sequences == sequence)
        if len(set(kinds[mask])) == 2:
            out.append((f"  {sequence}", score[mask], kinds[mask] == TUMOUR))
    return out


def rates(score: np.ndarray, tumour: np.ndarray, threshold: float) -> str:
    called = score >= threshold
    return f"{called[tumour].mean():5.1%} / {(~called[~tumour]).mean():5.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", nargs="+", required=True, metavar="DATA[:SPLIT]",
                        help="data folders or split manifests, each optionally with one split")
    parser.add_argument("--sensitivity", type=float, default=0.90,
                        help="the calibration rule: the highest threshold finding this share of tumours")
    args = parser.parse_args()

    from brain_cnn.data.classes import is_no_tumour
    from brain_cnn.model.folder import load_model
    from brain_cnn.evaluation.screening import screening_outputs

    loaded = load_model(args.model)
    negative = np.array([is_no_tumour(c) for c in loaded.card.classes])
    sets = []
    for text in args.data:
        data, _, split = text.partition(":")
        _, _, kept, decoded, probs, seen = screening_outputs(loaded, data, None, [split] if split else None)
        unseen = np.array([f not in seen for f in decoded.files])
        kinds, sequences = np.array([r[1] for r in kept])[unseen], np.array([r[3] for r in kept])[unseen]
        score = 1.0 - probs[unseen][:, negative].sum(axis=1)
        top_class = (~negative[probs[unseen].argmax(axis=1)]).astype(float)  # 1 = called tumour
        name = Path(data).parent.name if data.endswith(".json") else Path(data).name
        sets.append((name + (f" {split}" if split else ""), score, top_class, kinds, sequences))

    print(f"model {args.model}; sensitivity / specificity on images unseen in its training\n")
    print(f"{'':28} {'top class':>15} " + " ".join(f"{'t=' + str(t):>15}" for t in GRID))
    for name, score, top_class, kinds, sequences in sets:
        for (label, s, tumour), (_, top, _) in zip(groups(name, score, kinds, sequences),
                                                   groups(name, top_class, kinds, sequences)):
            print(f"{label:28} {rates(top, tumour, 0.5):>15} " + " ".join(f"{rates(s, tumour, t):>15}" for t in GRID))

    print(f"\nthreshold fitted on one set (highest finding {args.sensitivity:.0%} of its tumours), applied to the others")
    for name, score, _, kinds, sequences in sets:
        _, s, tumour = groups(name, score, kinds, sequences)[0]
        ranked = np.sort(s[tumour])[::-1]
        threshold = float(ranked[int(np.ceil(args.sensitivity * len(ranked))) - 1])
        print(f"fitted on {name}: t = {threshold:.3f}")
        for other, score2, _, kinds2, sequences2 in sets:
            if other != name:
                for label, s2, tumour2 in groups(other, score2, kinds2, sequences2):
                    print(f"    {label:28} {rates(s2, tumour2, threshold)}")


if __name__ == "__main__":
    main()

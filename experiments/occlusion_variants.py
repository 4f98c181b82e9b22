"""Occlusion variants against the expert tumour boxes: does the square's size, fill or score move the peak?

For the 161 boxed test images, prints the pointing game (all, and per tumour
type) and how often the peak falls off the brain, as ``brain-cnn explain-eval``
defines them, of :func:`brain_cnn.explain.occlusion.occlusion_map` for every combination of

* ``--patches``: the square's side as a share of the input (0.2 is the app's);
* ``--fills``: what the square shows: black (the app's), the slice blurred
  (hides detail, keeps brightness) or the head's mean grey;
* ``--scores``: whose log-odds drop: the true class (the app's) or "any
  tumour" (the summed probability of every tumour class);

at one ``--stride`` (0.05 is the app's: 8 px at 160 px; 0.1 is four times
cheaper). The last column keeps each map's peak inside the brain (the mask of
``explain-eval``) before scoring.

    python experiments/occlusion_variants.py --boxes ../shared/data/brain-tumor-mri/boxes.csv \\
        --patches 0.12 0.2 0.3 --fills black --stride 0.05
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/brain-tumor-mri")
    parser.add_argument("--boxes", required=True)
    parser.add_argument("--patches", type=float, nargs="+", default=[0.2])
    parser.add_argument("--fills", nargs="+", default=["black", "blur", "mean"])
    parser.add_argument("--scores", nargs="+", choices=["class", "tumour"], default=["class", "tumour"])
    parser.add_argument("--stride", type=float, default=0.05)
    parser.add_argument("--limit", type=int, help="only the first N boxed images (a quick look)")
    args = parser.parse_args()

    from brain_cnn.explain.occlusion import occlusion_map
    from occlusion_fills import occlusion_fill
    from brain_cnn.data.painting import brain_region
    from brain_cnn.evaluation.explanations import boxed_inputs, read_boxes, score_heatmap
    from brain_cnn.data.classes import is_no_tumour
    from brain_cnn.model.folder import load_model

    loaded = load_model(args.model)
    model, classes, size = loaded.model, loaded.card.classes, loaded.card.image_size
    tumour = [i for i, c in enumerate(classes) if not is_no_tumour(c)]
    root = Path(args.boxes).parent
    rows: dict[str, list[tuple[str, dict, dict]]] = {}
    for entry, model_input, box, reason in boxed_inputs(root, read_boxes(args.boxes)[: args.limit], classes, size):
        if reason:
            continue
        image = model_input[..., 0]
        brain = brain_region(image)
        for patch in args.patches:
            for fill in args.fills:
                for score in args.scores:
                    target = classes.index(entry.label) if score == "class" else tumour
                    shown = occlusion_fill(image, fill, max(1, round(patch * image.shape[0])))
                    heat = occlusion_map(model, image, target, patch=patch, stride=args.stride, fill=shown)
                    inside = heat * brain if brain is not None else heat
                    rows.setdefault(f"{fill} {patch:g} {score}", []).append(
                        (entry.label, score_heatmap(heat, box, brain), score_heatmap(inside, box)))

    labels = sorted({label for values in rows.values() for label, _, _ in values})
    print(f"model {args.model}; {len(next(iter(rows.values())))} boxed test images; stride {args.stride:g}")
    print(f"{'fill, patch, score':<24} {'all':>6} " + " ".join(f"{label[:10]:>10}" for label in labels)
          + f" {'off brain':>9} {'in brain':>9}")
    for name, values in rows.items():
        hits = np.array([s["hit"] for _, s, _ in values])
        per = [hits[[label == lab for lab, _, _ in values]].mean() for label in labels]
        off = np.mean([s.get("off_brain", 0.0) for _, s, _ in values])
        kept = np.mean([s["hit"] for _, _, s in values])
        print(f"{name:<24} {hits.mean():6.1%} " + " ".join(f"{p:10.1%}" for p in per) + f" {off:9.1%} {kept:9.1%}")


if __name__ == "__main__":
    main()

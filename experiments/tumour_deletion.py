"""Does the network need the tumour? ``explain-eval``'s removal test, with a choice of fill.

``brain-cnn explain-eval`` paints each expert box over from the tissue around
it and classifies again, against a box of the same size painted over
elsewhere in the brain (:func:`brain_cnn.evaluation.explanations.removal_test`). This
runs that test alone, in seconds, and also with ``--fill black`` (how the
app's occlusion hides a place), to show that the answer does not hang on the
fill: a black hole can itself look like a lesion (a glioma's dark necrotic
core), a painted-over box cannot.

    python experiments/tumour_deletion.py --boxes ../shared/data/brain-tumor-mri/boxes.csv --fill black
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
    parser.add_argument("--fill", choices=["inpaint", "black"], default="inpaint")
    parser.add_argument("--placements", type=int, default=8, help="control boxes per image (default 8)")
    args = parser.parse_args()

    from brain_cnn.data.painting import brain_region
    from brain_cnn.evaluation.explanations import boxed_inputs, hide_box, read_boxes, removal_test
    from hiding import hide_black
    from brain_cnn.model.folder import load_model

    loaded = load_model(args.model)
    classes, size = loaded.card.classes, loaded.card.image_size
    rng = np.random.default_rng(0)
    rows = []
    for entry, model_input, box, reason in boxed_inputs(Path(args.boxes).parent, read_boxes(args.boxes), classes, size):
        if not reason:
            rows.append((entry.label, removal_test(loaded.model, model_input, box, classes.index(entry.label),
                                                   brain_region(model_input[..., 0]), rng, args.placements,
                                                   hide_black if args.fill == "black" else hide_box)))
    print(f"model {args.model}; {len(rows)} boxed test images; fill {args.fill}; up to {args.placements} "
          "control boxes each")
    keys = ("called_intact", "called_tumour_hidden", "called_elsewhere_hidden", "p_intact", "p_tumour_hidden",
            "p_elsewhere_hidden")
    print(f"{'':<12} {'n':>4}  {'same call: intact':>17} {'tumour hidden':>14} {'elsewhere':>10}"
          f"  {'P(class): intact':>16} {'tumour hidden':>14} {'elsewhere':>10}")
    for label in sorted({label for label, _ in rows}) + ["all"]:
        chosen = [r for lab, r in rows if label in ("all", lab)]
        means = [np.mean([r[k] for r in chosen if r[k] is not None]) for k in keys]
        print(f"{label:<12} {len(chosen):>4}  {means[0]:>17.1%} {means[1]:>14.1%} {means[2]:>10.1%}"
              f"  {means[3]:>16.3f} {means[4]:>14.3f} {means[5]:>10.3f}")


if __name__ == "__main__":
    main()

"""Save the rows a combined model's rule is fitted on, to compare rules on validation data without rebuilding.

    python experiments/combined_rows.py runs/mri-c runs/multisource-c runs/tumour-maps-v9 \
        --fit-data splits/brain-tumor-44c.json:validation --out runs/combined-rows.npz

Runs ``brain-cnn ensemble``'s own fitting (:func:`brain_cnn.training.combined.make_combined`) up to the rule and
saves what the rule would be fitted on: the members' probabilities for every fitting image and its mirror image,
the first classifier's pooled features, labels, sources, cross-validation groups and the files (each file twice:
the image, then its mirror image). Only validation images are read; no test image.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

import brain_cnn.training.combined as combined


class _Captured(Exception):
    pass


def capture(members: list[str], fit_data: list[str]) -> dict[str, np.ndarray]:
    rows: dict[str, np.ndarray] = {}
    fit_groups, fit_rule_kept = combined._fit_groups, combined.fit_rule

    def groups(files, root, sources):
        rows["files"] = np.array(list(files) * 2)
        return fit_groups(files, root, sources)

    def fit_rule(classified, found, labels, sources, normal, features=None, home=None, groups=None, folds=5):
        rows.update(classified=classified, found=found, labels=labels, sources=sources, normal=np.array(normal),
                    features=features, home=np.array(sorted(home or [])), groups=groups)
        raise _Captured

    combined._fit_groups, combined.fit_rule = groups, fit_rule
    try:
        # Beside the members (a combined folder must be); nothing is written there before the rule.
        with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(members[0]))) as out:
            combined.make_combined(members, out, fit_data=fit_data)
    except _Captured:
        return rows
    finally:
        combined._fit_groups, combined.fit_rule = fit_groups, fit_rule_kept
    raise RuntimeError("make_combined returned without fitting a rule")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+")
    parser.add_argument("--fit-data", action="append", default=[])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = capture(args.members, args.fit_data)
    np.savez_compressed(args.out, **rows)
    print(f"saved {args.out}: {len(rows['labels'])} rows ({len(rows['labels']) // 2} images and their mirrors)")


if __name__ == "__main__":
    main()

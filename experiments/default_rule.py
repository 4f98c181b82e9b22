"""The default's rule (docs/models.md, revised 2026-12-07) read off a comparison file.

    python experiments/default_rule.py runs/comparison-10.json brain-tumor-mri-ensemble combined-10 \
        tumour-maps-v9-nopaste

(1) at each model's own operating point, Youden's J (sensitivity + specificity) at least the default's on the
yes/no set, 44-class T1 and T2 and the LGG test patients, and sensitivity at least the default's on 44-class T1C+;
(2) the mean sensitivity at 90 % specificity over those sets (where a set has normal slices) at most 2 points
below the map network alone; (3) 4-class accuracy on the official test images unseen by every compared model at
most 2 points below the default's.
"""

from __future__ import annotations

import argparse
import json


def _sets(model: dict) -> dict[str, dict]:
    c44 = model["44-class test split"]["by_sequence"]
    return {"yes/no": model["yes/no set"]["all"], "44-class T1": c44["T1"], "44-class T1C+": c44["T1C+"],
            "44-class T2": c44["T2"], "LGG": model["LGG test patients"]["all"]}


def verdict(comparison: dict, default: str, candidate: str, map_network: str) -> bool:
    models = comparison["models"]
    old, new, alone = (_sets(models[name]) for name in (default, candidate, map_network))
    passed = []
    print("(1) at each model's operating point, sensitivity + specificity (%):")
    for name in old:
        a, b = old[name], new[name]
        if a["specificity"] is None:
            ok = b["sensitivity"] >= a["sensitivity"]
            print(f"  {name:14s} sensitivity {100 * b['sensitivity']:.1f} against {100 * a['sensitivity']:.1f}"
                  f"  {'pass' if ok else 'FAIL'}")
        else:
            j_old = a["sensitivity"] + a["specificity"]
            j_new = b["sensitivity"] + b["specificity"]
            ok = j_new >= j_old
            print(f"  {name:14s} {100 * j_new:.1f} ({100 * b['sensitivity']:.1f} + {100 * b['specificity']:.1f}) "
                  f"against {100 * j_old:.1f} ({100 * a['sensitivity']:.1f} + {100 * a['specificity']:.1f})"
                  f"  {'pass' if ok else 'FAIL'}")
        passed.append(ok)
    ranked = [name for name in new if new[name]["sensitivity_at_90_specificity"] is not None]
    mean_new = sum(new[n]["sensitivity_at_90_specificity"] for n in ranked) / len(ranked)
    mean_map = sum(alone[n]["sensitivity_at_90_specificity"] for n in ranked) / len(ranked)
    ok = mean_new >= mean_map - 0.02
    print(f"(2) mean sensitivity at 90 % specificity over {', '.join(ranked)}: {100 * mean_new:.1f} against the map "
          f"network's {100 * mean_map:.1f}  {'pass' if ok else 'FAIL'}")
    passed.append(ok)
    acc_old = models[default]["4-class official test"]["accuracy"]
    acc_new = models[candidate]["4-class official test"]["accuracy"]
    images = models[candidate]["4-class official test"]["images"]
    ok = acc_new >= acc_old - 0.02
    print(f"(3) 4-class accuracy on the {images} official test images unseen by all: {100 * acc_new:.1f} against "
          f"{100 * acc_old:.1f}  {'pass' if ok else 'FAIL'}")
    passed.append(ok)
    print("becomes the default" if all(passed) else "does not become the default")
    return all(passed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comparison")
    parser.add_argument("default")
    parser.add_argument("candidate")
    parser.add_argument("map_network")
    args = parser.parse_args()
    with open(args.comparison) as f:
        verdict(json.load(f), args.default, args.candidate, args.map_network)


if __name__ == "__main__":
    main()

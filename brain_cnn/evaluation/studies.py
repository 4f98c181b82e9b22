"""How well a study's tumour is measured (:mod:`brain_cnn.inference.study`), against expert masks.

Each LGG test patient's slices of one sequence (held out by patient in the model's ``sources.json``) are
stacked in slice order as one study; the model's tumour is measured as the app measures it, and the expert
masks (FLAIR abnormality, one mask for the three co-registered sequences) with the same code and the same
spacing. The LGG slices carry no spacing (shrunk from 256 to 192 px, the ends of each volume left out), so
lengths are in the 192-px slice's pixels and volumes in voxels: the volume error is a ratio, and so is
independent of the spacing.

    python -m brain_cnn.evaluation.studies models/brain-tumor-maps [--data ../shared/data]

writes ``follow_up.json`` in the model folder and prints the figures.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from brain_cnn.files import read_json, write_json
from brain_cnn.model.card import STUDIES_FILE

__all__ = ["lgg_studies", "measure_lgg_studies", "sources_file"]

FILE = STUDIES_FILE
_SLICE = re.compile(r"^(?P<case>.+)_(?P<slice>\d+)\.\w+$")


def lgg_studies(data: Path, test_paths: list[str]) -> dict[tuple[str, str], list[tuple[int, Path, Path | None]]]:
    """(patient, sequence) -> [(slice number, image, mask or None)] in slice order, for the held-out paths
    (``"glioma FLAIR/<case>_<slice>.jpg"``)."""
    studies = defaultdict(list)
    for relative in test_paths:
        folder, name = relative.split("/", 1)
        found = _SLICE.match(name)
        if not found:
            continue
        sequence = folder.split()[-1]
        mask = data / "brain-tumor-lgg-masks" / f"{found['case']}_{found['slice']}.png"
        studies[(found["case"], sequence)].append((int(found["slice"]), data / "brain-tumor-lgg" / relative,
                                                   mask if folder.startswith("glioma") else None))
    return {key: sorted(value) for key, value in sorted(studies.items())}


def sources_file(model: Path) -> Path:
    """The ``sources.json`` that says which LGG patients ``model`` never saw: its own, or for a combined
    folder (which has none) its tumour-map member's: the classifiers trained on no LGG slice."""
    from brain_cnn.model.ensemble import MAP_ROLE

    if (model / "sources.json").is_file():
        return model / "sources.json"
    members = read_json(model / "card.json", default={}).get("members") or []
    maps = [entry for entry in members if isinstance(entry, dict) and entry.get("role") == MAP_ROLE]
    if len(maps) == 1 and (model / str(maps[0].get("folder", "")) / "sources.json").is_file():
        return model / str(maps[0]["folder"]) / "sources.json"
    raise FileNotFoundError(f"{model}: no sources.json, in the folder or in a tumour-map member, so the LGG "
                            "test patients are not known")


def _summary(errors: list[float]) -> dict[str, Any]:
    if not errors:
        return {"count": 0}
    values = np.asarray(errors, float)
    return {"count": len(values), "median_abs": float(np.median(np.abs(values))),
            "worst_abs": float(np.max(np.abs(values))), "median": float(np.median(values))}


# How much of each tumour is painted away to make a "later" study, as a share of its longest diameter taken
# off every side: 5 % leaves the product about 20 % smaller (stable), 20 % about 65 % smaller (a partial
# response), all of it a complete response.
SHRINKS = {"rim 5 %": 0.05, "rim 20 %": 0.20, "all": None}


def shrunk(images: np.ndarray, truth: np.ndarray, diameter: float, share: float | None):
    """The study with part of its tumour painted out (Telea, from the tissue around it) and the mask of what
    is left: the rim ``share`` x ``diameter`` deep on every side of every slice's tumour, or all of it."""
    import cv2

    from brain_cnn.data.painting import TELEA, clear_margin, paint_out

    grow = clear_margin(TELEA) - 1  # paint_out takes this many pixels more, inwards too
    painted, left = images.copy(), np.zeros_like(truth)
    depth = None if share is None else max(1, round(share * diameter))
    for k in range(len(images)):
        if not truth[k].any():
            continue
        if depth is None:
            core = np.zeros_like(truth[k])
        else:
            disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * depth + 1,) * 2)
            core = cv2.erode(truth[k].astype(np.uint8), disc).astype(bool)
        painted[k] = paint_out(images[k][..., None], truth[k] & ~core)[..., 0]
        if core.any():
            inner = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)
            left[k] = cv2.erode(core.astype(np.uint8), inner).astype(bool)
    return painted, left


def measure_lgg_studies(model: str | Path, data: str | Path = "../shared/data") -> dict[str, Any]:
    """Per study and per sequence: volume error (%), longest and perpendicular diameter error (pixels)."""
    from brain_cnn.inference.assessment import assess_stack
    from brain_cnn.inference.predictor import Predictor
    from brain_cnn.inference.study import category_of, measure_case, measure_masks
    from brain_cnn.scan.decode import decode_image
    from brain_cnn.scan.read import Scan

    model, data = Path(model), Path(data)
    held = read_json(sources_file(model))["brain-tumor-lgg"]["test"]
    predictor = Predictor(model)
    rows, agreement = [], []

    def measured(images, name):
        scan = Scan(name, "image", images, [str(i) for i in range(len(images))], pixel_spacing=(1.0, 1.0),
                    slice_spacing=1.0)
        return measure_case(assess_stack(predictor, scan))

    for (case, sequence), slices in lgg_studies(data, held).items():
        images = np.stack([decode_image(path.read_bytes(), path.name) for _, path, _ in slices])
        truth = np.stack([decode_image(mask.read_bytes(), mask.name) > 127 if mask is not None
                          else np.zeros(images.shape[1:], bool) for _, _, mask in slices])
        numbers = [n for n, _, _ in slices]
        found = measured(images, f"{case} {sequence}")
        expert = measure_masks(truth, (1.0, 1.0), 1.0, min_slices=1)  # the expert's mask is the truth, all of it
        for level, share in SHRINKS.items() if expert.voxels else ():
            painted, left = shrunk(images, truth, expert.diameters[0], share)
            later, expert_later = measured(painted, f"{case} {sequence} {level}"), measure_masks(left, (1.0, 1.0), 1.0,
                                                                                                min_slices=1)
            agreement.append({"case": case, "sequence": sequence, "shrink": level,
                              "expert": category_of(expert_later.product or 0.0, expert.product),
                              "found": category_of(later.product or 0.0, found.product or 0.0)})
            # The same pair the other way round is a tumour grown by a known amount: the painted study first.
            agreement.append({"case": case, "sequence": sequence, "grow": level,
                              "expert": category_of(expert.product, expert_later.product or 0.0),
                              "found": category_of(found.product or 0.0, later.product or 0.0)})
        row = {"case": case, "sequence": sequence, "slices": len(slices),
               "gaps": int(numbers[-1] - numbers[0] + 1 - len(numbers)),
               "voxels": found.voxels, "expert_voxels": expert.voxels,
               "diameters": list(found.diameters) if found.diameters else None,
               "expert_diameters": list(expert.diameters) if expert.diameters else None,
               "left_out": sum("left out" in n for n in found.notes)}
        if expert.voxels:
            row["volume_error_percent"] = 100.0 * (found.voxels - expert.voxels) / expert.voxels
        if found.diameters and expert.diameters:
            row["longest_error"] = found.diameters[0] - expert.diameters[0]
            row["perpendicular_error"] = found.diameters[1] - expert.diameters[1]
        rows.append(row)
        print(f"{case} {sequence}: {found.voxels} voxels against {expert.voxels}", file=sys.stderr, flush=True)
    by_sequence = {}
    for sequence in sorted({r["sequence"] for r in rows}):
        mine = [r for r in rows if r["sequence"] == sequence]
        by_sequence[sequence] = {
            "studies": len(mine),
            "with_tumour": sum(r["expert_voxels"] > 0 for r in mine),
            "volume_error_percent": _summary([r["volume_error_percent"] for r in mine if "volume_error_percent" in r]),
            "longest_error_pixels": _summary([r["longest_error"] for r in mine if "longest_error" in r]),
            "perpendicular_error_pixels": _summary([r["perpendicular_error"] for r in mine
                                                    if "perpendicular_error" in r]),
            "tumour_missed": sum(r["expert_voxels"] > 0 and not r["voxels"] for r in mine),
            "tumour_where_none": sum(not r["expert_voxels"] and r["voxels"] > 0 for r in mine),
        }
    for sequence, summary in by_sequence.items():
        mine = [a for a in agreement if a["sequence"] == sequence]
        for key, name in (("shrink", "category_agreement"), ("grow", "category_agreement_grown")):
            summary[name] = {level: {"studies": len(group), "agree": sum(a["expert"] == a["found"] for a in group),
                                     "expert": sorted({a["expert"] for a in group})}
                             for level in SHRINKS if (group := [a for a in mine if a.get(key) == level])}
    return {"data": "brain-tumor-lgg test patients (the sources.json of the model or its tumour-map member), one study per patient and sequence",
            "units": "pixels of the 192-px slice, 1 slice apart (the set gives no spacing)",
            "shrinks": "a later study made by painting out the tumour's rim (a share of its longest diameter deep) "
                       "or all of it; the category of the product's change by the network against the masks'",
            "grows": "the same pairs the other way round: the painted study as the prior, the original as the later "
                     "study, so the tumour grows back by a known amount",
            "by_sequence": by_sequence, "studies": rows, "agreement": agreement}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", default="../shared/data")
    args = parser.parse_args(argv)
    try:
        report = measure_lgg_studies(args.model, args.data)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_json(Path(args.model) / FILE, report)
    print("| sequence | studies (with tumour) | volume error, median / worst | longest diameter error, median / "
          "worst | perpendicular, median / worst | tumour missed |")
    print("|---|---|---|---|---|---|")
    for sequence, s in report["by_sequence"].items():
        v, lo, pe = s["volume_error_percent"], s["longest_error_pixels"], s["perpendicular_error_pixels"]

        def pair(summary, unit):
            return f"{summary['median_abs']:.1f} / {summary['worst_abs']:.1f}{unit}" if summary["count"] else "-"

        print(f"| {sequence} | {s['studies']} ({s['with_tumour']}) | {pair(v, ' %')} | {pair(lo, ' px')} | "
              f"{pair(pe, ' px')} | {s['tumour_missed']} |")
    for key, what in (("category_agreement", "painted out"), ("category_agreement_grown", "grown back")):
        print("\n| sequence | " + " | ".join(f"category agrees, {level} {what}" for level in SHRINKS) + " |")
        print("|---|" + "---|" * len(SHRINKS))
        for sequence, s in report["by_sequence"].items():
            cells = [f"{c['agree']} of {c['studies']} (masks: {', '.join(c['expert'])})" for c in s[key].values()]
            print(f"| {sequence} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

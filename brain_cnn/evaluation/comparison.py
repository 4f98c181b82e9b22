"""Several model folders on the same held-out images: does one find more tumours than another, and type them?

The held-out sets (the public data under ``--data``):

* the yes/no set, every image;
* the 44-class set's test split (``models/brain-tumor-44c/split.json``), by sequence;
* the LGG test patients (the patient split of ``--lgg-split``, a tumour-map
  run's ``sources.json``), by sequence; their tumour-free slices stand in for
  normal scans (they come from tumour patients);
* the 4-class set's official ``Testing`` images, for the 4-class accuracy.

Every image with a copy of any kind (plain, mirrored, flipped, rotated:
:mod:`brain_cnn.data.leakage`) among the images *any* compared model trained
or validated on is left out for *all* of them, so every model is measured on
the same images. Per model and set: sensitivity and specificity of the call
(the card's decision rule, the operating point of the app and the CLI), the
ROC AUC of the tumour score 1 - P(no tumour), the sensitivity at a specificity
of at least 90 % (the ROC curve read at that specificity: how well the score
ranks, whatever the threshold), and the share of slices the
out-of-distribution gate refuses; for a model with tumour maps, whether the
outline it shows agrees with the call and the expert masks
(:func:`outline_figures`).

``python -m brain_cnn.evaluation.comparison models/A models/B ... --out F.json``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from brain_cnn.data.dataset import Sample, SplitManifest, discover
from brain_cnn.data.label_maps import NO_TUMOUR, TUMOUR, bundled_label_map
from brain_cnn.data.leakage import files_with_copies, hash_images
from brain_cnn.data.masks import MASK, mask_folder
from brain_cnn.data.pipeline import SOFT_TUMOUR, decode_samples
from brain_cnn.errors import BrainCnnError
from brain_cnn.evaluation.screening import group_screening, sensitivity_at_specificity
from brain_cnn.files import read_json, write_json
from brain_cnn.inference.calibration import apply_temperature
from brain_cnn.inference.decision import decide
from brain_cnn.inference.predictor import predict_all
from brain_cnn.model.card import SPLIT_FILE
from brain_cnn.model.folder import load_model
from brain_cnn.model.tumour_maps import map_output
from brain_cnn.scan.sequences import sequence_of

__all__ = ["held_out_sets", "sensitivity_at_specificity", "outline_figures", "compare_models", "table", "main"]

def held_out_sets(data: Path, lgg_split: Path, c44_split: Path) -> dict[str, tuple[Path, list[tuple[str, str, str, str]]]]:
    """{set name: (data root, [(path relative to it, kind, model class or "", sequence)])}."""
    classes = ["glioma", "meningioma", "notumor", "pituitary"]

    def mapped(root: Path, samples) -> list[tuple[str, str, str, str]]:
        mapping = bundled_label_map(root)
        rows = []
        for sample in samples:
            target = mapping.target(sample.label, classes)
            if target.kind in (TUMOUR, NO_TUMOUR):
                model_class = "notumor" if target.kind == NO_TUMOUR else target.model_class or ""
                rows.append((sample.path, target.kind, model_class, sequence_of(sample.label) or "unstated"))
        return rows

    yes_no = discover(data / "brain-tumor-yes-no")
    c44 = SplitManifest.load(c44_split)
    c44_root = Path(c44.root)
    lgg = discover(data / "brain-tumor-lgg")
    held = set(read_json(lgg_split)["brain-tumor-lgg"]["test"])
    four = discover(data / "brain-tumor-mri")
    return {
        "yes/no set": (yes_no.root, mapped(yes_no.root, yes_no.splits["all"])),
        "44-class test split": (c44_root, mapped(c44_root, c44.splits["test"])),
        "LGG test patients": (lgg.root, mapped(lgg.root, [s for s in lgg.splits["all"] if s.path in held])),
        "4-class official test": (four.root, mapped(four.root, four.splits["test"])),
    }


def _seen_paths(folder: Path) -> set[str]:
    """Absolute paths of every image a model folder (its members included) trained or validated on."""
    paths = set()
    manifest = SplitManifest.load(folder / SPLIT_FILE)
    for split, samples in manifest.splits.items():
        if split != "test":
            paths |= {os.path.abspath(os.path.join(manifest.root, s.path)) for s in samples}
    sources = read_json(folder / "sources.json", default={})
    for name, record in sources.items() if isinstance(sources, dict) else []:
        root = Path(manifest.root) / name if (Path(manifest.root) / name).is_dir() else Path(manifest.root)
        for split in ("train", "validation"):
            paths |= {os.path.abspath(root / p) for p in record.get(split, [])}
    return paths


def _figures(kinds: np.ndarray, called: np.ndarray, score: np.ndarray, refused: np.ndarray | None) -> dict[str, Any]:
    """The screening figures a comparison reports (:func:`~brain_cnn.evaluation.screening.group_screening`'s)."""
    found = group_screening(kinds, called, score)
    out = {"tumours": found["tumour"], "normals": found["no_tumour"],
           **{key: found[key] for key in ("sensitivity", "specificity", "roc_auc", "sensitivity_at_90_specificity")}}
    if refused is not None:
        out["refused_by_gate"] = round(float(refused.mean()), 4)
    return out


def outline_figures(maps: np.ndarray, images: np.ndarray, masks: np.ndarray | None, masked: np.ndarray,
                    kinds: np.ndarray, called: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """Whether the outline shown agrees with the truth, per group (sequence).

    An outline is shown where the map reaches 0.5 and :func:`~brain_cnn.inference.outline.outline_doubt` finds no
    reason to doubt it (the app's rule). On no-tumour slices: the share with an outline shown, and with any
    outline before the doubt. On tumour slices with an expert mask (``masked``): the share with none shown, the
    share whose shown outline covers no masked pixel, and the share doubted.
    """
    from brain_cnn.inference.outline import OUTLINE_LEVEL, brain_mask, map_on_square, outline_doubt

    side = images.shape[1]
    brains = [brain_mask(image[..., 0]) for image in images]
    shown, found_any, doubted, misses = (np.zeros(len(maps), bool) for _ in range(4))
    for i, tumour_map in enumerate(maps):
        square = map_on_square(tumour_map, side)
        found = square >= OUTLINE_LEVEL
        found_any[i] = found.any()
        doubted[i] = found_any[i] and outline_doubt(square, brains[i], bool(called[i])) is not None
        shown[i] = found_any[i] and not doubted[i]
        if masks is not None and masked[i]:
            misses[i] = shown[i] and not (found & (masks[i, ..., 0] > 127)).any()
    normal = kinds == NO_TUMOUR

    def share(flags, among):
        return {"share": round(float(flags[among].mean()), 4) if among.any() else None, "of": int(among.sum())}

    out = {}
    for group in sorted(set(groups.tolist())):
        here = groups == group
        entry = {"no_tumour_slices_with_an_outline_shown": share(shown, here & normal),
                 "no_tumour_slices_with_any_outline": share(found_any, here & normal)}
        if masked[here].any():
            entry.update(masked_tumours_without_an_outline_shown=share(~shown, here & masked),
                         masked_tumours_whose_outline_misses_the_tumour=share(misses, here & masked),
                         masked_tumours_whose_outline_is_doubted=share(doubted, here & masked))
        out[group] = entry
    return out


def compare_models(folders: list[str | Path], data: str | Path = "../shared/data",
                   lgg_split: str | Path = "models/brain-tumor-maps/sources.json",
                   c44_split: str | Path = "models/brain-tumor-44c/split.json", batch_size: int = 64) -> dict[str, Any]:
    """Every model folder on the same held-out images (see the module's docstring)."""
    folders = [Path(f) for f in folders]
    sets = held_out_sets(Path(data), Path(lgg_split), Path(c44_split))
    seen = set().union(*(_seen_paths(f) for f in folders))
    seen_hashes = hash_images([Path(p) for p in sorted(seen)])
    report: dict[str, Any] = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "data": str(data), "lgg_split": str(lgg_split), "c44_split": str(c44_split),
                              "models": {}, "sets": {}}
    kept_rows = {}
    for name, (root, rows) in sets.items():
        files = [os.path.abspath(root / r[0]) for r in rows]
        copies = files_with_copies(hash_images([Path(f) for f in files], files), seen_hashes)
        kept_rows[name] = [r for r, f in zip(rows, files) if f not in copies and f not in seen]
        report["sets"][name] = {"images": len(rows), "left_out_as_seen": len(rows) - len(kept_rows[name])}
    for folder in folders:
        loaded = load_model(folder)
        card = loaded.card
        result = {"sha256": card.sha256, "decision": card.decision}
        normal = card.classes.index("notumor")
        has_map = map_output(loaded.model) is not None
        for name, (root, _) in sets.items():
            rows = kept_rows[name]
            # A normal slice's model class is "notumor"; a tumour of a type the model does not name is a soft tumour.
            samples = [Sample(r[0], r[2] or SOFT_TUMOUR) for r in rows]
            masks = mask_folder(root) if has_map else None
            decoded = decode_samples(samples, root, card.classes, card.image_size, masks=masks)
            by_path = {r[0]: r for r in rows}
            kept = [by_path[f] for f in decoded.files]
            features, raw, maps = predict_all(loaded.model, decoded.images, batch_size, card.flip_averaging)
            probs = apply_temperature(raw, card.temperature)
            predicted = decide(probs, card.classes, card.decision)
            kinds = np.array([r[1] for r in kept])
            called = predicted != normal
            score = 1.0 - probs[:, normal]
            refused = loaded.gate.refuse(features) if loaded.gate is not None else None
            sequences = np.array([r[3] for r in kept])
            entry = {"all": _figures(kinds, called, score, refused)}
            if set(sequences) != {"unstated"}:
                entry["by_sequence"] = {s: _figures(kinds[sequences == s], called[sequences == s],
                                                    score[sequences == s],
                                                    None if refused is None else refused[sequences == s])
                                        for s in sorted(set(sequences))}
            if has_map:
                masked = (np.array([m == MASK for m in decoded.mask_status]) if masks is not None
                          else np.zeros(len(kept), bool))
                if masks is not None:
                    masked &= decoded.masks.reshape(len(kept), -1).max(axis=1) > 127
                masked &= kinds == TUMOUR
                entry["outlines"] = outline_figures(maps, decoded.images, decoded.masks, masked, kinds, called,
                                                    sequences)
            if name == "4-class official test":
                truth = np.array([card.classes.index(r[2]) for r in kept])
                entry["accuracy"] = round(float((predicted == truth).mean()), 4)
                entry["images"] = len(truth)
            result[name] = entry
        report["models"][folder.name] = result
    return report


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def table(report: dict[str, Any]) -> str:
    """Markdown: per held-out group, each model's sensitivity at >= 90 % specificity, and at its operating point."""
    models = list(report["models"])
    lines = ["| held out | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for name in report["sets"]:
        first = report["models"][models[0]][name]
        groups = [("all", None)] + [(s, s) for s in first.get("by_sequence", {})]
        for label, sequence in groups:
            cells = []
            for model in models:
                entry = report["models"][model][name]
                group = entry["all"] if sequence is None else entry["by_sequence"][sequence]
                cells.append(f"{_pct(group['sensitivity_at_90_specificity'])} ({_pct(group['sensitivity'])} / "
                             f"{_pct(group['specificity'])})")
            title = name if sequence is None else f"{name}, {label}"
            lines.append(f"| {title} ({first['all']['tumours'] if sequence is None else first['by_sequence'][sequence]['tumours']} tumours) | "
                         + " | ".join(cells) + " |")
    lines.append("| 4-class accuracy, official test images unseen by every model | " + " | ".join(
        f"{_pct(report['models'][m]['4-class official test']['accuracy'])} "
        f"({report['models'][m]['4-class official test']['images']} images)" for m in models) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brain_cnn.evaluation.comparison",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="model folders")
    parser.add_argument("--data", default="../shared/data", help="the folder holding the public data sets")
    parser.add_argument("--lgg-split", default="models/brain-tumor-maps/sources.json",
                        help="a tumour-map run's sources.json: the LGG test patients")
    parser.add_argument("--c44-split", default="models/brain-tumor-44c/split.json", help="the 44-class split")
    parser.add_argument("--out", required=True, help="where to write the JSON report")
    args = parser.parse_args(argv)
    try:
        report = compare_models(args.models, args.data, args.lgg_split, args.c44_split)
    except BrainCnnError as error:  # a clear line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 1
    write_json(args.out, report)
    print("sensitivity at >= 90 % specificity (sensitivity / specificity at the operating point), in %")
    print(table(report))
    print(json.dumps(report["sets"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

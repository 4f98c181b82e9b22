"""Tumour / no-tumour screening of a model on another data set, per source and per MRI sequence.

A model trained on one collection can score 98 % there and still call most
tumours of another scanner or sequence "no tumour". This module measures that:
every image of a data folder gets a screening truth from a label map
(:mod:`brain_cnn.data.label_maps`), the model calls "tumour" when its top class is
not a no-tumour class (the operating point of the app and the CLI), and the
report gives sensitivity and specificity with 95 % Wilson intervals, the ROC
AUC of the tumour score 1 - P(no tumour), per MRI sequence and per class folder.

Images that are copies (plain, mirrored, flipped or rotated; see
:mod:`brain_cnn.data.leakage`) of the model's own training or validation images are counted and the figures are repeated without them: a
"held-out source" that overlaps the training data is not held out.
Results go to ``external.json`` in the model folder, one entry per data set,
with the files of the tumours it missed and the normal scans it flagged, most
confident first, so that what it gets wrong can be looked at, not only counted.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from brain_cnn.inference.calibration import apply_temperature
from brain_cnn.data.dataset import DataFolder, Sample, SplitManifest, open_data
from brain_cnn.errors import DatasetError
from brain_cnn.data.label_maps import IGNORE, LESION, NO_TUMOUR, TUMOUR, LabelMap, bundled_label_map, load_label_map
from brain_cnn.scan.sequences import sequence_of
from brain_cnn.data.leakage import COPY_BITS, files_with_copies, hash_samples
from brain_cnn.evaluation.metrics import is_no_tumour
from brain_cnn.model.folder import CARD_FILE, EVALUATION_FILE, SPLIT_FILE, load_model
from brain_cnn.data.pipeline import decode_samples
from brain_cnn.inference.predictor import predict_outputs

__all__ = ["EXTERNAL_FILE", "LOSO_FILE", "GOAL", "LISTED_ERRORS", "sequence_note", "group_screening", "screen_data",
           "screening_outputs", "screening_errors", "evaluate_screening", "screening_table", "read_external",
           "screening_rows", "validation_statements", "refresh_card", "side_by_side"]

EXTERNAL_FILE = "external.json"
LOSO_FILE = "loso.json"  # written by brain_cnn.evaluation.loso
GOAL = {"sensitivity": 0.90, "specificity": 0.90}  # per held-out source and sequence
ERRORS_PRINTED = 5
LISTED_ERRORS = 200  # of each kind per data set: enough to look through, small enough for a report


def _wilson(successes: int, total: int) -> list[float] | None:
    if not total:
        return None
    from scipy.stats import binomtest

    interval = binomtest(successes, total).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(interval.low), 4), round(float(interval.high), 4)]


def group_screening(kinds: np.ndarray, called: np.ndarray, score: np.ndarray,
                    type_true: np.ndarray | None = None, type_pred: np.ndarray | None = None) -> dict[str, Any]:
    """Screening figures of one group of images.

    Args:
        kinds: per image ``"tumour"``, ``"no tumour"`` or ``"lesion"``.
        called: per image, whether the model called it a tumour.
        score: per image tumour score (1 - P(no tumour)), for the ROC AUC.
        type_true, type_pred: the true model class of tumours of a known type
            (``""`` when unknown) and the predicted class, for the type accuracy.
    """
    from sklearn.metrics import roc_auc_score

    kinds, called, score = np.asarray(kinds), np.asarray(called, bool), np.asarray(score, float)
    tumour, normal, lesion = kinds == TUMOUR, kinds == NO_TUMOUR, kinds == LESION
    tp, fn = int((tumour & called).sum()), int((tumour & ~called).sum())
    tn, fp = int((normal & ~called).sum()), int((normal & called).sum())
    result: dict[str, Any] = {
        "tumour": int(tumour.sum()), "no_tumour": int(normal.sum()), "lesion": int(lesion.sum()),
        "true_positive": tp, "false_negative": fn, "true_negative": tn, "false_positive": fp,
        "sensitivity": round(tp / (tp + fn), 4) if tp + fn else None,
        "sensitivity_ci95": _wilson(tp, tp + fn),
        "specificity": round(tn / (tn + fp), 4) if tn + fp else None,
        "specificity_ci95": _wilson(tn, tn + fp),
        "roc_auc": round(float(roc_auc_score(tumour[tumour | normal], score[tumour | normal])), 4)
        if tumour.any() and normal.any() else None,
        "lesion_called_tumour": round(float(called[lesion].mean()), 4) if lesion.any() else None,
    }
    if type_true is not None and type_pred is not None:
        known = tumour & (np.asarray(type_true) != "")
        if known.any():
            result["type_accuracy"] = round(float((np.asarray(type_true)[known] == np.asarray(type_pred)[known]).mean()), 4)
            result["type_known"] = int(known.sum())
    sens, spec = result["sensitivity"], result["specificity"]
    result["meets_goal"] = (None if sens is None or spec is None
                            else bool(sens >= GOAL["sensitivity"] and spec >= GOAL["specificity"]))
    return result


def screen_data(found: DataFolder, label_map: LabelMap, model_classes: list[str],
                splits: list[str] | None = None) -> list[tuple[Sample, str, str | None, str]]:
    """(sample, screening kind, model class or None, sequence) for every mapped image of a data folder.

    Raises:
        DatasetError: a missing split, or a map that does not cover a class folder.
    """
    data = found.root
    wanted = splits or list(found.splits)
    missing = [s for s in wanted if s not in found.splits]
    if missing:
        raise DatasetError(f"{data} has no {', '.join(missing)} split (it has: {', '.join(found.splits)})")
    targets = {c: label_map.target(c, model_classes) for c in found.classes}
    rows = []
    for split in wanted:
        for sample in found.splits[split]:
            target = targets[sample.label]
            if target.kind != IGNORE:
                rows.append((sample, target.kind, target.model_class, sequence_of(sample.label) or "unstated"))
    if not rows:
        raise DatasetError(f"the label map leaves no images of {data} to screen")
    return rows


def _seen_in_training(folder: Path, card, data_root: Path, files: list[str]) -> dict[str, str]:
    """Files among ``files`` (relative to ``data_root``) with a copy of any kind in the model's training or
    validation split, and the kind of each."""
    manifest = folder / SPLIT_FILE
    root = Path(card.dataset.get("root", ""))
    if not manifest.is_file() or not root.is_dir():
        return {}
    saved = SplitManifest.load(manifest)
    seen = [s for split in ("train", "validation") for s in saved.splits.get(split, [])]
    query = hash_samples(data_root, [Sample(f, "") for f in files])
    return files_with_copies(query, hash_samples(root, seen))


def _groups(kinds, called, score, type_true, type_pred, sequences, folders, keep) -> dict[str, Any]:
    def figures(mask):
        return group_screening(kinds[mask], called[mask], score[mask], type_true[mask], type_pred[mask])

    result = {"overall": figures(keep)}
    named = sorted(set(sequences[keep]))
    if named != ["unstated"]:
        result["by_sequence"] = {s: figures(keep & (sequences == s)) for s in named}
    result["by_class"] = {}
    for folder in sorted(set(folders[keep])):
        mask = keep & (folders == folder)
        result["by_class"][folder] = {"kind": str(kinds[mask][0]), "count": int(mask.sum()),
                                      "called_tumour": round(float(called[mask].mean()), 4)}
    return result


def screening_outputs(loaded, data: str | Path, label_map: str | Path | None = None,
                      splits: list[str] | None = None, batch_size: int = 64):
    """A loaded model's calibrated probabilities on every mapped image of ``data``.

    Returns (data folder, label map, (sample, kind, model class, sequence) per decoded image,
    the decoded images, probabilities (N, K), files with a copy in the model's training data and its kind).

    Raises:
        DatasetError: no label map for the data, a map that does not fit, or a model without a no-tumour class.
    """
    card = loaded.card
    if not any(is_no_tumour(c) for c in card.classes):
        raise DatasetError(f"{card.name} has no no-tumour class, so it cannot screen for tumours")
    found = open_data(data)
    mapping = load_label_map(label_map) if label_map else bundled_label_map(found.root)
    if mapping is None:
        raise DatasetError(f"no bundled label map for {found.root.name}; give one with --label-map "
                           "(see brain_cnn/data/label_maps/ for examples)")
    rows = screen_data(found, mapping, card.classes, splits)
    samples = [r[0] for r in rows]
    decoded = decode_samples(samples, found.root, sorted({s.label for s in samples}), card.image_size)
    by_path = {r[0].path: r for r in rows}
    kept = [by_path[f] for f in decoded.files]
    _, raw = predict_outputs(loaded.model, decoded.images, batch_size, card.flip_averaging, card.mixed_precision)
    probs = apply_temperature(raw, card.temperature)
    seen = _seen_in_training(loaded.folder, card, found.root, decoded.files)
    return found, mapping, kept, decoded, probs, seen


def side_by_side(name: str, keep: np.ndarray, kinds: np.ndarray, sequences: np.ndarray, negative: np.ndarray,
                 variants: list[np.ndarray]) -> list[str]:
    """Text lines comparing several probability arrays (N, K) of the same images, for benchmarks.

    One line for the ``keep`` images and one per named sequence among them, each with
    "sensitivity / specificity / ROC AUC" of the top-class call under every variant.
    """
    def pct(v):
        return "  n/a" if v is None else f"{v:5.1%}"

    rows = [(name, keep)] + [(f"  {s}", keep & (sequences == s)) for s in sorted(set(sequences)) if s != "unstated"]
    lines = []
    for label, mask in rows:
        line = f"{label[-30:]:30}"
        for p in variants:
            r = group_screening(kinds[mask], ~negative[p[mask].argmax(1)], 1 - p[mask][:, negative].sum(1))
            auc = "  n/a" if r["roc_auc"] is None else f"{r['roc_auc']:.3f}"
            line += f" {pct(r['sensitivity']):>14} / {pct(r['specificity'])} / {auc}"
        lines.append(f"{line} ({int(mask.sum())} images)")
    return lines


def screening_errors(files: list[str], folders: np.ndarray, sequences: np.ndarray, kinds: np.ndarray,
                     called: np.ndarray, score: np.ndarray, keep: np.ndarray,
                     limit: int = LISTED_ERRORS) -> dict[str, Any]:
    """The tumours called "no tumour" and the normal scans called "tumour" among the ``keep`` images.

    Each as file, class folder, sequence and tumour score; the most confident
    mistakes first (a missed tumour with the lowest score is the most worrying);
    at most ``limit`` of each, with the full counts.
    """
    def listed(mask, order):
        chosen = np.flatnonzero(mask)
        chosen = chosen[np.argsort(order * score[chosen], kind="stable")][:limit]
        return [{"file": files[i], "folder": str(folders[i]), "sequence": str(sequences[i]),
                 "tumour_score": round(float(score[i]), 4)} for i in chosen]

    missed = keep & (kinds == TUMOUR) & ~called
    flagged = keep & (kinds == NO_TUMOUR) & called
    return {"missed_tumours": listed(missed, 1), "missed_count": int(missed.sum()),
            "flagged_normals": listed(flagged, -1), "flagged_count": int(flagged.sum())}


def evaluate_screening(model_folder: str | Path, data: str | Path, label_map: str | Path | None = None,
                       splits: list[str] | None = None, batch_size: int = 64) -> dict[str, Any]:
    """Screen every image of ``data`` with the model; write and return the report.

    Raises:
        ModelFolderError: the model folder is unusable.
        DatasetError: no label map for the data, a map that does not fit, or a model without a no-tumour class.
    """
    loaded = load_model(model_folder)
    folder, card = loaded.folder, loaded.card
    found, mapping, kept, decoded, probs, seen = screening_outputs(loaded, data, label_map, splits, batch_size)
    negative = np.array([is_no_tumour(c) for c in card.classes])
    predicted = probs.argmax(axis=1)
    kinds = np.array([r[1] for r in kept])
    called = ~negative[predicted]
    score = 1.0 - probs[:, negative].sum(axis=1)
    type_true = np.array([r[2] or "" if r[1] == TUMOUR else "" for r in kept])
    type_pred = np.array([card.classes[i] for i in predicted])
    sequences = np.array([r[3] for r in kept])
    folders = np.array([r[0].label for r in kept])
    unseen = np.array([f not in seen for f in decoded.files])
    report: dict[str, Any] = {
        "model": card.name,
        "sha256": card.sha256,
        "data": str(data),
        "data_name": found.root.name,
        # As given (a split manifest's as it records it), not resolved: reports travel between machines.
        "data_root": SplitManifest.load(data).root if Path(data).is_file() else str(data),
        "splits": splits or "all",
        "label_map": mapping.description,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "operating_point": "tumour when the top calibrated class is not a no-tumour class",
        "goal": GOAL,
        "count": int(len(kept)),
        **_groups(kinds, called, score, type_true, type_pred, sequences, folders, np.ones(len(kept), bool)),
        "seen_in_training": int((~unseen).sum()),
        "seen_by_kind": dict(sorted(Counter(seen.values()).items())),
        "copy_bits": COPY_BITS,
        "unreadable": [{"file": f, "error": e} for f, e in decoded.unreadable],
        # Listed from the images the figures shown are computed on: those it did not train on.
        "errors": screening_errors(decoded.files, folders, sequences, kinds, called, score, unseen),
    }
    if seen:
        report["without_training_duplicates"] = _groups(kinds, called, score, type_true, type_pred, sequences,
                                                        folders, unseen)
    external = read_external(folder)
    # Screening one split (e.g. another model's test split) must not overwrite the whole set's entry.
    external[report["data_name"] + (f", {' and '.join(splits)} split" if splits else "")] = report
    (folder / EXTERNAL_FILE).write_text(json.dumps(external, indent=1))
    refresh_card(folder)
    return report


def refresh_card(folder: str | Path) -> None:
    """Write the card's "validated_on" sentences from ``external.json`` and ``loso.json``."""
    folder = Path(folder)
    loso_path = folder / LOSO_FILE
    try:
        loso = json.loads(loso_path.read_text()) if loso_path.is_file() else None
    except ValueError:
        loso = None
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        return
    card = json.loads(card_path.read_text())
    card["validated_on"] = validation_statements(read_external(folder), loso, trained_data_sets(card))
    report_path = folder / EVALUATION_FILE
    if report_path.is_file():  # the limitations mention where it was validated
        from brain_cnn.evaluation.evaluate import limitations

        card["limitations"] = limitations(card, json.loads(report_path.read_text()))
    card_path.write_text(json.dumps(card, indent=2) + "\n")


def trained_data_sets(card: dict[str, Any]) -> set[str]:
    """The data sets some of whose images a model (its card) trained on: the main one and each added one."""
    dataset = card.get("dataset", {})
    # Cards written before sources carried "data_set" have only the display name, "NAME (training split of ...)".
    return {dataset.get("name")} | {s.get("data_set") or s["name"].split(" (")[0]
                                    for s in dataset.get("sources", []) if "label_map" in s}


def sequence_note(sequence: str, evidence: str, external: dict[str, Any], trained_on: set[str]) -> str:
    """What a reader of one scan should know of the model on that scan's MRI sequence.

    Taken from the model's screening reports (``external.json``): the figures on
    that sequence of another source, one the model did not train on when there
    is one, without the images it trained on.
    """
    found = sorted(((name, report) for name, report in external.items()
                    if sequence in _unseen(report).get("by_sequence", {})),
                   key=lambda item: item[1].get("data_name") in trained_on)
    head = f"{sequence} scan ({evidence})."
    if not found:
        return (f"{head} This model has not been screened on {sequence} slices of another source, so how well it "
                "finds tumours on them is not known.")
    name, report = found[0]
    g = _unseen(report)["by_sequence"][sequence]
    source = ("a source it was partly trained on" if report.get("data_name") in trained_on
              else "a source it was not trained on")
    found_kept = []
    if g["sensitivity"] is not None:
        found_kept.append(f"found {g['sensitivity']:.0%} of {g['tumour']} tumour slices")
    if g["specificity"] is not None:
        found_kept.append(f"kept {g['specificity']:.0%} of {g['no_tumour']} normal slices normal")
    text = f"{head} On {sequence} slices of {name} ({source}) this model {' and '.join(found_kept)}."
    if g["sensitivity"] is not None and g["sensitivity"] < GOAL["sensitivity"]:
        text += " A 'no tumour' call on this scan does not rule a tumour out."
    return text


def read_external(folder: str | Path) -> dict[str, Any]:
    """The screening reports of a model folder by data set name; empty when there are none or the file is bad."""
    path = Path(folder) / EXTERNAL_FILE
    try:
        value = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _line(name: str, figures: dict[str, Any]) -> str:
    def pct(v):
        return "   -  " if v is None else f"{v:6.1%}"

    auc = "  -  " if figures["roc_auc"] is None else f"{figures['roc_auc']:.3f}"
    return (f"  {name:<22} tumour {figures['tumour']:>5}  normal {figures['no_tumour']:>5}  "
            f"sens {pct(figures['sensitivity'])}  spec {pct(figures['specificity'])}  AUC {auc}")


def screening_table(report: dict[str, Any]) -> str:
    """A short plain-text summary for the terminal."""
    lines = [f"screening: model {report['model']} on {report['data']} ({report['count']} images; "
             f"{report['seen_in_training']} are copies, in some orientation, of its training or validation images)",
             _line("all", report["overall"])]
    lines += [_line(f"sequence {s}", f) for s, f in report.get("by_sequence", {}).items()]
    clean = report.get("without_training_duplicates")
    if clean:
        lines.append(_line("unseen by training", clean["overall"]))
    lines.append("  called tumour, per class folder:")
    lines += [f"    {name:<26} {row['kind']:<9} n={row['count']:<4} {row['called_tumour']:6.1%}"
              for name, row in report["by_class"].items()]
    errors = report.get("errors", {})
    for kind, count, what in (("missed_tumours", "missed_count", "tumours called no tumour"),
                              ("flagged_normals", "flagged_count", "normal scans called tumour")):
        if errors.get(count):
            worst = ", ".join(f"{e['file']} ({e['tumour_score']:.2f})" for e in errors[kind][:ERRORS_PRINTED])
            lines.append(f"  {errors[count]} {what} (unseen by training); most confident: {worst}")
    return "\n".join(lines)


def _unseen(report: dict[str, Any]) -> dict[str, Any]:
    """The figures to show: without the images the model was trained on, when some were."""
    return report.get("without_training_duplicates", report) if report.get("seen_in_training") else report


def _rows(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    shown = _unseen(report)
    groups = [("all", shown["overall"])] + list(shown.get("by_sequence", {}).items())
    return [{"data set": name, "sequence": sequence, "tumour": g["tumour"], "no tumour": g["no_tumour"],
             "sensitivity": g["sensitivity"], "specificity": g["specificity"], "ROC AUC": g["roc_auc"],
             "goal met": g["meets_goal"], "left out (in training)": report.get("seen_in_training", 0)}
            for sequence, g in groups]


def screening_rows(external: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows, one per data set and MRI sequence, of a model's screening reports."""
    return [row for name, report in external.items() for row in _rows(name, report)]


def validation_statements(external: dict[str, Any], loso: dict[str, Any] | None,
                          trained_on: set[str] | None = None) -> list[str]:
    """Plain sentences for the model card: where the model (or its recipe) was screened, and how it did.

    ``trained_on`` names the data sets whose images (some of them) the model trained on: screening
    their other images is not validation on an independent source, and the sentence says so.
    """
    def figures(g):
        sens = "n/a" if g["sensitivity"] is None else f"{g['sensitivity']:.1%}"
        spec = "n/a" if g["specificity"] is None else f"{g['specificity']:.1%}"
        verdict = {True: "goal met", False: "below the 90%/90% goal", None: "goal not assessable"}[g["meets_goal"]]
        return f"sensitivity {sens}, specificity {spec} ({verdict})"

    lines = []
    for name, report in external.items():
        seen = report["seen_in_training"]
        # Images the model was trained on say nothing about new patients: report without them.
        shown = _unseen(report)
        lines.append(f"Screened on {name} ({report['count']} images"
                     + (f"; {seen} copies of its training images, in any orientation, left out" if seen else "")
                     + f"): {figures(shown['overall'])}"
                     + (" (a source it was partly trained on, so not independent)."
                        if report.get("data_name") in (trained_on or set()) else "."))
        for sequence, g in shown.get("by_sequence", {}).items():
            lines.append(f"  {name} {sequence}: {figures(g)}.")
    for name, fold in (loso or {}).get("folds", {}).items():
        lines.append(f"Same recipe trained without {name} ({', '.join(fold['trained_on'])}), screening {name}: "
                     f"{figures(fold['overall'])}.")
    return lines

"""Tumour / no-tumour screening of a model on another data set, per source and per MRI sequence.

A model trained on one collection can score 98 % there and still call most
tumours of another scanner or sequence "no tumour". This module measures that:
every image of a data folder gets a screening truth from a label map
(:mod:`brain_cnn.data.label_maps`), the model calls "tumour" when the class its
card's decision rule calls (:mod:`brain_cnn.inference.decision`) is not a
no-tumour class (the operating point of the app and the CLI), and the
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

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from brain_cnn.data.carves import CALIBRATION
from brain_cnn.data.classes import is_no_tumour
from brain_cnn.data.dataset import DataFolder, Sample, SplitManifest, open_data
from brain_cnn.data.label_maps import IGNORE, LESION, NO_TUMOUR, TUMOUR, LabelMap, bundled_label_map, load_label_map
from brain_cnn.data.leakage import COPY_BITS, files_with_copies, hash_samples
from brain_cnn.data.pipeline import decode_samples
from brain_cnn.errors import DatasetError
from brain_cnn.evaluation.coverage import set_figures
from brain_cnn.evaluation.map_scores import masks_for, split_map_scores
from brain_cnn.evaluation.findings import refresh_card
from brain_cnn.files import write_json
from brain_cnn.inference.calibration import apply_temperature
from brain_cnn.inference.decision import TUMOUR_FIRST, check_decision, decide
from brain_cnn.inference.predictor import predict_all
from brain_cnn.model.card import EXTERNAL_FILE, SPLIT_FILE, read_external
from brain_cnn.model.folder import load_model
from brain_cnn.reports.sentences import GOAL
from brain_cnn.scan.sequences import sequence_of

__all__ = ["LISTED_ERRORS", "SPECIFICITY", "group_screening", "sensitivity_at_specificity", "screen_data", "Screened",
           "screening_pass", "screening_outputs", "screening_errors", "evaluate_screening"]

LISTED_ERRORS = 200  # of each kind per data set: enough to look through, small enough for a report
SPECIFICITY = 0.90  # where a ranking is read when no threshold can be fitted on the look (a source left out)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _wilson(successes: int, total: int) -> list[float] | None:
    if not total:
        return None
    from scipy.stats import binomtest

    interval = binomtest(successes, total).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(interval.low), 4), round(float(interval.high), 4)]


def sensitivity_at_specificity(tumour: np.ndarray, score: np.ndarray, specificity: float = SPECIFICITY) -> float | None:
    """The highest sensitivity of any threshold on ``score`` whose specificity is at least ``specificity``."""
    tumour = np.asarray(tumour, bool)
    if not tumour.any() or tumour.all():
        return None
    normals = np.sort(score[~tumour])
    # Call a tumour above t: specificity = share of normals <= t. The lowest t that keeps enough normals below.
    allowed = int(np.floor((1 - specificity) * len(normals) + 1e-9))  # normals that may lie above t
    threshold = normals[len(normals) - allowed - 1] if allowed < len(normals) else -np.inf
    return float((score[tumour] > threshold).mean())


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
        "sensitivity_at_90_specificity": _rounded(sensitivity_at_specificity(tumour[tumour | normal],
                                                                           score[tumour | normal])),
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


def _seen_in_training(folder: Path, card, data_root: Path, files: list[str],
                      splits: tuple[str, ...] = ("train", "validation")) -> dict[str, str]:
    """Files among ``files`` (relative to ``data_root``) with a copy of any kind in the model's training or
    validation split (or other ``splits`` of its saved split), and the kind of each."""
    manifest = folder / SPLIT_FILE
    root = Path(card.dataset.get("root", ""))
    if not manifest.is_file() or not root.is_dir():
        return {}
    saved = SplitManifest.load(manifest)
    seen = [s for split in splits for s in saved.splits.get(split, [])]
    if not seen:
        return {}
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


@dataclass
class Screened:
    """One pass of a model over a data set to screen (:func:`screening_pass`)."""

    found: DataFolder
    mapping: LabelMap
    kept: list  # (sample, kind, model class, sequence) per decoded image
    decoded: Any  # DecodedSplit; with the tumour masks when asked for
    probs: np.ndarray  # calibrated (N, K)
    seen: dict[str, str]  # files with a copy in the model's training or validation data, and its kind
    masks: Path | None  # where the expert masks came from, when the maps are scored
    maps: np.ndarray | None  # the tumour maps (N, S/2, S/2), when the maps are scored


def screening_pass(loaded, data: str | Path, label_map: str | Path | None = None, splits: list[str] | None = None,
                   batch_size: int = 64, masks: str | Path | None = None, score_maps: bool = False) -> Screened:
    """A loaded model's calibrated probabilities on every mapped image of ``data``; with ``score_maps``, for a
    tumour-map model, each image's expert mask (from ``masks``, else the data's ``-masks`` folder where there
    is one: :func:`~brain_cnn.evaluation.map_scores.masks_for`) and the model's tumour map as well.

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
    masks = masks_for(loaded, found.root, masks) if score_maps else None
    rows = screen_data(found, mapping, card.classes, splits)
    samples = [r[0] for r in rows]
    decoded = decode_samples(samples, found.root, sorted({s.label for s in samples}), card.image_size, masks=masks)
    by_path = {r[0].path: r for r in rows}
    kept = [by_path[f] for f in decoded.files]
    _, raw, maps = predict_all(loaded.model, decoded.images, batch_size, card.flip_averaging, card.mixed_precision)
    probs = apply_temperature(raw, card.temperature)
    seen = _seen_in_training(loaded.folder, card, found.root, decoded.files)
    return Screened(found, mapping, kept, decoded, probs, seen, masks, maps if masks is not None else None)


def screening_outputs(loaded, data: str | Path, label_map: str | Path | None = None,
                      splits: list[str] | None = None, batch_size: int = 64):
    """:func:`screening_pass` as a tuple: (data folder, label map, (sample, kind, model class, sequence) per
    decoded image, the decoded images, calibrated probabilities (N, K), files with a copy in the model's
    training data and its kind)."""
    done = screening_pass(loaded, data, label_map, splits, batch_size)
    return done.found, done.mapping, done.kept, done.decoded, done.probs, done.seen


def _map_scores(done: Screened, sequences: np.ndarray, unseen: np.ndarray) -> dict[str, Any]:
    """Dice and peak inside the tumour on the screened images with a mask: all, by sequence, and (when some
    were trained on) without those."""
    named = sorted(set(sequences))

    def scores(keep):
        result = split_map_scores(done.decoded, done.maps, done.masks, keep)
        if named != ["unstated"]:
            result["by_sequence"] = {name: split_map_scores(done.decoded, done.maps, done.masks,
                                                            keep & (sequences == name)) for name in named}
        return result

    result = scores(np.ones(len(unseen), bool))
    if not unseen.all():
        result["without_training_duplicates"] = scores(unseen)
    return result


def _conformal(conformal, probs: np.ndarray, kept: list, classes: list[str], sequences: np.ndarray,
               unseen: np.ndarray) -> dict[str, Any]:
    """How the model's conformal sets and screening threshold did on the images it did not train on, overall and
    by sequence: on another source the guarantee may not hold, and this says so."""
    normal = next(i for i, c in enumerate(classes) if is_no_tumour(c))
    # The true class where the data says it: a normal scan's no-tumour class, a tumour of a type the model names;
    # -1 for a tumour of another or an unstated type (it counts for tumour / no tumour only).
    labels = np.array([normal if kind == NO_TUMOUR else classes.index(model_class) if model_class else -1
                       for _, kind, model_class, _ in kept])
    # Lesions that are not tumours are neither a missed tumour nor a flagged normal: left out.
    keep = unseen & np.array([kind in (TUMOUR, NO_TUMOUR) for _, kind, _, _ in kept])
    result = {"overall": set_figures(conformal, probs[keep], labels[keep], classes)}
    named = sorted(set(sequences[keep]))
    if named != ["unstated"]:
        result["by_sequence"] = {s: set_figures(conformal, probs[keep & (sequences == s)],
                                                labels[keep & (sequences == s)], classes) for s in named}
    return result


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
                       splits: list[str] | None = None, batch_size: int = 64,
                       decision: str | None = None, masks: str | Path | None = None) -> dict[str, Any]:
    """Screen every image of ``data`` with the model; write and return the report.

    ``decision`` is the rule that makes each call (:mod:`brain_cnn.inference.decision`); None takes the card's.
    The report records it. A tumour-map model's maps are also scored against the data's expert masks
    (``masks``, else the ``<data set>-masks/`` folder beside it, where there is one): Dice and peak inside the
    tumour, overall and per sequence.

    Raises:
        ModelFolderError: the model folder is unusable.
        DatasetError: no label map for the data, a map that does not fit, or a model without a no-tumour class.
        ValueError: an unknown decision rule.
    """
    loaded = load_model(model_folder)
    folder, card = loaded.folder, loaded.card
    decision = check_decision(card.decision if decision is None else decision)
    done = screening_pass(loaded, data, label_map, splits, batch_size, masks, score_maps=True)
    found, mapping, kept, decoded, probs, seen = done.found, done.mapping, done.kept, done.decoded, done.probs, done.seen
    negative = np.array([is_no_tumour(c) for c in card.classes])
    predicted = decide(probs, card.classes, decision)
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
        "decision": decision,
        "operating_point": ("tumour when the tumour classes together hold at least as much calibrated probability as "
                            "no tumour" if decision == TUMOUR_FIRST else
                            "tumour when the top calibrated class is not a no-tumour class"),
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
    if done.masks is not None:
        report["tumour_maps"] = _map_scores(done, sequences, unseen)
    if loaded.conformal is not None:
        # Nor on the calibration images (or copies of them): the sets were fitted on those.
        calibrated = _seen_in_training(folder, card, found.root, decoded.files, (CALIBRATION,))
        report["conformal"] = _conformal(loaded.conformal, probs, kept, card.classes, sequences,
                                         unseen & np.array([f not in calibrated for f in decoded.files]))
    if seen:
        report["without_training_duplicates"] = _groups(kinds, called, score, type_true, type_pred, sequences,
                                                        folders, unseen)
    external = read_external(folder)
    # Screening one split (e.g. another model's test split) must not overwrite the whole set's entry.
    external[report["data_name"] + (f", {' and '.join(splits)} split" if splits else "")] = report
    write_json(folder / EXTERNAL_FILE, external)
    refresh_card(folder)
    return report



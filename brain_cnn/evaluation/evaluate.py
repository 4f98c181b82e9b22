"""Evaluate a model folder on a data folder and write the report.

On the data the model was trained on, the saved split manifest decides which
files are test and validation, so a test figure is never computed on images
the model was trained or tuned on. Any other data folder is evaluated on its
own splits (or on all of it, if flat) and reported in
``evaluation-<data name>.json``, leaving the model's own report untouched.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from brain_cnn.inference.calibration import apply_temperature, fit_temperature
from brain_cnn.data.dataset import SplitManifest, discover
from brain_cnn.errors import DatasetError
from brain_cnn.evaluation.metrics import calibration, classification_metrics
from brain_cnn.model.folder import CARD_FILE, EVALUATION_FILE, SPLIT_FILE, ModelCard, load_model, read_json
from brain_cnn.data.pipeline import decode_samples
from brain_cnn.data.leakage import COPY_BITS, HASH_SIZE, KINDS, ImageHashes, files_with_copies, hash_samples
from brain_cnn.model.ood import FEATURE_LAYERS, GATE_FILE, fit_gate
from brain_cnn.inference.predictor import predict_outputs

__all__ = ["evaluate_model_folder", "summary_table"]


def _same_folder(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _choose_samples(folder: Path, card: ModelCard, data: str | Path | None, splits: list[str] | None):
    """Return (data root, {split: samples}, source description, own_data)."""
    manifest_path = folder / SPLIT_FILE
    trained_on = card.dataset.get("root")
    if data is None:
        if not trained_on:
            raise DatasetError("no --data given and the model card names no data folder")
        data = trained_on
    data = Path(data)
    if manifest_path.is_file() and (trained_on and _same_folder(data, trained_on)):
        manifest = SplitManifest.load(manifest_path)
        available, source, own = manifest.splits, f"saved split of {folder.name} ({manifest.origin})", True
    else:
        found = discover(data)
        available, source, own = found.splits, "splits as found in the folder", False
    wanted = splits or [s for s in ("test", "validation") if s in available] or list(available)
    missing = [s for s in wanted if s not in available]
    if missing:
        raise DatasetError(f"{data} has no {', '.join(missing)} split (it has: {', '.join(available)})")
    return data, {s: available[s] for s in wanted}, source, own


def evaluate_model_folder(
    model_folder: str | Path,
    data: str | Path | None = None,
    splits: list[str] | None = None,
    batch_size: int = 64,
    flip: bool | None = None,
) -> dict[str, Any]:
    """Evaluate and write the report; returns it.

    ``flip`` decides flip averaging on the model's own data: None chooses it on
    the validation split; True or False fixes it (off halves the inference cost).
    Any other data is evaluated as the card says.

    Raises:
        ModelFolderError: the model folder is unusable.
        DatasetError: the data folder or split is unusable, or its classes are not the model's.
    """
    loaded = load_model(model_folder)
    folder, card = loaded.folder, loaded.card
    root, chosen, source, own = _choose_samples(folder, card, data, splits)
    decoded_splits = {}
    for split, samples in chosen.items():
        decoded = decode_samples(samples, root, card.classes, card.image_size)
        if not len(decoded.labels):
            raise DatasetError(f"no readable images in the {split} split of {root}")
        decoded_splits[split] = decoded

    # Flip averaging, temperature and the out-of-distribution gate are chosen
    # or fitted on the model's own training and validation splits only; any
    # other evaluation uses what the card already holds.
    refit = own and "validation" in decoded_splits
    if not refit:
        flip = card.flip_averaging
    elif flip is None:
        flip = _choose_flip(loaded.model, decoded_splits["validation"], batch_size)
    outputs = {split: (decoded, *predict_outputs(loaded.model, decoded.images, batch_size, flip,
                                                              card.mixed_precision))
               for split, decoded in decoded_splits.items()}
    gate = loaded.gate
    train = decode_samples(_saved_train_samples(folder), root, card.classes, card.image_size) if own else None
    if refit:
        decoded, features, probs = outputs["validation"]
        temperature = fit_temperature(probs, decoded.labels)
        gate = _refit_gate(folder, train, features, batch_size, loaded.model, flip)
    else:
        temperature = card.temperature
    report: dict[str, Any] = {
        "model": card.name,
        "sha256": card.sha256,
        "data": str(root),
        "source": source,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "temperature": temperature,
        "flip_averaging": flip,
        "temperature_fitted_on": "validation" if refit else "taken from the model card",
        "splits": {},
    }
    for split, (decoded, features, probs) in outputs.items():
        calibrated = apply_temperature(probs, temperature)
        result = classification_metrics(decoded.labels, calibrated, card.classes, decoded.files)
        result["calibration_before_scaling"] = calibration(decoded.labels, probs)
        if gate is not None:
            refused = gate.refuse(features)
            accepted = ~refused
            result["gate"] = {
                "refused": int(refused.sum()),
                "refused_rate": round(float(refused.mean()), 5),
                "threshold": round(gate.threshold, 3),
                "accuracy_on_accepted": round(float((calibrated[accepted].argmax(1) == decoded.labels[accepted]).mean()), 5)
                if accepted.any() else None,
                "refused_files": [f for f, r in zip(decoded.files, refused) if r],
            }
        result["unreadable"] = [{"file": f, "error": e} for f, e in decoded.unreadable]
        report["splits"][split] = result
    if own and "test" in outputs:
        report["splits"]["test"]["unseen"] = _unseen(outputs, root, SplitManifest.load(folder / SPLIT_FILE),
                                                     temperature, card.classes, card.training)

    name = EVALUATION_FILE if own else f"evaluation-{Path(root).name}.json"
    previous = folder / name
    if previous.is_file():  # keep `explain-eval` results of the same weights
        try:
            old = json.loads(previous.read_text())
        except ValueError:
            old = {}
        if old.get("sha256") == card.sha256 and "explanations" in old:
            report["explanations"] = old["explanations"]
    previous.write_text(json.dumps(report, indent=1))
    if own:
        _update_card_metrics(folder, report)
    return report


def _saved_train_samples(folder: Path):
    """Training samples of the model's saved split."""
    return SplitManifest.load(folder / SPLIT_FILE).splits["train"]


def _pretraining_hashes(training: dict[str, Any]) -> list[ImageHashes]:
    """Hashes of the training and validation images of the models a run (or an ensemble's members) started
    from or was taught by.

    Only those whose folder and data are reachable here; an empty list if none is.
    """
    starts = [training.get("initialised_from"), training.get("teacher")]
    starts += [m.get("initialised_from") for m in training.get("members", [])]
    hashes = []
    for start in filter(None, starts):
        folder = Path(start.get("folder", ""))
        if not (folder / SPLIT_FILE).is_file():
            continue
        manifest = SplitManifest.load(folder / SPLIT_FILE)
        if not Path(manifest.root).is_dir():
            continue
        hashes.append(hash_samples(manifest.root, manifest.splits.get("train", []) + manifest.splits.get("validation", [])))
    return hashes


def _unseen(outputs, root: Path, manifest: SplitManifest, temperature: float, classes: list[str],
            card_training: dict[str, Any] | None = None) -> dict[str, Any]:
    """Test metrics on the test images with no copy of any kind among what the model trained or validated on."""
    test, _, probs = outputs["test"]
    seen = hash_samples(root, manifest.splits.get("train", []) + manifest.splits.get("validation", []))
    decoded = set(test.files)
    query = hash_samples(root, [s for s in manifest.splits["test"] if s.path in decoded])
    copies = files_with_copies(query, seen)
    pretrained = _pretraining_hashes(card_training or {})
    for hashes in pretrained:  # images the starting weights were trained on are not unseen either
        for file, kind in files_with_copies(query, hashes).items():
            copies.setdefault(file, kind)
    keep = np.array([f not in copies for f in test.files])
    by_kind = {k: sum(1 for v in copies.values() if v == k) for k in KINDS}
    result = {"removed": int((~keep).sum()), "count": int(keep.sum()),
              "removed_by_kind": {k: n for k, n in by_kind.items() if n},
              "includes_pretraining": bool(pretrained),
              "max_hash_bits": COPY_BITS,
              "method": f"a test image is seen when it, or it mirrored, flipped or rotated by a multiple of 90 "
                        f"degrees, is a copy of a training or validation image: exact pixels, or a 256-bit DCT hash "
                        f"of the head crop at {HASH_SIZE} px within {COPY_BITS} bits (brain_cnn.data.leakage)"}
    if keep.any():
        metrics = classification_metrics(test.labels[keep], apply_temperature(probs[keep], temperature), classes)
        result.update(accuracy=metrics["accuracy"], macro_f1=metrics["macro"]["f1"], macro=metrics["macro"],
                      weighted=metrics["weighted"], per_class=metrics["per_class"], screening=metrics["screening"],
                      confusion_matrix=metrics["confusion_matrix"])
    return result


def _choose_flip(model, validation, batch_size: int) -> bool:
    """Average with the mirror image only if that lowers the validation log-loss."""
    def log_loss(flip: bool) -> float:
        probs = predict_outputs(model, validation.images, batch_size, flip)[1]
        return float(-np.mean(np.log(np.clip(probs[np.arange(len(probs)), validation.labels], 1e-12, 1))))

    return log_loss(True) < log_loss(False)


def _refit_gate(folder: Path, decoded, validation_features, batch_size, model, flip: bool):
    """Fit the out-of-distribution gate on training features, threshold on validation; save it; return it."""
    from brain_cnn.model.folder import sha256_file

    train_features, _ = predict_outputs(model, decoded.images, batch_size, flip)
    gate = fit_gate(train_features, decoded.labels, validation_features)
    gate.save(folder / GATE_FILE)
    raw = read_json(folder / CARD_FILE)
    raw["gate"] = {
        "file": GATE_FILE,
        "sha256": sha256_file(folder / GATE_FILE),
        "method": "min class Mahalanobis distance of the globally pooled outputs of layers "
                  f"{', '.join(FEATURE_LAYERS)}, concatenated (shared Ledoit-Wolf covariance)"
                  + (" of the first member" if raw.get("members") else ""),
        "fitted_on": f"{len(decoded.labels)} training images; threshold at the "
                     f"{gate.percentile}th percentile of validation distances",
        "threshold": round(gate.threshold, 3),
    }
    (folder / CARD_FILE).write_text(json.dumps(raw, indent=2) + "\n")
    return gate


def _update_card_metrics(folder: Path, report: dict[str, Any]) -> None:
    """Copy the headline figures of the model's own report into its card."""
    raw = read_json(folder / CARD_FILE)
    raw["temperature"] = report["temperature"]
    raw["flip_averaging"] = report["flip_averaging"]
    headline = {}
    for split, result in report["splits"].items():
        entry = {
            "images": result["count"],
            "accuracy": result["accuracy"],
            **({"log_loss": result["log_loss"]} if "log_loss" in result else {}),
            "macro_f1": result["macro"]["f1"],
            "macro_roc_auc": result["macro_roc_auc"],
            "ece": result["calibration"]["ece"],
            "ece_before_scaling": result["calibration_before_scaling"]["ece"],
        }
        if result.get("screening"):
            entry["tumour_sensitivity"] = result["screening"]["sensitivity"]
            entry["tumour_specificity"] = result["screening"]["specificity"]
        if result.get("gate"):
            entry["refused_by_gate"] = result["gate"]["refused_rate"]
        clean = result.get("unseen")
        if clean and clean.get("accuracy") is not None:
            entry["unseen"] = {"images": clean["count"], "accuracy": clean["accuracy"], "macro_f1": clean["macro_f1"],
                               **({"tumour_sensitivity": clean["screening"]["sensitivity"],
                                   "tumour_specificity": clean["screening"]["specificity"]}
                                  if clean.get("screening") else {})}
        headline[split] = entry
    # Keep headline figures of splits not evaluated this time.
    raw["metrics"] = {**raw.get("metrics", {}), **headline}
    raw["limitations"] = limitations(raw, report)
    (folder / CARD_FILE).write_text(json.dumps(raw, indent=2) + "\n")


def limitations(card: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """What the model card must say about where the figures stop holding, from the report's facts."""
    dataset = card.get("dataset", {})
    name = dataset.get("name", "its data set")
    added = [s["name"] for s in dataset.get("sources", []) if "label_map" in s]
    trained = f"Trained on {name}" + (f" with {', '.join(added)} added to its training split" if added else "")
    notes = [
        "Classifies one 2-D slice at a time; it does not see the rest of the study.",
        f"{trained}; tested on {name}'s test split. "
        + ("Other data sets it was screened on are listed under 'validated on'; it was not validated on any "
           "other scanner, sequence or hospital." if card.get("validated_on") else
           "Not validated on other scanners, sequences or hospitals."),
    ]
    test = report["splits"].get("test", {})
    clean = test.get("unseen")
    if clean and clean.get("accuracy") is not None:
        kinds = ", ".join(f"{n} {k}" for k, n in clean.get("removed_by_kind", {}).items())
        notes.append(f"{clean['removed']} of {test['count']} test images are copies of images it trained or validated "
                     f"on ({kinds}); on the other {clean['count']}, unseen in any orientation, the accuracy is "
                     f"{clean['accuracy']:.1%} (on all {test['count']}: {test['accuracy']:.1%}).")
    notes.append(f"Probabilities are temperature-scaled (T = {report['temperature']}) on the validation split; "
                 "on data unlike it they may be over- or under-confident.")
    removal = (report.get("explanations") or {}).get("removal", {}).get("by_class", {})
    kept = ", ".join(f"{row['called_tumour_hidden']:.0%} of the {label} images" for label, row in removal.items()
                     if (row.get("called_tumour_hidden") or 0) >= 0.5)
    if kept:
        notes.append("With the tumour painted out of the slice (explain-eval's removal test on test images with "
                     f"expert tumour boxes), it still made the same call for {kept}: for these types it "
                     "decides mostly from the rest of the slice, so such a call is not evidence that a tumour is "
                     "visible, and its heat maps cannot show one.")
    if test.get("gate"):
        notes.append(f"The out-of-distribution gate refuses {test['gate']['refused_rate']:.1%} of real test scans by "
                     "design and cannot be relied on to catch every image that is not a brain MRI slice.")
    return notes


def summary_table(report: dict[str, Any]) -> str:
    """A short plain-text summary for the terminal."""
    lines = [f"model {report['model']} on {report['data']} ({report['source']}); "
             f"temperature {report['temperature']} ({report['temperature_fitted_on']}); "
             f"flip averaging {'on' if report['flip_averaging'] else 'off'}"]
    for split, result in report["splits"].items():
        line = (f"{split:<10} n={result['count']:<5} accuracy {result['accuracy']:.4f}  "
                + (f"log-loss {result['log_loss']:.4f}  " if "log_loss" in result else "")
                + f"macro F1 {result['macro']['f1']:.4f}  ECE {result['calibration']['ece']:.4f} "
                f"(before scaling {result['calibration_before_scaling']['ece']:.4f})")
        screen = result.get("screening")
        if screen and screen["sensitivity"] is not None and screen["specificity"] is not None:
            line += f"  tumour sens {screen['sensitivity']:.4f} spec {screen['specificity']:.4f}"
        if "top3_accuracy" in result:
            line += f"  top-3 {result['top3_accuracy']:.4f}"
        if result.get("by_type"):
            merged = result["by_type"]
            line += (f"\n{'':<10} sequences merged ({len(merged['types'])} types): accuracy {merged['accuracy']:.4f}"
                     f"  macro F1 {merged['macro_f1']:.4f}"
                     + (f"  top-3 {merged['top3_accuracy']:.4f}" if "top3_accuracy" in merged else ""))
        if result.get("gate"):
            line += f"  refused {result['gate']['refused']} ({result['gate']['refused_rate']:.2%})"
        clean = result.get("unseen")
        if clean and clean.get("accuracy") is not None:
            kinds = ", ".join(f"{n} {k}" for k, n in clean.get("removed_by_kind", {}).items())
            line += (f"\n{'':<10} unseen (no copy in any orientation among training and validation images): "
                     f"n={clean['count']} accuracy {clean['accuracy']:.4f}  macro F1 {clean['macro_f1']:.4f}  "
                     f"({clean['removed']} copies left out: {kinds})")
        if result["unreadable"]:
            line += f"  ({len(result['unreadable'])} unreadable skipped)"
        lines.append(line)
    first = next(iter(report["splits"]))
    per_class = report["splits"][first]["per_class"]
    width = max(12, *(len(c) for c in per_class))
    lines.append(f"\nper class ({first}):")
    lines.append(f"  {'class':<{width}} precision  recall  f1      support")
    for name, row in per_class.items():
        lines.append(f"  {name:<{width}} {row['precision']:.4f}     {row['recall']:.4f}  {row['f1']:.4f}  {row['support']}")
    return "\n".join(lines)

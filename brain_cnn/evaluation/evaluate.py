"""Evaluate a model folder on a data folder and write the report.

On the data the model was trained on, the saved split manifest decides which
files are test and validation, so a test figure is never computed on images
the model was trained or tuned on. Any other data folder is evaluated on its
own splits (or on all of it, if flat) and reported in
``evaluation-<data name>.json``, leaving the model's own report untouched.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from brain_cnn.data.carves import CALIBRATION, recorded_files
from brain_cnn.data.dataset import SplitManifest, discover
from brain_cnn.data.leakage import COPY_BITS, HASH_SIZE, KINDS, ImageHashes, files_with_copies, hash_images, \
    hash_samples
from brain_cnn.data.pipeline import decode_samples
from brain_cnn.errors import DatasetError
from brain_cnn.evaluation.coverage import set_figures
from brain_cnn.evaluation.findings import record_conformal, record_evaluation, record_gate
from brain_cnn.evaluation.metrics import calibration, classification_metrics
from brain_cnn.evaluation.map_scores import masks_for, split_map_scores
from brain_cnn.files import read_json, sha256_file, write_json
from brain_cnn.inference.calibration import apply_temperature, fit_temperature
from brain_cnn.inference.conformal import CONFORMAL_FILE, DEFAULT_COVERAGE, Conformal
from brain_cnn.inference.decision import TOP_CLASS, check_decision, decide
from brain_cnn.inference.predictor import predict_all, predict_outputs
from brain_cnn.model.card import EVALUATION_FILE, SPLIT_FILE, ModelCard
from brain_cnn.model.combined import is_combined
from brain_cnn.model.engines import gate_split
from brain_cnn.model.folder import load_model
from brain_cnn.model.lineage import readable_starts, unreachable_starts
from brain_cnn.model.ood import FEATURE_LAYERS, GATE_FILE, fit_gate

__all__ = ["evaluate_model_folder", "seen_copies"]


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
    masks: str | Path | None = None,
    decision: str | None = None,
) -> dict[str, Any]:
    """Evaluate and write the report; returns it.

    ``flip`` decides flip averaging on the model's own data: None chooses it on
    the validation split; True or False fixes it (off halves the inference cost).
    Any other data is evaluated as the card says.

    ``decision`` is the rule that makes each call (:mod:`brain_cnn.inference.decision`):
    None takes the card's. The report records the rule used; on the model's
    own data the card takes it with the figures (another data set's report
    leaves the card as it is).

    A tumour-map network (:mod:`brain_cnn.model.tumour_maps`) is also measured
    against the data's tumour masks, ``masks`` or else the ``<data set>-masks/``
    folder beside it (:func:`brain_cnn.data.masks.mask_folder`): each split
    gets a ``tumour_maps`` entry (Dice and the share of peaks inside the tumour,
    :func:`brain_cnn.evaluation.map_scores.map_scores`).

    Raises:
        ModelFolderError: the model folder is unusable, or ``masks`` is given for a model without tumour maps.
        DatasetError: the data folder, split or masks folder is unusable, or its classes are not the model's.
        ValueError: an unknown decision rule.
    """
    loaded = load_model(model_folder)
    folder, card = loaded.folder, loaded.card
    decision = check_decision(card.decision if decision is None else decision)
    root, chosen, source, own = _choose_samples(folder, card, data, splits)
    masks = masks_for(loaded, root, masks)
    decoded_splits = _decode(chosen, root, card, masks)

    # Flip averaging, temperature and the out-of-distribution gate are chosen
    # or fitted on the model's own training and validation splits only; any
    # other evaluation uses what the card already holds.
    refit = own and "validation" in decoded_splits
    if not refit:
        flip = card.flip_averaging
    elif flip is None:
        flip = _choose_flip(loaded.model, decoded_splits["validation"], batch_size)
    outputs, maps = {}, {}
    for split, decoded in decoded_splits.items():
        features, probs, split_maps = predict_all(loaded.model, decoded.images, batch_size, flip, card.mixed_precision)
        outputs[split] = (decoded, features, probs)
        if masks is not None:
            maps[split] = split_maps
    gate, temperature, conformal = loaded.gate, card.temperature, loaded.conformal
    if refit:
        train = decode_samples(_saved_train_samples(folder), root, card.classes, card.image_size)
        decoded, features, probs = outputs["validation"]
        temperature = fit_temperature(probs, decoded.labels)
        gate = _refit_gate(folder, card, train, features, batch_size, loaded.model, flip)
        conformal = _refit_conformal(folder, root, card, loaded.model, temperature, flip, batch_size)
        if conformal is None and card.conformal:  # a calibration of this folder's earlier weights or temperature
            record_conformal(folder, {})
            (folder / card.conformal.get("file", CONFORMAL_FILE)).unlink(missing_ok=True)
    report: dict[str, Any] = {
        "model": card.name,
        "sha256": card.sha256,
        "data": str(root),
        "source": source,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "temperature": temperature,
        "flip_averaging": flip,
        "decision": decision,
        "temperature_fitted_on": "validation" if refit else "taken from the model card",
        "splits": {split: _split_result(*output, temperature, card.classes, gate, decision, conformal)
                   for split, output in outputs.items()},
    }
    for split, split_maps in maps.items():
        report["splits"][split]["tumour_maps"] = split_map_scores(decoded_splits[split], split_maps, masks)
    if own and "test" in outputs:
        report["splits"]["test"]["unseen"] = _unseen(outputs, root, SplitManifest.load(folder / SPLIT_FILE),
                                                     temperature, card.classes, card.training, decision, conformal)
    path = folder / (EVALUATION_FILE if own else f"evaluation-{Path(root).name}.json")
    old = read_json(path, default={})
    if old.get("sha256") == card.sha256 and "explanations" in old:  # keep `explain-eval` results of the same weights
        report["explanations"] = old["explanations"]
    write_json(path, report)
    if own:
        record_evaluation(folder, report)
    return report


def _decode(chosen: dict[str, list], root: Path, card: ModelCard, masks: Path | None = None) -> dict[str, Any]:
    """Each chosen split decoded through the one preprocessing path (with its tumour masks when ``masks`` is
    given); a split with no readable image fails."""
    decoded_splits = {}
    for split, samples in chosen.items():
        decoded = decode_samples(samples, root, card.classes, card.image_size, masks=masks)
        if not len(decoded.labels):
            raise DatasetError(f"no readable images in the {split} split of {root}")
        decoded_splits[split] = decoded
    return decoded_splits


def _split_result(decoded, features, probs, temperature: float, classes: list[str], gate,
                  decision: str, conformal: Conformal | None = None) -> dict[str, Any]:
    """One split's metrics after temperature scaling (calls by ``decision``), what the gate refuses of it, and
    how the conformal sets covered it."""
    calibrated = apply_temperature(probs, temperature)
    result = classification_metrics(decoded.labels, calibrated, classes, decoded.files, decision)
    if conformal is not None:
        result["conformal"] = set_figures(conformal, calibrated, decoded.labels, classes)
    result["calibration_before_scaling"] = calibration(decoded.labels, probs)
    if gate is not None:
        refused = gate.refuse(features)
        accepted = ~refused
        result["gate"] = {
            "refused": int(refused.sum()),
            "refused_rate": round(float(refused.mean()), 5),
            "threshold": round(gate.threshold, 3),
            "accuracy_on_accepted": round(float((decide(calibrated[accepted], classes, decision)
                                                  == decoded.labels[accepted]).mean()), 5)
            if accepted.any() else None,
            "refused_files": [f for f, r in zip(decoded.files, refused) if r],
        }
    result["unreadable"] = [{"file": f, "error": e} for f, e in decoded.unreadable]
    return result


def _saved_train_samples(folder: Path):
    """Training samples of the model's saved split."""
    return SplitManifest.load(folder / SPLIT_FILE).splits["train"]


def _pretraining_hashes(training: dict[str, Any]) -> list[ImageHashes]:
    """Hashes of the training and validation images of the models a run started from or was taught by
    (:func:`brain_cnn.model.lineage.start_folders`).

    Only those that can say here what they saw, with the weights started from (:func:`unreachable_starts`
    names the others); an empty list if none can.
    """
    hashes = []
    for folder in readable_starts(training):
        manifest = SplitManifest.load(folder / SPLIT_FILE)
        hashes.append(hash_samples(manifest.root, manifest.splits.get("train", []) + manifest.splits.get("validation", [])))
    return hashes


def seen_copies(query: ImageHashes, root: str | Path, manifest: SplitManifest,
                training: dict[str, Any]) -> tuple[dict[str, str], bool]:
    """The files of ``query`` that a model has as good as seen, with the kind of copy: copies in any orientation
    of its split's training or validation images (under ``root``), or of those of the models it started from
    (``training``: its card's); and whether any such start could be checked."""
    copies = files_with_copies(query, hash_samples(root, manifest.splits.get("train", [])
                                                   + manifest.splits.get("validation", [])))
    pretrained = _pretraining_hashes(training)
    for hashes in pretrained:  # images the starting weights were trained on are not unseen either
        for file, kind in files_with_copies(query, hashes).items():
            copies.setdefault(file, kind)
    return copies, bool(pretrained)


def _unseen(outputs, root: Path, manifest: SplitManifest, temperature: float, classes: list[str],
            card_training: dict[str, Any] | None = None, decision: str = TOP_CLASS,
            conformal: Conformal | None = None) -> dict[str, Any]:
    """Test metrics on the test images with no copy of any kind among what the model trained or validated on."""
    test, _, probs = outputs["test"]
    decoded = set(test.files)
    query = hash_samples(root, [s for s in manifest.splits["test"] if s.path in decoded])
    copies, pretrained = seen_copies(query, root, manifest, card_training or {})
    if unchecked := unreachable_starts(card_training or {}):
        print(f"warning: the unseen test figures cannot leave out copies of what {', '.join(unchecked)} trained "
              "on", file=sys.stderr)
    keep = np.array([f not in copies for f in test.files])
    by_kind = {k: sum(1 for v in copies.values() if v == k) for k in KINDS}
    result = {"removed": int((~keep).sum()), "count": int(keep.sum()),
              "removed_by_kind": {k: n for k, n in by_kind.items() if n},
              "includes_pretraining": pretrained,
              **({"unchecked_starts": unchecked} if unchecked else {}),
              "max_hash_bits": COPY_BITS,
              "method": f"a test image is seen when it, or it mirrored, flipped or rotated by a multiple of 90 "
                        f"degrees, is a copy of a training or validation image: exact pixels, or a 256-bit DCT hash "
                        f"of the head crop at {HASH_SIZE} px within {COPY_BITS} bits (brain_cnn.data.leakage)"}
    if keep.any():
        metrics = classification_metrics(test.labels[keep], apply_temperature(probs[keep], temperature), classes,
                                         decision=decision)
        result.update(accuracy=metrics["accuracy"], macro_f1=metrics["macro"]["f1"], macro=metrics["macro"],
                      weighted=metrics["weighted"], per_class=metrics["per_class"], screening=metrics["screening"],
                      confusion_matrix=metrics["confusion_matrix"])
        if conformal is not None:
            # Nor copies of a calibration image: the sets were fitted on those.
            calibration = manifest.splits.get(CALIBRATION, [])
            calibrated = files_with_copies(query, hash_samples(root, calibration)) if calibration else {}
            fresh = keep & np.array([f not in calibrated for f in test.files])
            result["conformal"] = set_figures(conformal, apply_temperature(probs[fresh], temperature),
                                              test.labels[fresh], classes)
    return result


def _choose_flip(model, validation, batch_size: int) -> bool:
    """Average with the mirror image only if that lowers the validation log-loss."""
    def log_loss(flip: bool) -> float:
        probs = predict_outputs(model, validation.images, batch_size, flip)[1]
        return float(-np.mean(np.log(np.clip(probs[np.arange(len(probs)), validation.labels], 1e-12, 1))))

    return log_loss(True) < log_loss(False)


def _refit_gate(folder: Path, card: ModelCard, decoded, validation_features, batch_size, model, flip: bool):
    """Fit the out-of-distribution gate on training features, threshold on validation; save it; return it."""
    train_features, _ = predict_outputs(model, decoded.images, batch_size, flip)
    split = gate_split(model) if is_combined(model) else 0
    gate = fit_gate(train_features, decoded.labels, validation_features, split=split)
    gate.save(folder / GATE_FILE)
    record_gate(folder, {
        "file": GATE_FILE,
        "sha256": sha256_file(folder / GATE_FILE),
        "method": "min class Mahalanobis distance of the globally pooled outputs of layers "
                  f"{', '.join(FEATURE_LAYERS)}, concatenated (shared Ledoit-Wolf covariance)"
                  + (f"; two parts, each refusing: the tumour-map network's {split} features and the first "
                     f"classifier's {train_features.shape[1] - split}" if split else
                     " of the first member" if card.members else ""),
        "fitted_on": f"{len(decoded.labels)} training images; threshold at the "
                     f"{gate.percentile}th percentile of validation distances",
        "threshold": round(gate.threshold, 3),
    })
    return gate


def _refit_conformal(folder: Path, root: Path, card: ModelCard, model, temperature: float, flip: bool,
                     batch_size: int) -> Conformal | None:
    """Calibrate the conformal sets on the saved split's calibration images (the model's final, temperature-
    scaled probabilities); save and record them. None when the split has no calibration images."""
    manifest = SplitManifest.load(folder / SPLIT_FILE)
    samples = manifest.splits.get(CALIBRATION, [])
    if not samples:
        return None
    unreachable = unreachable_starts(card.training)
    if unreachable:
        # What the starting weights trained on cannot be checked for copies: no guarantee can be given.
        print(f"warning: not calibrating the prediction sets: this model started from {', '.join(unreachable)}",
              file=sys.stderr)
        return None
    # A copy, in any orientation, of an image it (or a model it started from) trained or validated on is as good
    # as seen: left out, as the test split's unseen figures leave it out.
    seen = [hash_samples(root, manifest.splits.get("train", []) + manifest.splits.get("validation", []))]
    seen += _pretraining_hashes(card.training)
    for recorded in [folder] + [folder / m.get("folder", "") for m in card.members]:
        if files := recorded_files(recorded, root):  # a tumour-map network's whole record
            seen.append(hash_images(files))
    query = hash_samples(root, samples)
    copies = set()
    for hashes in seen:
        copies |= set(files_with_copies(query, hashes))
    samples = [s for s in samples if s.path not in copies]
    decoded = decode_samples(samples, root, card.classes, card.image_size) if samples else None
    if decoded is None or not len(decoded.labels):
        print("warning: not calibrating the prediction sets: no readable calibration image is left that the model "
              "(or one it started from) did not train or validate on, nor on a copy of one", file=sys.stderr)
        return None
    probs = apply_temperature(predict_outputs(model, decoded.images, batch_size, flip, card.mixed_precision)[1],
                              temperature)
    conformal = Conformal.fit(probs, decoded.labels, card.classes)
    conformal.save(folder / CONFORMAL_FILE)
    record_conformal(folder, {
        "file": CONFORMAL_FILE,
        "sha256": sha256_file(folder / CONFORMAL_FILE),
        "model_sha256": card.sha256,  # the weights whose probabilities were calibrated
        "fitted_on": f"the {len(decoded.labels)} images of the calibration split (no network of the folder "
                     "trained or chose its checkpoint on them, nor on a copy of them)"
                     + (f"; {len(copies)} left out as copies of such images" if copies else ""),
        **conformal.summary(DEFAULT_COVERAGE),
    })
    return conformal

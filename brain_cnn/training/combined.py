"""Making a combined model folder: classifiers and a tumour-map network, and the rule that joins them.

The rule (:mod:`brain_cnn.model.combined`) is fitted here, on validation images
that no member trained on: the members' own validation splits, plus any other
split named with ``fit_data`` (e.g. the 44-class set's validation split),
less every image that is in a member's training split or is a copy of one in
any orientation (:mod:`brain_cnn.data.leakage`). Never a test split.

* **Whether there is a tumour**: logistic regression on the two networks'
  tumour log-odds, each slice and its mirror image (the folder averages the
  two at inference), every (source, tumour / no tumour) cell weighted
  equally: a source with many validation slices must not decide alone how far
  the map network is trusted on the others, and missing a tumour of a rare
  look is the failure that matters.
* **Which type**: a weighted geometric mean of the two networks' type
  probabilities (two weights, by the type's log-loss on the validation tumours
  of a known type, each source weighing the same). Either network alone is a
  special case, so the fit takes the better one where one is better
  everywhere; here the classifiers type the look of their training source
  best and the map network the others.

The card records the rule, its numbers, what it was fitted on, and the
validation figures of each network alone and of the rule.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from brain_cnn.data.carves import CALIBRATION, recorded_files
from brain_cnn.data.dataset import Sample, SplitManifest
from brain_cnn.data.label_maps import NO_TUMOUR, TUMOUR, bundled_label_map
from brain_cnn.data.leakage import files_with_copies, hash_images
from brain_cnn.data.pipeline import SOFT_TUMOUR, decode_samples
from brain_cnn.errors import DatasetError, ModelFolderError
from brain_cnn.inference.decision import TUMOUR_FIRST
from brain_cnn.model.card import SPLIT_FILE, ModelCard, library_versions
from brain_cnn.model.combined import classifier_members, combine, combined_network, map_member, \
    presence_inputs, type_probabilities
from brain_cnn.model.ensemble import MAP_ROLE, check_beside, check_compatible, members_digest
from brain_cnn.model.folder import NORMAL_CLASS, load_model
from brain_cnn.model.tumour_maps import map_output

__all__ = ["FitImage", "fit_pool", "fit_rule", "make_combined", "PRESENCE_ONLY"]

# The combined folder's split of tumours of a type the model does not name: fitted on for presence only.
PRESENCE_ONLY = "validation_presence_only"


class FitImage(NamedTuple):
    """One image the rule may be fitted on."""

    path: str
    source: str  # the data set it comes from
    label: str  # a model class, or SOFT_TUMOUR for a tumour of another type


def _manifest(folder: Path) -> SplitManifest:
    if not (folder / SPLIT_FILE).is_file():
        raise ModelFolderError(f"{folder.name} has no {SPLIT_FILE}: what it trained on would be unknown")
    return SplitManifest.load(folder / SPLIT_FILE)


def _absolute(manifest: SplitManifest, split: str) -> list[tuple[str, str]]:
    return [(os.path.normpath(os.path.join(manifest.root, s.path)), s.label) for s in manifest.splits.get(split, [])]


def _sourcer(roots: list[str]):
    """A file's source: the data set folder it lies in, under the data roots' common folder (the data set's own
    name when every root is the same folder)."""
    roots = [os.path.abspath(r) for r in roots]
    common = os.path.commonpath(roots)
    if all(r == common for r in roots):
        return lambda path: os.path.basename(common)
    return lambda path: Path(os.path.relpath(os.path.abspath(path), common)).parts[0]


def _fit_data(spec: str, classes: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """``SPLIT_JSON:SPLIT`` (another model's split, e.g. ``models/brain-tumor-44c/split.json:validation``) as
    (its data root, [(path, model label)]); folders a label map calls a lesion or ignores are left out."""
    path, _, split = spec.rpartition(":")
    if not path or not split:
        raise DatasetError(f"--fit-data {spec!r}: give SPLIT_JSON:SPLIT, e.g. models/brain-tumor-44c/split.json:validation")
    manifest = SplitManifest.load(path)
    if split not in manifest.splits:
        raise DatasetError(f"{path} has no {split!r} split (it has {', '.join(manifest.splits)})")
    if split == "test":
        raise DatasetError("a test split is never fitted on")
    own_classes = set(manifest.classes) <= set(classes) | {SOFT_TUMOUR}
    mapping = None if own_classes else bundled_label_map(manifest.root)
    if mapping is None and not own_classes:
        raise DatasetError(f"{path}: no bundled label map for {Path(manifest.root).name}")
    out = []
    for file, label in _absolute(manifest, split):
        if mapping is None:
            out.append((file, label))
            continue
        target = mapping.target(label, classes)
        if target.kind == NO_TUMOUR:
            out.append((file, NORMAL_CLASS))
        elif target.kind == TUMOUR:
            out.append((file, target.model_class or SOFT_TUMOUR))
    return manifest.root, out


def fit_pool(folders: list[Path], fit_data: list[str], classes: list[str]) -> tuple[list[FitImage], dict[str, Any]]:
    """The validation images no member trained on (nor on a copy of them), and what was left out and why."""
    manifests = [_manifest(f) for f in folders]
    trained = {p for m in manifests for p, _ in _absolute(m, "train")}
    candidates = dict(p for m in manifests for p in _absolute(m, "validation"))
    roots = [m.root for m in manifests]
    for spec in fit_data:
        root, images = _fit_data(spec, classes)
        candidates.update(images)
        roots.append(root)
    tests = {p for m in manifests for p, _ in _absolute(m, "test")}
    if set(candidates) & tests:
        raise DatasetError("a fitting image is in a member's test split; the test split is never fitted on")
    in_training = {p for p in candidates if p in trained}
    kept = {p: label for p, label in candidates.items() if p not in trained}
    # Copies in any orientation of a training image are as good as seen.
    copies = files_with_copies(hash_images([Path(p) for p in kept], list(kept)),
                               hash_images([Path(p) for p in sorted(trained)]))
    source = _sourcer(roots)
    pool = [FitImage(p, source(p), label) for p, label in kept.items() if p not in copies]
    left_out = {"in_a_members_training_split": len(in_training),
                "copies_of_a_training_image": len(kept) - len(pool)}
    return pool, left_out


def calibration_pool(manifests: list[SplitManifest], fitted: set[str], recorded: list[Path] = ()) -> dict[str, str]:
    """{path: label} of the members' calibration images that no member trained on (nor on a copy of one) and
    the rule was not fitted on: the combined folder's calibration split, for conformal sets. ``recorded``: more
    files a member trained on (a tumour-map network's record, :func:`brain_cnn.data.carves.recorded_files`)."""
    trained = {p for m in manifests for p, _ in _absolute(m, "train")} | {os.path.normpath(p) for p in recorded}
    candidates = {p: label for m in manifests for p, label in _absolute(m, CALIBRATION)
                  if p not in trained and p not in fitted}
    if not candidates:
        return {}
    copies = files_with_copies(hash_images([Path(p) for p in candidates], list(candidates)),
                               hash_images([Path(p) for p in sorted(trained)]))
    return {p: label for p, label in candidates.items() if p not in copies}


def _balanced_weights(sources: np.ndarray, tumour: np.ndarray) -> np.ndarray:
    """Each (source, tumour / no tumour) cell weighs the same in total; the weights average 1."""
    cells = Counter(zip(sources.tolist(), tumour.tolist()))
    weights = np.array([1.0 / cells[(s, t)] for s, t in zip(sources.tolist(), tumour.tolist())])
    return weights * len(weights) / weights.sum()


def _typed(labels: np.ndarray, normal: int) -> tuple[np.ndarray, np.ndarray]:
    """Which rows are tumours of a known type, and their type index among the tumour classes."""
    typed = (labels >= 0) & (labels != normal)
    return typed, np.where(labels > normal, labels - 1, labels)[typed]


def _type_accuracy(types: np.ndarray, labels: np.ndarray, sources: np.ndarray, normal: int) -> dict[str, float]:
    """Per source, how often the most probable type (``types``: (N, K-1)) is the true one (known types only)."""
    typed, truth = _typed(labels, normal)
    right = types[typed].argmax(axis=1) == truth
    here = sources[typed]
    return {str(s): round(float(right[here == s].mean()), 4) for s in sorted(set(here.tolist()))}


def _fit_type_weights(classified: np.ndarray, found: np.ndarray, labels: np.ndarray, sources: np.ndarray,
                      normal: int) -> list[float]:
    """The type weights (d, e) of ``softmax(d log p_classifiers + e log p_map)`` that minimise the type's
    log-loss on the validation tumours of a known type, each source weighing the same."""
    from scipy.optimize import minimize

    typed, truth = _typed(labels, normal)
    if typed.sum() < 20:
        return [1.0, 0.0]
    rows = np.arange(int(typed.sum()))
    cells = Counter(sources[typed].tolist())
    weight = np.array([1.0 / cells[s] for s in sources[typed].tolist()])
    weight /= weight.sum()

    def loss(w):
        p = type_probabilities(classified[typed], found[typed], w, normal)
        return float(-(weight * np.log(np.clip(p[rows, truth], 1e-12, 1.0))).sum())

    best = minimize(loss, x0=[0.5, 0.5], method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-7})
    return [round(float(w), 6) for w in best.x]


def _presence_figures(score: np.ndarray, tumour: np.ndarray, sources: np.ndarray) -> dict[str, Any]:
    """Sensitivity and specificity at 0.5 of a tumour probability, per source (validation figures)."""
    out = {}
    for source in sorted(set(sources.tolist())):
        here = sources == source
        called = score[here] >= 0.5
        truth = tumour[here]
        out[source] = {"tumours": int(truth.sum()), "normals": int((~truth).sum()),
                       "sensitivity": round(float(called[truth].mean()), 4) if truth.any() else None,
                       "specificity": round(float((~called[~truth]).mean()), 4) if (~truth).any() else None}
    return out


def fit_rule(classified: np.ndarray, found: np.ndarray, labels: np.ndarray, sources: np.ndarray,
             normal: int) -> dict[str, Any]:
    """The combination rule fitted on member probabilities (N, K) of validation images (each image's rows
    and its mirror image's rows, in any order), their labels (N,) (-1: a tumour of another type) and sources.

    Raises:
        DatasetError: no tumours or no normal slices to fit on.
    """
    from sklearn.linear_model import LogisticRegression

    tumour = labels != normal
    if tumour.all() or not tumour.any():
        raise DatasetError("fitting the combination needs validation tumours and validation normal slices")
    features = presence_inputs(classified, found, normal)
    weights = _balanced_weights(sources, tumour)
    # Two inputs and thousands of slices: the default L2 penalty is a light touch, kept for stability.
    fitted = LogisticRegression(C=1.0).fit(features, tumour, sample_weight=weights)
    rule = {"method": "logistic", "weights": [round(float(w), 6) for w in fitted.coef_[0]],
            "intercept": round(float(fitted.intercept_[0]), 6),
            "type_weights": _fit_type_weights(classified, found, labels, sources, normal)}
    rule["validation"] = {
        "type_accuracy": {name: _type_accuracy(type_probabilities(classified, found, w, normal), labels, sources,
                                               normal)
                          for name, w in (("classifiers", [1, 0]), ("tumour map", [0, 1]),
                                          ("combined", rule["type_weights"]))},
        "tumour_probability_at_half": {
            "classifiers": _presence_figures(1 - classified[:, normal], tumour, sources),
            "tumour map": _presence_figures(1 - found[:, normal], tumour, sources),
            "combined": _presence_figures(1 - combine(classified, found, rule, normal)[:, normal], tumour, sources)},
    }
    return rule


def _common_root(paths: list[str]) -> str:
    return os.path.relpath(os.path.commonpath([os.path.abspath(p) for p in paths]))


def _member_outputs(model, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw probabilities of the classifiers (their mean) and of the map network, for images and mirror images."""
    from brain_cnn.inference.predictor import predict_probabilities

    both = np.concatenate([images, images[:, :, ::-1]])
    classifiers = [predict_probabilities(member, both, batch_size) for member in classifier_members(model)]
    return np.mean(classifiers, axis=0), predict_probabilities(map_member(model), both, batch_size)


def make_combined(member_folders: list[str | Path], out: str | Path, name: str | None = None,
                  fit_data: list[str] | None = None, batch_size: int = 64) -> Path:
    """Write a combined folder (card and split, no weights) over classifier folders and one tumour-map folder,
    its rule fitted on validation images no member trained on.

    Raises:
        ModelFolderError: not exactly one tumour-map member and at least one classifier, an ensemble among them,
            members that disagree on classes, channels or preprocessing, or a map network of a larger input.
        DatasetError: the fitting data is unusable.
    """
    folders = [Path(f) for f in member_folders]
    if len({f.resolve() for f in folders}) != len(folders):
        raise ModelFolderError("a member folder is listed twice")
    check_beside(folders, out)
    loaded = [load_model(f) for f in folders]
    is_map = [map_output(m.model) is not None for m in loaded]
    if sum(is_map) != 1 or all(is_map):
        raise ModelFolderError("a combined model needs exactly one tumour-map network and at least one classifier")
    for folder, member in zip(folders, loaded):
        if member.card.members:
            raise ModelFolderError(f"{folder.name} is itself an ensemble; list its members instead")
    classifiers = [m for m, flag in zip(loaded, is_map) if not flag]
    tumour_maps = loaded[is_map.index(True)]
    first = classifiers[0].card
    for folder, member, flag in zip(folders, loaded, is_map):
        check_compatible(first, member.card, folder.name, Path(out).name, same_size=not flag)
    if tumour_maps.card.image_size > first.image_size:
        raise ModelFolderError(f"the tumour-map network's input ({tumour_maps.card.image_size} px) is larger than "
                               f"the classifiers' ({first.image_size} px); it can only be given a shrunk input")
    if NORMAL_CLASS not in first.classes:
        raise ModelFolderError(f"a combined model needs the {NORMAL_CLASS!r} class")
    normal = first.classes.index(NORMAL_CLASS)
    manifests = [_manifest(f) for f in folders]
    tests = [{p for p, _ in _absolute(m, "test")} for m in manifests]
    if any(t != tests[0] for t in tests[1:]):
        raise ModelFolderError("the members have different test splits; a combined model needs members tested on "
                               "the same images")

    pool, left_out = fit_pool(folders, fit_data or [], first.classes)
    recorded = [f for folder, m in zip(folders, manifests) for f in recorded_files(folder, m.root, ("train",))]
    calibration = calibration_pool(manifests, {p for p, *_ in pool}, recorded)
    root = _common_root([p for p, *_ in pool] + [p for m in manifests for p, _ in _absolute(m, "train")]
                        + list(calibration))
    samples = [Sample(os.path.relpath(p, root), label) for p, _, label in pool]
    decoded = decode_samples(samples, root, first.classes, first.image_size)
    source_of = {os.path.relpath(image.path, root): image.source for image in pool}
    sources = np.array([source_of[f] for f in decoded.files])
    neutral = {"weights": [0.0, 1.0], "intercept": 0.0, "type_weights": [1.0, 0.0]}
    network = combined_network([m.model for m in classifiers], tumour_maps.model, neutral, normal)
    classified, found = _member_outputs(network, decoded.images, batch_size)
    rule = fit_rule(classified, found, np.concatenate([decoded.labels] * 2), np.concatenate([sources] * 2), normal)
    rule["fitted_on"] = {
        "images": len(decoded.files), "by_source": dict(Counter(sources.tolist())),
        "tumours": int((decoded.labels != normal).sum()), "normals": int((decoded.labels == normal).sum()),
        "from": "the members' validation splits" + "".join(f" and {spec}" for spec in fit_data or []),
        "left_out": {**left_out, "unreadable": len(decoded.unreadable)},
        "each": "slice and its mirror image (the model averages the two)",
        "weighting": "each (source, tumour / no tumour) cell weighs the same",
    }
    rule["reason"] = ("a logistic fit on the two networks' tumour log-odds: two weights and an intercept, few enough "
                      "to fit on the validation slices without overfitting, and a calibrated probability as its "
                      "result; the type from a weighted geometric mean of the two networks' type probabilities, fitted "
                      "on the validation tumours of a known type (each source weighing the same), which contains "
                      "either network alone as a special case")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train = list(dict.fromkeys(Sample(os.path.relpath(p, root), label)
                               for m in manifests for p, label in _absolute(m, "train")))
    keep = {f for f, label in zip(decoded.files, decoded.labels) if label >= 0}
    presence_only = set(decoded.files) - keep
    split = SplitManifest(
        root=root, classes=first.classes, seed=manifests[0].seed,
        splits={"train": train, "validation": [s for s in samples if s.path in keep],
                PRESENCE_ONLY: [s for s in samples if s.path in presence_only],
                **({CALIBRATION: [Sample(os.path.relpath(p, root), label) for p, label in calibration.items()]}
                   if calibration else {}),
                "test": [Sample(os.path.relpath(p, root), label) for p, label in _absolute(manifests[0], "test")]},
        origin="union of the members' training splits; validation: the images the rule was fitted on (validation "
               "images no member trained on, nor on a copy of them); test: the members' common test split"
               + ("; calibration: the members' calibration images no member trained on" if calibration else ""))
    split.save(out / SPLIT_FILE)
    sources_used = list({s["name"]: s for m in loaded for s in m.card.dataset.get("sources", [])}.values())
    card = ModelCard(
        name=name or out.name,
        classes=first.classes,
        image_size=first.image_size,
        channels=first.channels,
        dataset={"name": " + ".join(dict.fromkeys(str(m.card.dataset.get("name")) for m in loaded)),
                 "root": root, "split": split.origin, "counts": split.counts(),
                 **({"sources": sources_used} if sources_used else {})},
        training={
            "combined": "classifiers and a tumour-map network: whether there is a tumour from both, by a rule "
                        "fitted on validation images; the type from one; the outline from the map",
            "combination": rule,
            "members": [{"name": m.card.name, "folder": str(f), "sha256": m.card.sha256,
                         "role": MAP_ROLE if flag else "classifier", **m.card.training}
                        for f, m, flag in zip(folders, loaded, is_map)],
            "parameters": sum(int(m.model.count_params()) for m in loaded),
            "seconds": round(sum(float(m.card.training.get("seconds", 0)) for m in loaded), 1),
        },
        flip_averaging=True,
        decision=TUMOUR_FIRST,
        members=[{"folder": os.path.relpath(f.resolve(), out.resolve()), "sha256": m.card.sha256,
                  **({"role": MAP_ROLE} if flag else {})} for f, m, flag in zip(folders, loaded, is_map)],
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=library_versions(),
        sha256=members_digest([m.card.sha256 for m in loaded]),
    )
    card.save(out)
    return out

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
from brain_cnn.data.leakage import (Groups, cases_file, copy_groups, files_with_copies, hash_images, hash_samples,
                                    patient_groups)
from brain_cnn.data.pipeline import SOFT_TUMOUR, decode_samples
from brain_cnn.errors import DatasetError, ModelFolderError
from brain_cnn.inference.decision import TUMOUR_FIRST
from brain_cnn.model.card import SPLIT_FILE, ModelCard, library_versions
from brain_cnn.model.combined import classifier_members, combine, combined_network, familiarity, map_member, \
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


def _type_loss_weights(sources: np.ndarray) -> np.ndarray:
    cells = Counter(sources.tolist())
    weight = np.array([1.0 / cells[s] for s in sources.tolist()])
    return weight / weight.sum()


def _fit_type_weights(classified: np.ndarray, found: np.ndarray, labels: np.ndarray, sources: np.ndarray,
                      normal: int, g: np.ndarray | None = None) -> list[float]:
    """The type weights (d, e) of ``softmax(d log p_classifiers + e log p_map)`` that minimise the type's
    log-loss on the validation tumours of a known type, each source weighing the same; with a familiarity
    ``g``, four: (d, e) of the other looks, then of the familiar one (each slice's pair is their blend)."""
    from scipy.optimize import minimize

    typed, truth = _typed(labels, normal)
    if typed.sum() < 20:
        return [1.0, 0.0] if g is None else [1.0, 0.0, 1.0, 0.0]
    rows = np.arange(int(typed.sum()))
    weight = _type_loss_weights(sources[typed])
    here = None if g is None else g[typed][:, None]

    def loss(w):
        pairs = w if here is None else (1 - here) * w[:2] + here * w[2:]
        p = type_probabilities(classified[typed], found[typed], pairs, normal)
        return float(-(weight * np.log(np.clip(p[rows, truth], 1e-12, 1.0))).sum())

    start = [0.5, 0.5] if g is None else [0.5, 0.5, 0.5, 0.5]
    best = minimize(loss, x0=start, method="L-BFGS-B")
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


def _fit_numbers(classified, found, labels, sources, normal, g=None) -> dict[str, Any]:
    """The rule's numbers fitted on these rows: one set, or with a familiarity ``g`` the other looks' and the
    familiar look's (each a logistic fit on the presence inputs scaled by 1 - g and by g)."""
    from sklearn.linear_model import LogisticRegression

    tumour = labels != normal
    features = presence_inputs(classified, found, normal)
    weights = _balanced_weights(sources, tumour)
    if g is None:
        # Two inputs and thousands of slices: the default L2 penalty is a light touch, kept for stability.
        fitted = LogisticRegression(C=1.0).fit(features, tumour, sample_weight=weights)
        return {"weights": [round(float(w), 6) for w in fitted.coef_[0]],
                "intercept": round(float(fitted.intercept_[0]), 6),
                "type_weights": _fit_type_weights(classified, found, labels, sources, normal)}
    g = g[:, None]
    scaled = np.hstack([(1 - g) * features, 1 - g, g * features, g])
    coef = LogisticRegression(C=1.0, fit_intercept=False).fit(scaled, tumour, sample_weight=weights).coef_[0]
    types = _fit_type_weights(classified, found, labels, sources, normal, g[:, 0])
    rounded = [round(float(w), 6) for w in coef]
    return {"weights": rounded[:2], "intercept": rounded[2], "type_weights": types[:2],
            "familiar": {"weights": rounded[3:5], "intercept": rounded[5], "type_weights": types[2:]}}


def _fit_look(features: np.ndarray, home: np.ndarray, groups: np.ndarray, folds: int) -> tuple[dict, np.ndarray]:
    """A logistic look (weights over the raw features, the standardisation folded in) telling the classifiers'
    training source from the others, and each row's familiarity predicted by a fit that did not see its group
    (so the rule's numbers are fitted on familiarities as unseen slices get them)."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features)
    scaled = scaler.transform(features)
    splits = list(GroupKFold(folds).split(scaled, home, groups))
    # The strength of the penalty chosen by grouped cross-validation; the sources' sizes balanced.
    chosen = LogisticRegressionCV(Cs=LOOK_PENALTIES, l1_ratios=(0.0,), cv=splits, scoring="neg_log_loss",
                                  class_weight="balanced", max_iter=3000, use_legacy_attributes=False).fit(scaled, home)
    c = float(chosen.C_)
    unseen = cross_val_predict(LogisticRegression(C=c, class_weight="balanced", max_iter=3000), scaled, home,
                               cv=splits, method="predict_proba")[:, 1]
    scale = scaler.scale_
    weights = chosen.coef_[0] / scale
    intercept = float(chosen.intercept_[0] - (chosen.coef_[0] * scaler.mean_ / scale).sum())
    return {"weights": [float(np.float32(w)) for w in weights], "intercept": intercept, "C": c}, unseen


LOOK_PENALTIES = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # inverse L2 strengths tried for the look


def _rule_loss(probabilities: np.ndarray, labels: np.ndarray, sources: np.ndarray, normal: int) -> float:
    """The rule's validation loss: the presence log-loss (every (source, tumour / no tumour) cell the same) plus
    the type's log-loss on tumours of a known type (every source the same)."""
    tumour = labels != normal
    weights = _balanced_weights(sources, tumour)
    present = np.clip(1 - probabilities[:, normal], 1e-7, 1 - 1e-7)
    presence = -np.mean(weights * np.where(tumour, np.log(present), np.log1p(-present)))
    typed, truth = _typed(labels, normal)
    types = np.delete(probabilities[typed], normal, axis=1)
    types /= types.sum(axis=1, keepdims=True)
    type_loss = -(_type_loss_weights(sources[typed]) * np.log(np.clip(types[np.arange(len(truth)), truth], 1e-12,
                                                                        1))).sum() if typed.any() else 0.0
    return float(presence + type_loss)


def _validation_figures(probabilities, labels, sources, normal) -> dict[str, Any]:
    tumour = labels != normal
    typed, truth = _typed(labels, normal)
    right = np.delete(probabilities[typed], normal, axis=1).argmax(axis=1) == truth
    here = sources[typed]
    return {"loss": round(_rule_loss(probabilities, labels, sources, normal), 4),
            "type_accuracy": {str(s): round(float(right[here == s].mean()), 4) for s in sorted(set(here.tolist()))},
            "tumour_probability_at_half": _presence_figures(1 - probabilities[:, normal], tumour, sources)}


def _sources_left_out(classified, found, labels, sources, normal, features, at_home, groups,
                      folds) -> dict[str, Any]:
    """How each rule does on a look it was not fitted on: each source the classifiers did not train on, left out
    of the whole fit (the look's too) and predicted by the rest. A scan from another scanner or sequence is
    such a look; the figures say whether the look-dependent rule still sends it to the map network."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for source in sorted(set(sources[~at_home].tolist())):
        held = sources == source
        rest = ~held
        if at_home[rest].all() or len(set(groups[rest].tolist())) < folds:
            continue
        look, unseen = _fit_look(features[rest], at_home[rest], groups[rest], folds)
        g = familiarity(features[held], look)
        figures = {}
        for name, numbers, given in (
                ("one rule for every look", _fit_numbers(classified[rest], found[rest], labels[rest], sources[rest],
                                                         normal), None),
                ("look-dependent", _fit_numbers(classified[rest], found[rest], labels[rest], sources[rest], normal,
                                                unseen), g)):
            probabilities = combine(classified[held], found[held], numbers, normal, g=given)
            here = _validation_figures(probabilities, labels[held], sources[held], normal)
            tumour = labels[held] != normal
            figures[name] = {"type_accuracy": here["type_accuracy"].get(source),
                             **here["tumour_probability_at_half"][source],
                             "auc": round(float(roc_auc_score(tumour, 1 - probabilities[:, normal])), 4)
                             if 0 < tumour.sum() < len(tumour) else None}
        out[source] = {"familiarity_percentiles_50_90_99": [round(float(v), 3) for v in np.percentile(g, [50, 90, 99])],
                       **figures}
    return out


def fit_rule(classified: np.ndarray, found: np.ndarray, labels: np.ndarray, sources: np.ndarray,
             normal: int, features: np.ndarray | None = None, home: set[str] | None = None,
             groups: np.ndarray | None = None, folds: int = 5) -> dict[str, Any]:
    """The combination rule fitted on member probabilities (N, K) of validation images (each image's rows
    and its mirror image's rows, in any order), their labels (N,) (-1: a tumour of another type) and sources.

    With the first classifier's pooled ``features`` (N, D), the ``home`` sources its classifiers trained on and
    ``groups`` (rows that must stay together: an image and its mirror, a patient's slices), a look-dependent
    rule is fitted too; it is kept only if its loss, each row predicted by a fit that did not see its group
    (grouped cross-validation), is lower than the one-rule-for-every-look fit's.

    Raises:
        DatasetError: no tumours or no normal slices to fit on.
    """
    tumour = labels != normal
    if tumour.all() or not tumour.any():
        raise DatasetError("fitting the combination needs validation tumours and validation normal slices")
    rule = {"method": "logistic", **_fit_numbers(classified, found, labels, sources, normal)}
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
    at_home = None if features is None or groups is None or not home else np.isin(sources, sorted(home))
    if at_home is None or at_home.all() or not at_home.any() or len(set(groups.tolist())) < folds:
        return rule
    from sklearn.model_selection import GroupKFold

    look, unseen = _fit_look(features, at_home, groups, folds)
    one = np.zeros_like(classified)
    both = np.zeros_like(classified)
    for train, held in GroupKFold(folds).split(features, at_home, groups):
        numbers = _fit_numbers(classified[train], found[train], labels[train], sources[train], normal)
        one[held] = combine(classified[held], found[held], numbers, normal)
        # The whole look-dependent fit (the look, its penalty, the numbers) without the held-out rows, as it
        # would be fitted on every row and then meet new slices.
        if at_home[train].all() or not at_home[train].any() or len(set(groups[train].tolist())) < folds:
            both[held] = one[held]  # no look to fit without these rows: the one rule is what they would get
            continue
        fold_look, fold_unseen = _fit_look(features[train], at_home[train], groups[train], folds)
        numbers = _fit_numbers(classified[train], found[train], labels[train], sources[train], normal, fold_unseen)
        both[held] = combine(classified[held], found[held], numbers, normal, g=familiarity(features[held], fold_look))
    cross = {"one rule for every look": _validation_figures(one, labels, sources, normal),
             "look-dependent": _validation_figures(both, labels, sources, normal)}
    rule["validation"]["cross_validated"] = {
        "folds": folds, "grouped_by": "image with its mirror image and its copies, and patient where known",
        "nested": "the look and its penalty fitted within each fold", **cross}
    rule["validation"]["source_left_out"] = _sources_left_out(classified, found, labels, sources, normal, features,
                                                              at_home, groups, folds)
    familiar_fit = _fit_numbers(classified, found, labels, sources, normal, unseen)
    home_share = {str(s): round(float(np.median(unseen[sources == s])), 3) for s in sorted(set(sources.tolist()))}
    rule["validation"]["familiarity_median"] = home_share
    if cross["look-dependent"]["loss"] < cross["one rule for every look"]["loss"]:
        rule.update(method="look-dependent logistic", **familiar_fit,
                    look={**look, "home": sorted(home), "features": "the first classifier's pooled features"})
        # The in-sample figures of the rule kept, beside the two networks' own.
        kept = _validation_figures(combine(classified, found, rule, normal, features=features), labels, sources,
                                   normal)
        rule["validation"]["type_accuracy"]["combined"] = kept["type_accuracy"]
        rule["validation"]["tumour_probability_at_half"]["combined"] = kept["tumour_probability_at_half"]
    return rule


def _common_root(paths: list[str]) -> str:
    return os.path.relpath(os.path.commonpath([os.path.abspath(p) for p in paths]))


def _member_outputs(model, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw probabilities of the classifiers (their mean) and of the map network, and the first classifier's
    pooled features, for images and mirror images."""
    from brain_cnn.inference.predictor import predict_outputs, predict_probabilities

    both = np.concatenate([images, images[:, :, ::-1]])
    members = classifier_members(model)
    features, first = predict_outputs(members[0], both, batch_size)
    classifiers = [first] + [predict_probabilities(member, both, batch_size) for member in members[1:]]
    return np.mean(classifiers, axis=0), predict_probabilities(map_member(model), both, batch_size), features


def _source_folder(path: str, source: str) -> str:
    """The folder of data set ``source`` that ``path`` lies in (the nearest folder above it of that name)."""
    for folder in Path(os.path.abspath(path)).parents:
        if folder.name == source:
            return str(folder)
    raise DatasetError(f"{path} does not lie in a folder named {source!r}")


def _fit_groups(files: list[str], root: str, sources: np.ndarray) -> np.ndarray:
    """Rows that must stay together when the rule is cross-validated: a patient's slices where the set lists its
    patients (:func:`brain_cnn.data.leakage.patient_groups`), joined with the copies of any of them in any
    orientation among all fitting images (:func:`brain_cnn.data.leakage.copy_groups`: the 4-class set holds
    many), else each image alone.

    Raises:
        DatasetError: a set lists its patients but none of its fitting images can be matched to one.
    """
    joined = Groups()
    for source in sorted(set(sources.tolist())):
        mine = [f for f, s in zip(files, sources) if s == source]
        base = _source_folder(os.path.join(root, mine[0]), source)
        samples = [Sample(os.path.relpath(os.path.join(root, f), base), "") for f in mine]
        patients = patient_groups(base, samples)
        if cases_file(Path(base)) is not None and not patients:
            raise DatasetError(f"{source} lists its patients, but none of its {len(mine)} fitting images is named "
                               f"after one of them: the rule's cross-validation would split patients")
        for f, sample in zip(mine, samples):
            joined.join(f, f"{source}: {patients.get(sample.path, f)}")
    hashes = hash_samples(root, [Sample(f, "") for f in files])
    first_of: dict[int, str] = {}
    for f, number in zip(hashes.files, copy_groups(hashes)):
        joined.join(f, first_of.setdefault(number, f))
    return np.array([joined.find(f) for f in files])


def _home(manifest: SplitManifest, sources: set[str]) -> set[str]:
    """The fitting sources a classifier trained on: those whose folder its training images lie in."""
    parts = {part for path, _ in _absolute(manifest, "train") for part in Path(path).parts}
    return {s for s in sources if s in parts}


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
    classified, found, features = _member_outputs(network, decoded.images, batch_size)
    groups = _fit_groups(decoded.files, root, sources)
    first_manifest = manifests[is_map.index(False)]
    rule = fit_rule(classified, found, np.concatenate([decoded.labels] * 2), np.concatenate([sources] * 2), normal,
                    features=features, home=_home(first_manifest, set(sources.tolist())),
                    groups=np.concatenate([groups] * 2))
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
                      "either network alone as a special case. A look-dependent rule (feature-weighted stacking: "
                      "those numbers blended by how much the slice looks like the classifiers' training source, a "
                      "logistic fit on the first classifier's pooled features) is fitted beside it and kept only "
                      "where its grouped cross-validated loss is lower: the classifiers type their own look best and "
                      "the map network the others, and one blend for every slice settles between the two")

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

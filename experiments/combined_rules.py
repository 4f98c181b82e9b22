"""Compare combination rules on the saved fitting rows (validation images only), by nested grouped cross-validation.

    python experiments/combined_rules.py runs/combined-rows-9.npz

Rules: one set of numbers for every look; two looks (the classifiers' training source or not, as
``brain-cnn ensemble`` fits it); one set of numbers per fitting source, blended by a multinomial look over the
first classifier's pooled features. Each row is predicted by a fit that did not see its group (an image with its
mirror and copies, a patient's slices); the look and its penalty are fitted inside each fold. Per source (and per
sequence of the 44-class set): ROC AUC of the tumour probability, sensitivity at 90 % specificity, type accuracy.
"""

from __future__ import annotations

import argparse
import re

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.preprocessing import StandardScaler

from brain_cnn.model.combined import presence_inputs, type_probabilities
from brain_cnn.training.combined import LOOK_PENALTIES, _balanced_weights, _fit_type_weights, _rule_loss

FOLDS = 5


def _look(features, source_index, groups, k):
    """A multinomial look (k sources; k == 2: the logistic look) and each row's out-of-group memberships."""
    scaler = StandardScaler().fit(features)
    x = scaler.transform(features)
    splits = list(GroupKFold(FOLDS).split(x, source_index, groups))
    chosen = LogisticRegressionCV(Cs=LOOK_PENALTIES, l1_ratios=(0.0,), cv=splits, scoring="neg_log_loss",
                                  class_weight="balanced", max_iter=3000, use_legacy_attributes=False).fit(x, source_index)
    c = float(np.ravel(chosen.C_)[0])
    unseen = cross_val_predict(LogisticRegression(C=c, class_weight="balanced", max_iter=3000), x, source_index,
                               cv=splits, method="predict_proba")
    fitted = LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(x, source_index)
    return (lambda f: fitted.predict_proba(scaler.transform(f))), unseen


def _numbers(classified, found, labels, sources, normal, g, home_alone=False):
    """Presence and type numbers per look (g: (N, k) memberships); ``home_alone``: the last (familiar) look's
    presence from the classifiers' log-odds alone (the map's weight held at 0)."""
    from scipy.optimize import minimize

    tumour = labels != normal
    x = presence_inputs(classified, found, normal)
    design = np.hstack([np.hstack([g[:, [j]] * x, g[:, [j]]]) for j in range(g.shape[1])])
    if home_alone:
        design = np.delete(design, design.shape[1] - 2, axis=1)
    coef = LogisticRegression(C=1.0, fit_intercept=False).fit(design, tumour,
                                                              sample_weight=_balanced_weights(sources, tumour)).coef_[0]
    if home_alone:
        coef = np.insert(coef, len(coef) - 1, 0.0)
    presence = coef.reshape(g.shape[1], 3)
    if g.shape[1] == 1:
        types = np.array([_fit_type_weights(classified, found, labels, sources, normal)])
    else:
        typed = (labels >= 0) & (labels != normal)
        truth = np.where(labels > normal, labels - 1, labels)[typed]
        counts = {s: (sources[typed] == s).sum() for s in set(sources[typed].tolist())}
        weight = np.array([1.0 / counts[s] for s in sources[typed]])
        weight /= weight.sum()
        here = g[typed]

        def loss(w):
            pairs = here @ w.reshape(-1, 2)
            p = type_probabilities(classified[typed], found[typed], pairs, normal)
            return float(-(weight * np.log(np.clip(p[np.arange(len(truth)), truth], 1e-12, 1))).sum())

        types = minimize(loss, x0=np.full(2 * g.shape[1], 0.5), method="L-BFGS-B").x.reshape(-1, 2)
    return presence, types


def _apply(classified, found, normal, presence, types, g):
    x = presence_inputs(classified, found, normal)
    numbers = g @ presence
    tumour = 1 / (1 + np.exp(-((x * numbers[:, :2]).sum(axis=1) + numbers[:, 2])))
    kinds = type_probabilities(classified, found, g @ types, normal)
    return np.insert(tumour[:, None] * kinds, normal, 1 - tumour, axis=1)


def _memberships(kind, sources, home):
    names = sorted(set(sources.tolist()))
    if kind == "one":
        return np.zeros(len(sources), int), 1
    if kind in ("two", "two, familiar presence from the classifiers"):
        return np.isin(sources, home).astype(int), 2
    return np.array([names.index(s) for s in sources]), len(names)


def cross_validated(rows, kind):
    classified, found, labels, sources = rows["classified"], rows["found"], rows["labels"], rows["sources"]
    features, groups, normal, home = rows["features"], rows["groups"], int(rows["normal"]), list(rows["home"])
    index, k = _memberships(kind, sources, home)
    out = np.zeros_like(classified)
    for train, held in GroupKFold(FOLDS).split(features, labels, groups):
        if k == 1:
            g_train, g_held = np.ones((len(train), 1)), np.ones((len(held), 1))
        else:
            predict, unseen = _look(features[train], index[train], groups[train], k)
            g_train, g_held = unseen, predict(features[held])
        presence, types = _numbers(classified[train], found[train], labels[train], sources[train], normal, g_train,
                                   home_alone=kind.endswith("classifiers"))
        out[held] = _apply(classified[held], found[held], normal, presence, types, g_held)
    return out


def _sens_at_spec(score, tumour, spec=0.9):
    normals = np.sort(score[~tumour])
    threshold = normals[int(np.ceil(spec * len(normals))) - 1]
    return float((score[tumour] > threshold).mean())


def report(rows, name, probabilities):
    labels, sources, normal = rows["labels"], rows["sources"], int(rows["normal"])
    files = rows["files"]
    tumour = labels != normal
    score = 1 - probabilities[:, normal]
    sequence = np.array([(re.search(r"(T1C\+|T1|T2)/", f) or [None, ""])[1] for f in files])
    print(f"\n{name}: loss {_rule_loss(probabilities, labels, sources, normal):.3f}")
    cells = [(s, sources == s) for s in sorted(set(sources.tolist()))]
    cells += [(f"brain-tumor-44c {q}", (sources == "brain-tumor-44c") & (sequence == q)) for q in ("T1", "T1C+", "T2")]
    for cell, here in cells:
        t, s = tumour[here], score[here]
        typed = here & (labels >= 0) & (labels != normal)
        truth = np.where(labels > normal, labels - 1, labels)[typed]
        right = np.delete(probabilities[typed], normal, axis=1).argmax(axis=1) == truth
        auc = roc_auc_score(t, s) if 0 < t.sum() < len(t) else float("nan")
        at90 = _sens_at_spec(s, t) if 0 < t.sum() < len(t) else float("nan")
        print(f"  {cell:24s} {t.sum():5d} tumours {(~t).sum():4d} normals  AUC {auc:.3f}  sens@90spec {at90:.3f}  "
              f"sens/spec@0.5 {(s[t] >= .5).mean():.3f}/{(s[~t] < .5).mean() if (~t).any() else float('nan'):.3f}  "
              f"type {right.mean() if typed.any() else float('nan'):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows")
    parser.add_argument("--rules", nargs="+", default=["one", "two", "two, familiar presence from the classifiers",
                                                         "per source"])
    args = parser.parse_args()
    rows = dict(np.load(args.rows, allow_pickle=False))
    for name, p in (("classifiers alone", rows["classified"]), ("map network alone", rows["found"])):
        report(rows, name, p)
    for kind in args.rules:
        report(rows, f"{kind} (nested grouped {FOLDS}-fold CV)", cross_validated(rows, kind))


if __name__ == "__main__":
    main()

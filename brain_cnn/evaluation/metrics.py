"""Classification metrics for a set of predictions, as stored in ``evaluation.json``.

Pure functions of labels and probabilities (no model, no files), so they are
tested on small confusions whose answers are known by hand. scikit-learn
computes what it offers; the calibration error is computed here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from brain_cnn.data.classes import is_no_tumour
from brain_cnn.inference.decision import TOP_CLASS, decide
from brain_cnn.scan.sequences import without_sequence

__all__ = ["classification_metrics", "calibration", "screening", "type_view"]

def _round(values, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]


def calibration(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict[str, Any]:
    """Expected calibration error of the top-class confidence, with its reliability bins.

    ECE = sum over equal-width confidence bins of (bin share) x |accuracy - confidence|
    (Guo et al., 2017, "On Calibration of Modern Neural Networks"). It measures
    whether the top class is right as often as its probability says, so it
    stays on the top class whatever decision rule makes the call.
    """
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin i holds confidences in (edges[i], edges[i+1]]; confidence 0 goes to the first bin.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    bins, ece = [], 0.0
    for i in range(n_bins):
        members = index == i
        count = int(members.sum())
        if count:
            acc, conf = float(correct[members].mean()), float(confidence[members].mean())
            ece += count / len(y_true) * abs(acc - conf)
        else:
            acc = conf = None
        bins.append({"lower": round(float(edges[i]), 4), "upper": round(float(edges[i + 1]), 4),
                     "count": count, "accuracy": acc, "confidence": conf})
    return {"ece": round(ece, 5), "n_bins": n_bins, "bins": bins}


def screening(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str],
              decision: str = TOP_CLASS) -> dict[str, Any] | None:
    """Tumour vs no tumour: sensitivity, specificity and ROC AUC; None without a no-tumour class.

    A case counts as "tumour" when the class called under ``decision``
    (:func:`~brain_cnn.inference.decision.decide`) is any tumour class; the
    tumour score for the ROC curve is 1 - P(no-tumour classes).
    """
    from sklearn.metrics import roc_auc_score

    negative = np.array([is_no_tumour(c) for c in classes])
    if not negative.any() or negative.all():
        return None
    truth = ~negative[y_true]
    called = ~negative[decide(probs, classes, decision)]
    tp, fn = int((truth & called).sum()), int((truth & ~called).sum())
    tn, fp = int((~truth & ~called).sum()), int((~truth & called).sum())
    score = 1.0 - probs[:, negative].sum(axis=1)
    both = truth.any() and (~truth).any()
    return {
        "no_tumour_classes": [c for c, n in zip(classes, negative) if n],
        "sensitivity": round(tp / (tp + fn), 5) if tp + fn else None,
        "specificity": round(tn / (tn + fp), 5) if tn + fp else None,
        "true_positive": tp, "false_negative": fn, "true_negative": tn, "false_positive": fp,
        "roc_auc": round(float(roc_auc_score(truth, score)), 5) if both else None,
    }


def type_view(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str],
              decision: str = TOP_CLASS) -> dict[str, Any] | None:
    """The same predictions with the MRI sequences merged ("Astrocitoma T1" + "T1C+" + "T2" -> "Astrocitoma").

    The probability of a type is the sum over its sequences; the call is made
    from those under ``decision``. None when no two classes differ only by
    their sequence.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, top_k_accuracy_score


    types = sorted({without_sequence(c) for c in classes})
    if len(types) == len(classes):
        return None
    member = np.array([[without_sequence(c) == t for t in types] for c in classes], dtype=np.float64)
    merged = np.asarray(probs, dtype=np.float64) @ member
    truth = member[np.asarray(y_true, dtype=int)].argmax(axis=1)
    predicted = decide(merged, types, decision)
    labels = list(range(len(types)))
    per_type_f1 = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    view = {
        "types": types,
        "accuracy": round(float(accuracy_score(truth, predicted)), 5),
        "macro_f1": round(float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)), 5),
        "f1": {t: round(float(f), 5) for t, f in zip(types, per_type_f1)},
        "confusion_matrix": confusion_matrix(truth, predicted, labels=labels).tolist(),
    }
    if len(types) > 3:
        view["top3_accuracy"] = round(float(top_k_accuracy_score(truth, merged, k=3, labels=labels)), 5)
    return view


def _precision_recall_f1(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]):
    """Precision, recall, F1 and support per class; their macro and weighted averages."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {name: {"precision": round(float(precision[i]), 5), "recall": round(float(recall[i]), 5),
                        "f1": round(float(f1[i]), 5), "support": int(support[i])} for i, name in enumerate(classes)}
    averages = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        averages[average] = {"precision": round(float(p), 5), "recall": round(float(r), 5), "f1": round(float(f), 5)}
    return per_class, averages


def _curves(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]):
    """One-vs-rest ROC and precision-recall curves of each class that has both positives and negatives."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    roc, pr = {}, {}
    for i, name in enumerate(classes):
        positive = y_true == i
        if not positive.any() or positive.all():
            continue  # a curve needs both positives and negatives
        fpr, tpr, _ = roc_curve(positive, probs[:, i])
        roc[name] = {"fpr": _round(fpr), "tpr": _round(tpr), "auc": round(float(auc(fpr, tpr)), 5)}
        prec, rec, _ = precision_recall_curve(positive, probs[:, i])
        pr[name] = {"precision": _round(prec), "recall": _round(rec),
                    "average_precision": round(float(average_precision_score(positive, probs[:, i])), 5)}
    return roc, pr


def classification_metrics(
    y_true: Sequence[int],
    probs: np.ndarray,
    classes: Sequence[str],
    files: Sequence[str] | None = None,
    decision: str = TOP_CLASS,
) -> dict[str, Any]:
    """Every figure of an evaluation report for one split.

    Args:
        y_true: true class indices, shape (N,).
        probs: predicted probabilities, shape (N, K), rows summing to 1.
        classes: the K class names in output order.
        files: optional file names aligned with ``y_true``, for the list of misclassified files.
        decision: the rule that makes each call from the probabilities (:mod:`brain_cnn.inference.decision`):
            it decides the accuracy, confusion matrix, precision/recall/F1, screening and misclassified files;
            the calibration stays on the top class, the curves and top-3 on the probabilities.

    Returns:
        A JSON-ready dict: accuracy, log-loss, top-3 accuracy, per-class and macro/weighted
        precision/recall/F1/support, confusion matrix, one-vs-rest ROC and
        precision-recall curves, calibration, tumour screening and misclassified files.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, top_k_accuracy_score

    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    labels = list(range(k))
    y_pred = decide(probs, classes, decision)
    per_class, averages = _precision_recall_f1(y_true, y_pred, classes)
    roc, pr = _curves(y_true, probs, classes)
    report: dict[str, Any] = {
        "count": int(len(y_true)),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 5),
        # Mean negative log-probability of the true class: the figure checkpoints are chosen by,
        # and the one that sees confident mistakes that accuracy does not.
        "log_loss": round(float(log_loss(y_true, np.clip(probs, 1e-15, 1.0), labels=labels)), 5),
        "per_class": per_class,
        "macro": averages["macro"],
        "weighted": averages["weighted"],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "roc": roc,
        "macro_roc_auc": round(float(np.mean([c["auc"] for c in roc.values()])), 5) if roc else None,
        "precision_recall": pr,
        "calibration": calibration(y_true, probs),
        "screening": screening(y_true, probs, classes, decision),
    }
    merged = type_view(y_true, probs, classes, decision)
    if merged is not None:
        report["by_type"] = merged
    if k > 3:
        report["top3_accuracy"] = round(float(top_k_accuracy_score(y_true, probs, k=3, labels=labels)), 5)
    if files is not None:
        report["misclassified"] = [
            {"file": files[i], "true": classes[y_true[i]], "predicted": classes[y_pred[i]],
             "probabilities": dict(zip(classes, _round(probs[i])))}
            for i in np.flatnonzero(y_pred != y_true)
        ]
    return report

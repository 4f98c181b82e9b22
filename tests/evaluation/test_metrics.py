import numpy as np
import pytest

from brain_cnn.data.classes import is_no_tumour
from brain_cnn.evaluation.metrics import calibration, classification_metrics, screening

CLASSES = ["glioma", "notumor", "pituitary"]


def one_hot_probs(predicted, confidence=0.8, k=3):
    probs = np.full((len(predicted), k), (1 - confidence) / (k - 1))
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


@pytest.fixture
def known():
    # true:      g g g g n n n p p p
    # predicted: g g g n n n g p p n
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 1, 0, 2, 2, 1])
    files = [f"f{i}.jpg" for i in range(10)]
    return y_true, one_hot_probs(y_pred), files


def test_accuracy_confusion_and_per_class_figures(known):
    y_true, probs, files = known
    report = classification_metrics(y_true, probs, CLASSES, files)
    assert report["accuracy"] == pytest.approx(0.7)
    assert report["confusion_matrix"] == [[3, 1, 0], [1, 2, 0], [0, 1, 2]]
    glioma = report["per_class"]["glioma"]
    assert glioma["precision"] == pytest.approx(3 / 4)
    assert glioma["recall"] == pytest.approx(3 / 4)
    assert glioma["support"] == 4
    notumor = report["per_class"]["notumor"]
    assert notumor["precision"] == pytest.approx(2 / 4) and notumor["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["per_class"]["pituitary"]["f1"] == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3), abs=1e-4)
    macro_p = (3 / 4 + 2 / 4 + 1) / 3
    assert report["macro"]["precision"] == pytest.approx(macro_p, abs=1e-4)
    weighted_r = (4 * 3 / 4 + 3 * 2 / 3 + 3 * 2 / 3) / 10
    assert report["weighted"]["recall"] == pytest.approx(weighted_r, abs=1e-4)
    assert [m["file"] for m in report["misclassified"]] == ["f3.jpg", "f6.jpg", "f9.jpg"]
    assert report["misclassified"][0]["true"] == "glioma" and report["misclassified"][0]["predicted"] == "notumor"


def test_log_loss_of_known_probabilities(known):
    y_true, probs, _ = known
    # 7 right with p = 0.8, 3 wrong where the true class got 0.1
    expected = -(7 * np.log(0.8) + 3 * np.log(0.1)) / 10
    assert classification_metrics(y_true, probs, CLASSES)["log_loss"] == pytest.approx(expected, abs=1e-5)


def test_curves_and_auc(known):
    y_true, probs, _ = known
    report = classification_metrics(y_true, probs, CLASSES)
    for name in CLASSES:
        curve = report["roc"][name]
        assert curve["fpr"][0] == 0 and curve["tpr"][-1] == 1
        assert 0.5 < curve["auc"] <= 1
        assert 0 < report["precision_recall"][name]["average_precision"] <= 1
    # A perfect ranking scores 1.
    perfect = classification_metrics(y_true, one_hot_probs(y_true), CLASSES)
    assert perfect["macro_roc_auc"] == 1.0 and perfect["accuracy"] == 1.0


def test_calibration_error_of_known_bins():
    # Four cases at confidence 0.8 of which 2 are right: |0.5 - 0.8| = 0.3 over all.
    y_true = np.array([0, 0, 1, 1])
    probs = one_hot_probs(np.array([0, 1, 1, 0]), 0.8, k=2)
    result = calibration(y_true, probs, n_bins=10)
    assert result["ece"] == pytest.approx(0.3)
    filled = [b for b in result["bins"] if b["count"]]
    assert len(filled) == 1 and filled[0]["accuracy"] == 0.5
    assert filled[0]["lower"] == pytest.approx(0.7) and filled[0]["upper"] == pytest.approx(0.8)


def test_perfectly_calibrated_predictions_have_zero_ece():
    assert calibration(np.array([0, 1]), one_hot_probs(np.array([0, 1]), 1.0, 2))["ece"] == 0


def test_screening_sensitivity_and_specificity(known):
    y_true, probs, _ = known
    result = screening(y_true, probs, CLASSES)
    # Tumour cases (g, p): 7, called tumour unless predicted notumor: misses f3, f9 -> 5/7.
    assert result["sensitivity"] == pytest.approx(5 / 7, abs=1e-4)
    # No-tumour cases: 3, called tumour once (f6) -> 2/3.
    assert result["specificity"] == pytest.approx(2 / 3, abs=1e-4)
    assert (result["true_positive"], result["false_negative"], result["true_negative"], result["false_positive"]) == (5, 2, 2, 1)


def test_no_screening_without_a_no_tumour_class():
    assert screening(np.array([0, 1]), one_hot_probs(np.array([0, 1]), k=2), ["glioma", "meningioma"]) is None


@pytest.mark.parametrize("name,expected", [
    ("notumor", True), ("no_tumor", True), ("no", True), ("_NORMAL T2", True), ("Normal", True),
    ("glioma", False), ("yes", False), ("Astrocitoma T1C+", False), ("pituitary_tumor", False),
])
def test_no_tumour_class_names(name, expected):
    assert is_no_tumour(name) is expected


def test_top3_accuracy_for_many_classes():
    y_true = np.array([0, 1, 2, 3])
    probs = np.array([[0.1, 0.2, 0.3, 0.4]] * 4)  # ranking 3, 2, 1, 0
    report = classification_metrics(y_true, probs, ["a", "b", "c", "d"])
    assert report["accuracy"] == 0.25 and report["top3_accuracy"] == 0.75


def test_type_view_merges_the_sequences():
    from brain_cnn.evaluation.metrics import type_view

    classes = ["Glioma T1", "Glioma T2", "Meningioma T1", "_NORMAL T2"]
    probs = np.array([[0.2, 0.5, 0.3, 0.0],   # Glioma T1: wrong sequence, right type
                      [0.3, 0.3, 0.4, 0.0],   # Glioma T2: glioma 0.6 beats meningioma 0.4
                      [0.1, 0.1, 0.2, 0.6],   # Meningioma T1 called normal
                      [0.0, 0.0, 0.1, 0.9]])
    view = type_view(np.array([0, 1, 2, 3]), probs, classes)
    assert view["types"] == ["Glioma", "Meningioma", "_NORMAL"]
    assert view["accuracy"] == 0.75
    assert view["confusion_matrix"] == [[2, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert type_view(np.array([0, 1]), np.eye(2), ["glioma", "notumor"]) is None


def test_the_decision_rule_makes_the_calls_and_the_calibration_stays_on_the_top_class():
    classes = ["glioma", "meningioma", "notumor"]
    y_true = np.array([0, 1, 2, 2])
    probs = np.array([[0.35, 0.25, 0.40],   # a glioma the top class calls no tumour; tumour first finds it
                      [0.20, 0.50, 0.30],
                      [0.10, 0.20, 0.70],
                      [0.30, 0.25, 0.45]])  # a normal scan tumour first calls glioma (tumour 55 %)
    top = classification_metrics(y_true, probs, classes, [f"f{i}" for i in range(4)])
    first = classification_metrics(y_true, probs, classes, [f"f{i}" for i in range(4)], decision="tumour first")
    assert top["confusion_matrix"] == [[0, 0, 1], [0, 1, 0], [0, 0, 2]]
    assert first["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert top["accuracy"] == first["accuracy"] == 0.75
    assert top["per_class"]["glioma"]["recall"] == 0 and first["per_class"]["glioma"]["recall"] == 1
    assert first["per_class"]["glioma"]["precision"] == 0.5
    assert (top["screening"]["sensitivity"], top["screening"]["specificity"]) == (0.5, 1.0)
    assert (first["screening"]["sensitivity"], first["screening"]["specificity"]) == (1.0, 0.5)
    assert [m["file"] for m in first["misclassified"]] == ["f3"]
    assert first["misclassified"][0]["predicted"] == "glioma"
    assert first["calibration"] == top["calibration"]
    assert first["roc"] == top["roc"] and first["log_loss"] == top["log_loss"]


def test_the_sequences_merged_are_called_by_the_rule_too():
    from brain_cnn.evaluation.metrics import type_view

    classes = ["Glioma T1", "Glioma T2", "Meningioma T1", "_NORMAL T1", "_NORMAL T2"]
    # Merged: glioma 30 %, meningioma 30 %, normal 40 %: the top type is normal; the tumour types hold 60 %.
    probs = np.array([[0.15, 0.15, 0.30, 0.25, 0.15]])
    assert type_view(np.array([0]), probs, classes)["accuracy"] == 0
    assert type_view(np.array([0]), probs, classes, "tumour first")["accuracy"] == 1

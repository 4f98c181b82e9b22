import numpy as np
import pytest

from brain_cnn.inference.decision import DECISIONS, TOP_CLASS, TUMOUR_FIRST, called_class, decide

FOUR = ["glioma", "meningioma", "notumor", "pituitary"]


def test_tumour_first_calls_the_tumour_the_top_class_calls_no_tumour():
    example = {"glioma": 0.30, "meningioma": 0.30, "notumor": 0.40, "pituitary": 0.0}
    assert called_class(example, TOP_CLASS) == "notumor"
    assert called_class(example, TUMOUR_FIRST) == "glioma"  # tumour 60 %; of the tumours, the first most probable
    probs = np.array([[0.10, 0.25, 0.40, 0.25],   # tumour 60 %: the most probable tumour (meningioma, first of the tie)
                      [0.05, 0.05, 0.80, 0.10],   # no tumour
                      [0.70, 0.10, 0.10, 0.10]])  # a tumour either way
    assert decide(probs, FOUR, TOP_CLASS).tolist() == [2, 2, 0]
    assert decide(probs, FOUR, TUMOUR_FIRST).tolist() == [1, 2, 0]


def test_many_classes_with_several_normal_classes():
    classes = ["Astrocitoma T1", "Glioblastoma T2", "_NORMAL T1", "_NORMAL T2", "Meningioma T1C+"]
    probs = np.array([
        [0.20, 0.15, 0.30, 0.25, 0.10],  # normals 55 %: the most probable normal class
        [0.05, 0.30, 0.25, 0.20, 0.20],  # normals 45 %: the most probable tumour class, not the largest normal
        [0.40, 0.00, 0.35, 0.25, 0.00],  # normals 60 %, though a tumour class is the largest
    ])
    assert decide(probs, classes, TOP_CLASS).tolist() == [2, 1, 0]
    assert decide(probs, classes, TUMOUR_FIRST).tolist() == [2, 1, 2]


@pytest.mark.parametrize("classes", [["glioma", "meningioma", "pituitary"], ["_NORMAL T1", "_NORMAL T2", "notumor"]])
def test_without_a_no_tumour_class_or_with_only_those_it_is_the_top_class(classes):
    probs = np.array([[0.3, 0.3, 0.4], [0.5, 0.2, 0.3]])
    assert decide(probs, classes, TUMOUR_FIRST).tolist() == decide(probs, classes, TOP_CLASS).tolist() == [2, 0]


def test_a_tie_at_one_half_goes_to_tumour():
    classes = ["glioma", "meningioma", "notumor"]
    # 0.1 + 0.4 is 0.5 in floating point; 0.7 - 0.2 falls short of it by rounding alone: both are ties.
    probs = np.array([[0.1, 0.4, 0.5], [0.3, 0.2, 0.5], [0.7 - 0.2, 0.0, 0.5], [0.2, 0.2999, 0.5001]])
    assert decide(probs, classes, TUMOUR_FIRST).tolist() == [1, 0, 0, 2]
    assert called_class({"tumor": 0.5, "no": 0.5}, TUMOUR_FIRST) == "tumor"
    assert called_class({"no": 0.5, "tumor": 0.5}, TOP_CLASS) == "no"


def test_an_unknown_rule_or_a_wrong_shape_is_refused():
    assert DECISIONS == ("top class", "tumour first")
    with pytest.raises(ValueError, match="unknown decision rule 'tumor-first'.*'top class', 'tumour first'"):
        decide(np.array([[0.5, 0.5]]), ["no", "yes"], "tumor-first")
    with pytest.raises(ValueError, match="do not fit 3 classes"):
        decide(np.array([0.5, 0.5]), ["no", "yes", "maybe"], TUMOUR_FIRST)

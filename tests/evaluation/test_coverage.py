"""The conformal sets' figures on a split: coverage by class and at the level of tumour / no tumour, screening."""

import numpy as np

from brain_cnn.evaluation.coverage import screening_figures, set_figures
from brain_cnn.inference.conformal import Conformal

CLASSES = ["glioma", "meningioma", "notumor"]


def test_figures_count_what_the_sets_hold_and_what_the_threshold_lets_through():
    calibration = np.array([[0.8, 0.1, 0.1]] * 10 + [[0.1, 0.8, 0.1]] * 10 + [[0.1, 0.1, 0.8]] * 10)
    fitted = Conformal.fit(calibration, np.repeat([0, 1, 2], 10), CLASSES)
    # Every calibration score is 0.2: a class is in the 90 % set when its probability is at least 0.8.
    probabilities = np.array([[0.85, 0.1, 0.05],   # glioma: set {glioma}, right
                              [0.05, 0.9, 0.05],   # labelled glioma: set {meningioma}, wrong class, right presence
                              [0.3, 0.3, 0.4],     # normal: empty set
                              [0.05, 0.9, 0.05]])  # tumour of a type the model does not name (-1)
    labels = np.array([0, 0, 2, -1])
    figures = set_figures(fitted, probabilities, labels, CLASSES, coverage=0.9)
    assert figures["coverage"] == round(1 / 3, 5) and figures["empty_sets"] == 1
    assert figures["presence_coverage"] == 0.75  # the empty set holds no "no tumour"
    assert figures["per_class"]["glioma"] == {"images": 2, "coverage": 0.5, "mean_set_size": 1.0}
    screening = figures["screening"]
    # The threshold is the lowest calibration tumour's P(tumour), 0.9; the normal (0.6) is below it.
    assert screening["threshold"] == 0.9 and screening["tumours"] == 3 and screening["missed"] == 0
    assert screening["normals_flagged"] == 0


def test_screening_figures_say_why_there_is_no_threshold():
    fitted = Conformal.fit(np.array([[0.9, 0.05, 0.05]] * 5), np.zeros(5, int), CLASSES)
    said = screening_figures(fitted, np.array([0.5]), np.array([True]))
    assert "needs at least 20 calibration tumours" in said["unavailable"]

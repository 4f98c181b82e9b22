import numpy as np
import pytest

from brain_cnn.inference.calibration import apply_temperature, fit_temperature
from brain_cnn.evaluation.metrics import calibration


def test_temperature_keeps_the_ranking_and_sums():
    probs = np.array([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05]])
    for t in (0.5, 1.0, 3.0):
        scaled = apply_temperature(probs, t)
        assert np.allclose(scaled.sum(axis=1), 1) and (scaled.argmax(1) == probs.argmax(1)).all()
    assert apply_temperature(probs, 3.0)[0, 0] < 0.7 < apply_temperature(probs, 0.5)[0, 0]


def test_fitting_softens_an_over_confident_model():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 2, n)
    correct = rng.random(n) < 0.8  # 80 % accurate ...
    predicted = np.where(correct, y, 1 - y)
    probs = np.full((n, 2), 0.01)
    probs[np.arange(n), predicted] = 0.99  # ... but 99 % sure
    t = fit_temperature(probs, y)
    assert t > 1.5
    before = calibration(y, probs)["ece"]
    after = calibration(y, apply_temperature(probs, t))["ece"]
    assert before == pytest.approx(0.19, abs=0.02) and after < 0.02

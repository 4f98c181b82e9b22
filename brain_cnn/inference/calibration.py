"""Temperature scaling: one scalar that makes softmax probabilities honest.

Guo et al., 2017, "On Calibration of Modern Neural Networks" (arXiv:1706.04599):
divide the logits by a temperature T fitted to minimise the negative
log-likelihood on held-out data. T > 1 softens over-confident outputs; the
predicted class never changes. The network outputs probabilities, so the
logits are recovered as their logarithms (softmax is invariant to the
constant that loses).
"""

from __future__ import annotations

import numpy as np

__all__ = ["apply_temperature", "fit_temperature"]

_EPSILON = 1e-12


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale probabilities (N, K) by ``temperature``; rows still sum to 1.

    Example:
        >>> apply_temperature(np.array([[0.9, 0.1]]), 1.0).round(3).tolist()
        [[0.9, 0.1]]
    """
    if temperature == 1.0:
        return probs
    logits = np.log(np.clip(probs, _EPSILON, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def _nll(probs: np.ndarray, y_true: np.ndarray, temperature: float) -> float:
    scaled = apply_temperature(probs, temperature)
    return float(-np.mean(np.log(np.clip(scaled[np.arange(len(y_true)), y_true], _EPSILON, 1.0))))


def fit_temperature(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Temperature in [0.05, 20] minimising the NLL of ``probs`` against ``y_true``."""
    from scipy.optimize import minimize_scalar

    y_true = np.asarray(y_true, dtype=int)
    result = minimize_scalar(lambda log_t: _nll(probs, y_true, float(np.exp(log_t))),
                             bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return round(float(np.exp(result.x)), 4)

"""Occlusion (Zeiler & Fergus, 2014, arXiv:1311.2901): how much the class's log-odds drop when a square hides
each place.

It asks the network itself, through no layer, at the cost of one pass per
place; of the app's methods it points at the tumour most often
(``brain-cnn explain-eval``; see docs/experiments.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from brain_cnn.explain.base import ExplanationMethod, Progress
from brain_cnn.inference.predictor import predict_probabilities

__all__ = ["OCCLUSION_METHOD", "occlusion_map"]

OCCLUSION_METHOD = ExplanationMethod(
    "Occlusion", None, None, {"patch": 0.2, "stride": 0.05},
    description="hides each place under a black square (a fifth of the side, moved by a twentieth) and shows how "
                "much the class's log-odds drop; asks the network itself, about 400 passes", costly=True)


def occlusion_map(model, pixels: np.ndarray, target: int | Sequence[int], patch: float = 0.2, stride: float = 0.05,
                  batch_size: int = 16, fill: np.ndarray | None = None, progress: Progress | None = None) -> np.ndarray:
    """Occlusion sensitivity of ``target`` for one ``uint8`` model input ``pixels`` (S, S).

    A square of side ``patch`` x S moves over the slice in steps of ``stride``
    x S (starting half outside, so the edges are covered as often as the middle);
    each pixel gets the mean drop of the target's log-odds over the squares that
    cover it. Rises (hiding a place makes the class likelier) count as zero.
    ``target`` is a class index, or several (e.g. every tumour class: the
    log-odds of their summed probability). ``fill`` is what the square shows at each place
    (S, S) ``uint8``: black when None. ``progress`` is told the fraction of
    passes done after each batch. Small batches: a call waiting for the network
    waits for one batch, not for the whole map.
    """
    size = pixels.shape[0]
    side, step = max(1, round(patch * size)), max(1, round(stride * size))
    places = [(y, x) for y in range(-side // 2, size - side // 2, step) for x in range(-side // 2, size - side // 2, step)]
    fills = np.zeros_like(pixels) if fill is None else fill
    covered = np.repeat(pixels[None, ..., None], len(places) + 1, axis=0)  # the first stays whole
    for i, (y, x) in enumerate(places, start=1):
        rows, cols = slice(max(0, y), y + side), slice(max(0, x), x + side)
        covered[i, rows, cols, 0] = fills[rows, cols]
    # Through the product's inference engine (ONNX Runtime on CPUs): 400 passes are the whole cost.
    classes = [target] if np.isscalar(target) else list(target)
    probabilities = []
    for start in range(0, len(covered), batch_size):
        probabilities.append(predict_probabilities(model, covered[start:start + batch_size], batch_size))
        if progress is not None:
            progress(min(1.0, (start + batch_size) / len(covered)))
    p = np.clip(np.concatenate(probabilities)[:, classes].sum(axis=1), 1e-7, 1 - 1e-7)
    log_odds = np.log(p) - np.log1p(-p)
    drops = log_odds[0] - log_odds[1:]
    heat, count = np.zeros((size, size)), np.zeros((size, size))
    for drop, (y, x) in zip(drops, places):
        heat[max(0, y):y + side, max(0, x):x + side] += drop
        count[max(0, y):y + side, max(0, x):x + side] += 1
    return np.maximum(heat / np.maximum(count, 1), 0).astype(np.float32)

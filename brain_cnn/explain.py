"""Where the network looked: class activation maps from tf-keras-vis, occlusion, and overlays.

Four methods, each a small :class:`ExplanationMethod`:

* Grad-CAM (Selvaraju et al., 2017, arXiv:1610.02391);
* Grad-CAM++ (Chattopadhyay et al., 2018, arXiv:1710.11063);
* Score-CAM (Wang et al., 2020, arXiv:1910.01279), gradient-free;
* occlusion (Zeiler & Fergus, 2014, arXiv:1311.2901): how much the class's
  log-odds drop when a black square hides each place. It asks the network
  itself, through no layer, at the cost of one pass per place. The default:
  of the four it points at the tumour most often (``brain-cnn explain-eval``
  on the 161 boxed test images; see the README).

The three class activation maps explain the last convolution block
(:data:`brain_cnn.model.LAST_CONV_LAYER`) with the softmax replaced by a
linear output, as the papers prescribe. An ensemble's map is the mean of its
members' maps; its occlusion map asks the ensemble itself.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from .model import LAST_CONV_LAYER
from .prediction import predict_probabilities

__all__ = ["METHODS", "DEFAULT_METHOD", "OCCLUSION", "OCCLUSION_FILLS", "Explainer", "occlusion_map",
           "overlay_heatmap"]


@dataclass(frozen=True)
class ExplanationMethod:
    """One explanation method: its tf-keras-vis class and extra call arguments."""

    name: str
    module: str | None  # the tf-keras-vis module and class; None for occlusion, computed here
    class_name: str | None
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def visualizer_class(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.class_name)


METHODS = {
    m.name: m
    for m in (
        ExplanationMethod("Grad-CAM", "tf_keras_vis.gradcam", "Gradcam",
                          description="gradients of the class score, averaged per feature map"),
        ExplanationMethod("Grad-CAM++", "tf_keras_vis.gradcam_plus_plus", "GradcamPlusPlus",
                          description="higher-order gradient weights; sharper for several regions"),
        ExplanationMethod("Score-CAM", "tf_keras_vis.scorecam", "Scorecam", {"max_N": 32},
                          description="gradient-free: masks the input with each feature map and scores it"),
        ExplanationMethod("Occlusion", None, None, {"patch": 0.2, "stride": 0.05},
                          description="hides each place under a black square (a fifth of the side, moved by a "
                                      "twentieth) and shows how much the class's log-odds drop; asks the network "
                                      "itself, about 400 passes"),
    )
}
OCCLUSION = "Occlusion"
DEFAULT_METHOD = OCCLUSION


class Explainer:
    """Class activation maps for one loaded model; visualizers are built once per method."""

    def __init__(self, model, layer: str = LAST_CONV_LAYER):
        from .ensemble import members_of

        self.model = model
        self.layer = layer
        self._visualizers: dict[str, Any] = {}
        self.members = [Explainer(member, layer) for member in members_of(model)]

    def _visualizer(self, method: str):
        if method not in METHODS:
            raise ValueError(f"unknown explanation method {method!r}; choose from {', '.join(METHODS)}")
        if method not in self._visualizers:
            from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

            self._visualizers[method] = METHODS[method].visualizer_class()(
                self.model, model_modifier=ReplaceToLinear(), clone=True
            )
        return self._visualizers[method]

    def heatmap(self, image: np.ndarray, class_index: int, method: str = DEFAULT_METHOD) -> np.ndarray:
        """Heat map in [0, 1], shape (S, S), for a model input ``image`` of shape (S, S, 1).

        Example:
            >>> Explainer(model).heatmap(load_scan("scan.jpg", 160), 0)  # doctest: +SKIP
        """
        if method == OCCLUSION:
            heat = occlusion_map(self.model, image[..., 0], int(class_index), **METHODS[method].options)
            return _peak_one(heat)
        if self.members:  # an ensemble: the mean of its members' maps, each of its own last block
            heat = np.mean([member.heatmap(image, class_index, method) for member in self.members], axis=0)
            return _peak_one(heat)
        from tf_keras_vis.utils.scores import CategoricalScore

        visualizer = self._visualizer(method)
        batch = image[None].astype(np.float32)
        options = dict(METHODS[method].options)
        if "max_N" in options:  # Score-CAM: no more masks than the layer has channels
            options["max_N"] = min(options["max_N"], int(self.model.get_layer(self.layer).output.shape[-1]))
        # Score-CAM runs model.predict, whose progress bar would clutter logs. Without
        # seek_penultimate_conv_layer=False, tf-keras-vis replaces a named layer that is not a
        # convolution (ours ends in ReLU) by the nearest convolution before it, i.e. the raw
        # output before batch normalisation and ReLU, and explains that instead of the block.
        with contextlib.redirect_stdout(io.StringIO()):
            cam = visualizer(CategoricalScore([int(class_index)]), batch, penultimate_layer=self.layer,
                             seek_penultimate_conv_layer=False, **options)
        return _peak_one(np.nan_to_num(np.asarray(cam[0], dtype=np.float32)))


def _peak_one(heat: np.ndarray) -> np.ndarray:
    """A heat map scaled so its peak is 1 (an all-zero map stays zero)."""
    top = float(heat.max())
    return heat / top if top > 0 else heat


def occlusion_map(model, pixels: np.ndarray, target: int | Sequence[int], patch: float = 0.2, stride: float = 0.05,
                  batch_size: int = 64, fill: str = "black") -> np.ndarray:
    """Occlusion sensitivity of ``target`` for one ``uint8`` model input ``pixels`` (S, S).

    A square of side ``patch`` x S moves over the slice in steps of ``stride``
    x S (starting half outside, so the edges are covered as often as the middle);
    each pixel gets the mean drop of the target's log-odds over the squares that
    cover it. Rises (hiding a place makes the class likelier) count as zero.
    ``target`` is a class index, or several (e.g. every tumour class: the
    log-odds of their summed probability). ``fill`` is what the square shows:
    ``"black"``, ``"blur"`` (the slice blurred at half the square's side) or
    ``"mean"`` (the head's mean grey).
    """
    size = pixels.shape[0]
    side, step = max(1, round(patch * size)), max(1, round(stride * size))
    places = [(y, x) for y in range(-side // 2, size - side // 2, step) for x in range(-side // 2, size - side // 2, step)]
    fills = _occlusion_fill(pixels, fill, side)
    covered = np.repeat(pixels[None, ..., None], len(places) + 1, axis=0)  # the first stays whole
    for i, (y, x) in enumerate(places, start=1):
        rows, cols = slice(max(0, y), y + side), slice(max(0, x), x + side)
        covered[i, rows, cols, 0] = fills[rows, cols]
    # Through the product's inference engine (ONNX Runtime on CPUs): 400 passes are the whole cost.
    classes = [target] if np.isscalar(target) else list(target)
    p = np.clip(predict_probabilities(model, covered, batch_size)[:, classes].sum(axis=1), 1e-7, 1 - 1e-7)
    log_odds = np.log(p) - np.log1p(-p)
    drops = log_odds[0] - log_odds[1:]
    heat, count = np.zeros((size, size)), np.zeros((size, size))
    for drop, (y, x) in zip(drops, places):
        heat[max(0, y):y + side, max(0, x):x + side] += drop
        count[max(0, y):y + side, max(0, x):x + side] += 1
    return np.maximum(heat / np.maximum(count, 1), 0).astype(np.float32)


OCCLUSION_FILLS = ("black", "blur", "mean")


def _occlusion_fill(pixels: np.ndarray, fill: str, side: int) -> np.ndarray:
    """What an occluding square shows at each place (S, S) ``uint8``."""
    if fill == "black":
        return np.zeros_like(pixels)
    if fill == "blur":
        return cv2.GaussianBlur(pixels, (0, 0), side / 2)
    if fill == "mean":
        head = pixels > 20  # brighter than the dark background around the head
        return np.full_like(pixels, int(round(float(pixels[head].mean()))) if head.any() else 0)
    raise ValueError(f"unknown occlusion fill {fill!r}; choose from {', '.join(OCCLUSION_FILLS)}")


def overlay_heatmap(grey: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4) -> np.ndarray:
    """Lay a heat map (any size, values in [0, 1]) over a greyscale slice; returns RGB ``uint8``."""
    grey = grey[..., 0] if grey.ndim == 3 else grey
    height, width = grey.shape
    resized = cv2.resize(heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(np.clip(resized, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    base = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    blended = (1 - opacity) * base + opacity * colour.astype(np.float32)
    return np.clip(blended, 0, 255).astype(np.uint8)

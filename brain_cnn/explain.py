"""Where the network looked: class activation maps from tf-keras-vis, and overlays.

Three methods, each a small :class:`ExplanationMethod` naming its tf-keras-vis
class and call options:

* Grad-CAM (Selvaraju et al., 2017, arXiv:1610.02391), the default;
* Grad-CAM++ (Chattopadhyay et al., 2018, arXiv:1710.11063);
* Score-CAM (Wang et al., 2020, arXiv:1910.01279), gradient-free.

All explain the last convolution block (:data:`brain_cnn.model.LAST_CONV_LAYER`)
with the softmax replaced by a linear output, as the papers prescribe.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .model import LAST_CONV_LAYER

__all__ = ["METHODS", "DEFAULT_METHOD", "Explainer", "overlay_heatmap"]


@dataclass(frozen=True)
class ExplanationMethod:
    """One explanation method: its tf-keras-vis class and extra call arguments."""

    name: str
    module: str
    class_name: str
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
    )
}
DEFAULT_METHOD = "Grad-CAM"


class Explainer:
    """Class activation maps for one loaded model; visualizers are built once per method."""

    def __init__(self, model, layer: str = LAST_CONV_LAYER):
        self.model = model
        self.layer = layer
        self._visualizers: dict[str, Any] = {}

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
        cam = np.nan_to_num(np.asarray(cam[0], dtype=np.float32))
        top = float(cam.max())
        return cam / top if top > 0 else cam


def overlay_heatmap(grey: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4) -> np.ndarray:
    """Lay a heat map (any size, values in [0, 1]) over a greyscale slice; returns RGB ``uint8``."""
    grey = grey[..., 0] if grey.ndim == 3 else grey
    height, width = grey.shape
    resized = cv2.resize(heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(np.clip(resized, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    base = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    blended = (1 - opacity) * base + opacity * colour.astype(np.float32)
    return np.clip(blended, 0, 255).astype(np.uint8)

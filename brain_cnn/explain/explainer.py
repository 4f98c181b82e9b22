"""Where the network looked: one :class:`Explainer` per model over the app's four methods.

Each method is a small :class:`~brain_cnn.explain.base.ExplanationMethod` in
the module of its family: Grad-CAM, Grad-CAM++ and Score-CAM in
:mod:`brain_cnn.explain.cam`, occlusion in :mod:`brain_cnn.explain.occlusion`.
Occlusion is the default: of the four it points at the tumour most often
(``brain-cnn explain-eval`` on the 161 boxed test images; see docs/experiments.md).

The three class activation maps explain the last convolution block
(:data:`brain_cnn.model.network.LAST_CONV_LAYER`) with the softmax replaced by a
linear output, as the papers prescribe. An ensemble's map is the mean of its
members' maps; its occlusion map asks the ensemble itself. A tumour-map network
(:mod:`brain_cnn.model.tumour_maps`) is explained through its class output
alone; that output is a product of the map's peak and the type head's
softmax (:class:`~brain_cnn.model.layers.CallFromMap`), with no single softmax
to make linear, so its class activation maps explain the probability itself.

Grad-CAM costs one forward and one backward pass (traced once as a graph), so
the app draws it with the call (:data:`QUICK_METHOD`). Score-CAM and occlusion
cost tens to hundreds of passes (``costly``): the app computes them only when
asked, one at a time in the background (:class:`~brain_cnn.explain.queue.ExplanationQueue`), with
progress.
"""

from __future__ import annotations

import contextlib
import io
import threading
from typing import Any

import numpy as np

from brain_cnn.explain.base import Progress, peak_one
from brain_cnn.explain.cam import GRAD_CAM, GRAD_CAM_PLUS_PLUS, SCORE_CAM, gradcam_graph
from brain_cnn.explain.occlusion import OCCLUSION_METHOD, occlusion_map
from brain_cnn.model.engines import INFERENCE
from brain_cnn.model.ensemble import members_of
from brain_cnn.model.network import LAST_CONV_LAYER
from brain_cnn.model.tumour_maps import class_output

__all__ = ["METHODS", "DEFAULT_METHOD", "QUICK_METHOD", "OCCLUSION", "Explainer"]


METHODS = {m.name: m for m in (GRAD_CAM, GRAD_CAM_PLUS_PLUS, SCORE_CAM, OCCLUSION_METHOD)}
OCCLUSION = "Occlusion"
DEFAULT_METHOD = OCCLUSION  # of the four, the one that points at the tumour most often
QUICK_METHOD = "Grad-CAM"  # one forward and one backward pass: shown with the call


def _class_model(model):
    """The network with its class probabilities as its only output.

    tf-keras-vis asks for one score per output, and a tumour-map network also
    outputs its map (a look-dependent combined model's first classifier, its
    pooled features); neither is what these methods explain.
    """
    if not isinstance(model.output, dict):
        return model
    import keras

    return keras.Model(model.inputs, class_output(model), name=f"{model.name}_classes")


class Explainer:
    """Class activation maps for one loaded model; visualizers are built once per method."""

    def __init__(self, model, layer: str = LAST_CONV_LAYER):
        self.model = model
        self.layer = layer
        self._visualizers: dict[str, Any] = {}
        self._gradcam_graph = None
        self._building = threading.Lock()  # sessions share one explainer; each visualizer is built once
        self.members = [Explainer(member, layer) for member in members_of(model)]

    def _visualizer(self, method: str):
        if method not in METHODS:
            raise ValueError(f"unknown explanation method {method!r}; choose from {', '.join(METHODS)}")
        with self._building:
            if method not in self._visualizers:
                from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

                self._visualizers[method] = METHODS[method].visualizer_class()(
                    _class_model(self.model), model_modifier=ReplaceToLinear(), clone=True
                )
        return self._visualizers[method]

    def warm_up(self) -> None:
        """Build and trace what :data:`QUICK_METHOD` needs, so the first scan's map is as fast as the rest."""
        size = tuple(self.model.input_shape[1:])
        self.heatmap(np.zeros(size, np.uint8), 0, QUICK_METHOD)

    def heatmap(self, image: np.ndarray, class_index: int, method: str = DEFAULT_METHOD,
                progress: Progress | None = None) -> np.ndarray:
        """Heat map in [0, 1], shape (S, S), for a model input ``image`` of shape (S, S, 1).

        ``progress`` is told the fraction done as a costly method goes.

        Example:
            >>> Explainer(model).heatmap(load_scan("scan.jpg", 160), 0)  # doctest: +SKIP
        """
        if method == OCCLUSION:
            heat = occlusion_map(self.model, image[..., 0], int(class_index), progress=progress,
                                 **METHODS[method].options)
            return peak_one(heat)
        if self.members:  # an ensemble: the mean of its members' maps, each of its own last block
            maps = []
            for member in self.members:
                maps.append(member.heatmap(image, class_index, method))
                if progress is not None:
                    progress(len(maps) / len(self.members))
            return peak_one(np.mean(maps, axis=0))
        visualizer = self._visualizer(method)
        with INFERENCE.slot():  # a map is passes through the network too: it waits its turn like a call
            if method == QUICK_METHOD:
                return peak_one(np.nan_to_num(self._gradcam(image, int(class_index))))
            return self._tf_keras_vis(visualizer, method, image, class_index)

    def _gradcam(self, image: np.ndarray, class_index: int) -> np.ndarray:
        """Grad-CAM as tf-keras-vis computes it (same linear clone, weights, ReLU, zoom, normalisation),
        traced once as a graph: eager execution cost ten times the arithmetic on a small CPU."""
        import tensorflow as tf
        from scipy.ndimage import zoom
        from tf_keras_vis.utils import normalize

        with self._building:
            if self._gradcam_graph is None:
                self._gradcam_graph = gradcam_graph(self._visualizers[QUICK_METHOD].model, self.layer)
        cam = self._gradcam_graph(tf.constant(image[None], tf.float32), tf.constant(class_index, tf.int32)).numpy()
        cam = zoom(cam, (1.0, image.shape[0] / cam.shape[1], image.shape[1] / cam.shape[2]), order=1)
        return normalize(cam)[0].astype(np.float32)

    def _tf_keras_vis(self, visualizer, method: str, image: np.ndarray, class_index: int) -> np.ndarray:
        from tf_keras_vis.utils.scores import CategoricalScore

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
        return peak_one(np.nan_to_num(np.asarray(cam[0], dtype=np.float32)))



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
(:data:`brain_cnn.model.network.LAST_CONV_LAYER`) with the softmax replaced by a
linear output, as the papers prescribe. An ensemble's map is the mean of its
members' maps; its occlusion map asks the ensemble itself.

Grad-CAM costs one forward and one backward pass (traced once as a graph), so
the app draws it with the call (:data:`QUICK_METHOD`). Score-CAM and occlusion
cost tens to hundreds of passes (``costly``): the app computes them only when
asked, one at a time in the background (:class:`ExplanationQueue`), with
progress.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import cv2
import numpy as np

from brain_cnn.model.engines import INFERENCE, background
from brain_cnn.model.network import LAST_CONV_LAYER
from brain_cnn.inference.predictor import predict_probabilities

__all__ = ["METHODS", "DEFAULT_METHOD", "QUICK_METHOD", "OCCLUSION", "OCCLUSION_FILLS", "Explainer",
           "ExplanationJob", "ExplanationQueue", "occlusion_map", "overlay_heatmap"]

Progress = Callable[[float], None]  # told the fraction done, 0 to 1


@dataclass(frozen=True)
class ExplanationMethod:
    """One explanation method: its tf-keras-vis class and extra call arguments."""

    name: str
    module: str | None  # the tf-keras-vis module and class; None for occlusion, computed here
    class_name: str | None
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    costly: bool = False  # many forward passes: computed on request, in the background

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
                          description="gradient-free: masks the input with each feature map and scores it",
                          costly=True),
        ExplanationMethod("Occlusion", None, None, {"patch": 0.2, "stride": 0.05},
                          description="hides each place under a black square (a fifth of the side, moved by a "
                                      "twentieth) and shows how much the class's log-odds drop; asks the network "
                                      "itself, about 400 passes", costly=True),
    )
}
OCCLUSION = "Occlusion"
DEFAULT_METHOD = OCCLUSION  # of the four, the one that points at the tumour most often
QUICK_METHOD = "Grad-CAM"  # one forward and one backward pass: shown with the call


class Explainer:
    """Class activation maps for one loaded model; visualizers are built once per method."""

    def __init__(self, model, layer: str = LAST_CONV_LAYER):
        from brain_cnn.model.ensemble import members_of

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
                    self.model, model_modifier=ReplaceToLinear(), clone=True
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
            return _peak_one(heat)
        if self.members:  # an ensemble: the mean of its members' maps, each of its own last block
            maps = []
            for member in self.members:
                maps.append(member.heatmap(image, class_index, method))
                if progress is not None:
                    progress(len(maps) / len(self.members))
            return _peak_one(np.mean(maps, axis=0))
        visualizer = self._visualizer(method)
        with INFERENCE.slot():  # a map is passes through the network too: it waits its turn like a call
            if method == QUICK_METHOD:
                return _peak_one(np.nan_to_num(self._gradcam(image, int(class_index))))
            return self._tf_keras_vis(visualizer, method, image, class_index)

    def _gradcam(self, image: np.ndarray, class_index: int) -> np.ndarray:
        """Grad-CAM as tf-keras-vis computes it (same linear clone, weights, ReLU, zoom, normalisation),
        traced once as a graph: eager execution cost ten times the arithmetic on a small CPU."""
        import tensorflow as tf
        from scipy.ndimage import zoom
        from tf_keras_vis.utils import normalize

        with self._building:
            if self._gradcam_graph is None:
                self._gradcam_graph = _gradcam_graph(self._visualizers[QUICK_METHOD].model, self.layer)
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
        return _peak_one(np.nan_to_num(np.asarray(cam[0], dtype=np.float32)))


def _gradcam_graph(linear_model, layer: str):
    """A traced function (image batch, class) -> Grad-CAM at the resolution of ``layer``, before zooming."""
    import keras
    import tensorflow as tf

    both = keras.Model(linear_model.inputs, [linear_model.outputs[0], linear_model.get_layer(layer).output])
    spec = [tf.TensorSpec((None, *linear_model.input_shape[1:]), tf.float32), tf.TensorSpec((), tf.int32)]

    @tf.function(input_signature=spec)
    def gradcam(images, class_index):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(images)
            scores, maps = both(images, training=False)
            score = scores[:, class_index]
        weights = tf.reduce_mean(tape.gradient(score, maps), axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(maps * weights, axis=-1))

    return gradcam


def _peak_one(heat: np.ndarray) -> np.ndarray:
    """A heat map scaled so its peak is 1 (an all-zero map stays zero)."""
    top = float(heat.max())
    return heat / top if top > 0 else heat


def occlusion_map(model, pixels: np.ndarray, target: int | Sequence[int], patch: float = 0.2, stride: float = 0.05,
                  batch_size: int = 16, fill: str = "black", progress: Progress | None = None) -> np.ndarray:
    """Occlusion sensitivity of ``target`` for one ``uint8`` model input ``pixels`` (S, S).

    A square of side ``patch`` x S moves over the slice in steps of ``stride``
    x S (starting half outside, so the edges are covered as often as the middle);
    each pixel gets the mean drop of the target's log-odds over the squares that
    cover it. Rises (hiding a place makes the class likelier) count as zero.
    ``target`` is a class index, or several (e.g. every tumour class: the
    log-odds of their summed probability). ``fill`` is what the square shows:
    ``"black"``, ``"blur"`` (the slice blurred at half the square's side) or
    ``"mean"`` (the head's mean grey). ``progress`` is told the fraction of
    passes done after each batch. Small batches: a call waiting for the network
    waits for one batch, not for the whole map.
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


class ExplanationJob:
    """One heat map being computed in the background: its progress, then its result."""

    def __init__(self, key: Hashable):
        self.key = key
        self.progress = 0.0
        self.future: Future = Future()

    @property
    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout: float | None = None) -> np.ndarray:
        """The heat map; re-raises what went wrong computing it."""
        return self.future.result(timeout)

    def report(self, fraction: float) -> None:
        self.progress = float(min(1.0, max(self.progress, fraction)))


class ExplanationQueue:
    """Costly heat maps, computed ``workers`` at a time in the background and each once.

    Sessions asking for the same map (same ``key``) share one job; the last
    ``keep`` finished maps are kept. The work runs at explanation priority
    (:func:`brain_cnn.model.engines.background`), so calls go through the network first.

    Example:
        >>> queue = ExplanationQueue()
        >>> job = queue.request(("scan-sha", 0, "Occlusion"), lambda progress: explainer.heatmap(
        ...     image, 0, "Occlusion", progress))  # doctest: +SKIP
        >>> job.result()  # doctest: +SKIP
    """

    def __init__(self, workers: int = 1, keep: int = 256):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="brain-cnn-explain")
        self._jobs: OrderedDict[Hashable, ExplanationJob] = OrderedDict()
        self._lock = threading.Lock()
        self.keep = keep

    def get(self, key: Hashable) -> ExplanationJob | None:
        """The job for ``key`` if one was requested and has not failed or been dropped."""
        with self._lock:
            job = self._jobs.get(key)
            return None if job is None or (job.done and job.future.exception() is not None) else job

    def request(self, key: Hashable, compute: Callable[[Progress], np.ndarray]) -> ExplanationJob:
        """The job for ``key``: the one already queued, running or done, else a new one.

        ``compute`` gets a progress callback and returns the heat map. A job that
        failed is tried again.
        """
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not (job.done and job.future.exception() is not None):
                if job.done:  # the unfinished stay in the order they came, for ahead_of
                    self._jobs.move_to_end(key)
                return job
            job = ExplanationJob(key)
            self._jobs[key] = job
            finished = [k for k, j in self._jobs.items() if j.done]
            for old in finished[: max(0, len(finished) - self.keep)]:
                del self._jobs[old]
        self._pool.submit(self._run, job, compute)
        return job

    def ahead_of(self, job: ExplanationJob) -> int:
        """Jobs requested before ``job`` and not finished: what it waits for."""
        with self._lock:
            ahead = 0
            for other in self._jobs.values():
                if other is job:
                    return ahead
                ahead += not other.done
            return 0

    @staticmethod
    def _run(job: ExplanationJob, compute: Callable[[Progress], np.ndarray]) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            with background():
                heat = compute(job.report)
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits for the map
            job.future.set_exception(error)
        else:
            job.report(1.0)
            job.future.set_result(heat)

"""Inference engines: run a loaded model's forward pass as fast as the machine allows.

The forward pass returns the pooled features the out-of-distribution gate needs
and the softmax probabilities, in one call. Two engines:

* ``onnxruntime`` (the default on a CPU): the Keras graph converted in memory
  with tf2onnx when the model is loaded (under a second), run by ONNX Runtime;
* ``tensorflow`` (the default with a GPU, where TensorFlow places the work on
  it): the Keras graph traced once as a ``tf.function``; in float16 when the
  model card allows it (a model trained with mixed precision).

Measured with ``python benchmarks/engines.py`` on the bundled model, 2-core CPU,
milliseconds for 1 / 2 / 32 / 128 slices (2 is one slice and its mirror image):
ONNX Runtime 2.3 / 3.6 / 56 / 221, TensorFlow graph 4.0 / 7.0 / 67 / 270, the
TensorFlow graph XLA-compiled 3.2 / 6.2 / 79 / 333. XLA gains less than ONNX
Runtime at small batches and loses at large ones, so it is not used.

``BRAIN_CNN_ENGINE=tensorflow`` (or ``onnxruntime``) forces one. If the
conversion fails, the TensorFlow graph is used and a warning says why.

Every forward pass holds a slot of :data:`INFERENCE`, one process-wide
:class:`InferenceGate`: an app serving several people runs one pass at a time
on a CPU (each pass already uses every core) and queues the rest, first come
first served, with a call someone is waiting for ahead of explanation work
(:func:`background`). ``BRAIN_CNN_INFERENCE_SLOTS`` sets the number of slots.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import heapq
import itertools
import os
import threading
import warnings
from typing import Callable, Iterator

import numpy as np

from brain_cnn.model.combined import combined_features_model, is_combined, map_member
from brain_cnn.model.ensemble import members_of
from brain_cnn.model.features import pooled_features
from brain_cnn.model.tumour_maps import class_output, map_output

__all__ = ["ENGINES", "ENGINE_ENV", "SLOTS_ENV", "INFERENCE", "InferenceGate", "background", "engine_name", "forward",
           "features_model", "gate_split", "limit_tensorflow_threads", "mixed_precision_copy", "usable_cpus"]

ENGINES = ("tensorflow", "onnxruntime")
ENGINE_ENV = "BRAIN_CNN_ENGINE"
SLOTS_ENV = "BRAIN_CNN_INFERENCE_SLOTS"
Forward = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


@functools.lru_cache(maxsize=1)
def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def usable_cpus() -> int:
    """CPUs this process may run on (a container's limit, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class InferenceGate:
    """At most ``slots`` forward passes at once in this process; the others wait their turn.

    Turns go by priority (lower first), then by arrival, so a thread that just
    finished a pass cannot take the next slot ahead of those already waiting.
    A thread that holds a slot may enter again (a pass inside a pass).
    """
    def __init__(self, slots: int = 1):
        self.slots = max(1, int(slots))
        self._condition = threading.Condition()
        self._waiting: list[tuple[int, int]] = []
        self._tickets = itertools.count()
        self._running = 0
        self._held = threading.local()

    @property
    def waiting(self) -> int:
        """Passes queued for a slot now."""
        return len(self._waiting)

    @contextlib.contextmanager
    def slot(self, priority: int | None = None) -> Iterator[None]:
        depth = getattr(self._held, "depth", 0)
        if depth:
            self._held.depth = depth + 1
            try:
                yield
            finally:
                self._held.depth = depth
            return
        ticket = (_PRIORITY.get() if priority is None else priority, next(self._tickets))
        with self._condition:
            heapq.heappush(self._waiting, ticket)
            self._condition.wait_for(lambda: self._running < self.slots and self._waiting[0] == ticket)
            heapq.heappop(self._waiting)
            self._running += 1
            self._condition.notify_all()  # with several slots, the next in line may start too
        self._held.depth = 1
        try:
            yield
        finally:
            self._held.depth = 0
            with self._condition:
                self._running -= 1
                self._condition.notify_all()


CALL, EXPLANATION = 0, 1  # priorities: someone waits for a call; an explanation can wait a pass
_PRIORITY = contextvars.ContextVar("brain_cnn_inference_priority", default=CALL)


@contextlib.contextmanager
def background() -> Iterator[None]:
    """Forward passes in this block give way to calls waiting for a slot."""
    token = _PRIORITY.set(EXPLANATION)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


def _default_slots() -> int:
    try:
        return max(1, int(os.environ.get(SLOTS_ENV, "")))
    except ValueError:
        return 1


INFERENCE = InferenceGate(_default_slots())


def limit_tensorflow_threads() -> None:
    """One TensorFlow op at a time, each on every usable core, so concurrent callers queue
    instead of oversubscribing the CPU. Only works before TensorFlow's runtime starts; later, no-op."""
    import tensorflow as tf

    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(usable_cpus())
    except RuntimeError:  # the runtime already started: its settings stay
        pass


def mixed_precision_copy(model, policy: str = "mixed_float16"):
    """The same network computing in half precision (float32 weights and softmax), for a GPU."""
    import keras

    def clone(layer):
        config = layer.get_config()
        if layer.name != "probabilities" and "dtype" in config:
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def engine_name() -> str:
    """The engine to use here: ``$BRAIN_CNN_ENGINE`` if set, else ONNX Runtime on a CPU and TensorFlow on a GPU."""
    chosen = os.environ.get(ENGINE_ENV, "").strip().lower()
    if chosen in ENGINES:
        return chosen
    if _has_gpu():
        return "tensorflow"
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError:
        return "tensorflow"
    return "onnxruntime"


def features_model(model):
    """A Keras model whose outputs are the gate's pooled features, the probabilities and, for a network
    with one (:mod:`brain_cnn.model.tumour_maps`), the tumour map."""
    import keras
    from keras import layers

    if is_combined(model):  # classifiers and a tumour-map network: the gate on the map network's features
        return combined_features_model(model, features_model)
    members = members_of(model)
    if members:  # an ensemble: the mean of the members' probabilities, the gate on the first member's features
        image = keras.Input(shape=tuple(model.input_shape[1:]), name="image")
        features, first = features_model(members[0])(image)
        # Not all members' features side by side: the gate's covariance grows with the square of
        # their length (6.5 MB for two members, against 1.6 MB for one).
        return keras.Model(image, [features, layers.Average()([first] + [m(image) for m in members[1:]])])
    probabilities, tumour_map = class_output(model), map_output(model)
    features = pooled_features(model)
    return keras.Model(model.inputs, [features, probabilities] + ([tumour_map] if tumour_map is not None else []))


def gate_split(model) -> int:
    """How many of a combined model's gate features are its map network's; the rest are the first classifier's."""
    return int(features_model(map_member(model)).outputs[0].shape[-1])


def _tensorflow(both, input_shape) -> Forward:
    import tensorflow as tf

    # Calling a Keras model eagerly costs ~10 ms of Python overhead per call on a
    # small CPU; a tf.function with a fixed signature is traced once.
    signature = [tf.TensorSpec((None, *input_shape[1:]), tf.float32)]
    graph = tf.function(lambda x: both(x, training=False), input_signature=signature)
    return lambda x: tuple(t.numpy() for t in graph(x))


def _onnxruntime(both, input_shape) -> Forward:
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *input_shape[1:]), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(both, input_signature=spec, opset=17)
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1  # one graph at a time; intra-op threads use every core
    options.intra_op_num_threads = usable_cpus()
    # Idle threads sleep instead of spinning: spinning kept the cores busy for the
    # Grad-CAM pass and the page that come right after a call.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: tuple(session.run(None, {name: x}))


def forward(model, engine: str | None = None, mixed_precision: bool = False) -> Forward:
    """The forward pass of ``model`` on the chosen engine, built once per model and engine.

    ``mixed_precision`` (the card allows it: the model was trained that way)
    runs the TensorFlow engine in float16 on a GPU.
    """
    engine = engine or engine_name()
    cache = model.__dict__.setdefault("_brain_cnn_engines", {})
    with _BUILDING:
        if engine not in cache:
            cache[engine] = _gated(_build(model, cache, engine, mixed_precision))
    return cache[engine]


_BUILDING = threading.Lock()  # two sessions asking for the same model's engine build it once


def _gated(run: Forward) -> Forward:
    def gated(x: np.ndarray):
        with INFERENCE.slot():
            return run(x)

    gated.ungated = run
    return gated


def _build(model, cache: dict, engine: str, mixed_precision: bool) -> Forward:
    if "model" not in cache:
        half = mixed_precision and _has_gpu()  # on a GPU the engine is TensorFlow unless forced
        cache["model"] = features_model(mixed_precision_copy(model) if half else model)
    both = cache["model"]
    if engine == "onnxruntime":
        try:
            return _onnxruntime(both, model.input_shape)
        except Exception as error:  # noqa: BLE001 - any conversion failure falls back, loudly
            warnings.warn(f"ONNX Runtime engine unavailable ({error}); using TensorFlow", stacklevel=4)
            fallback = cache.get("tensorflow")
            if fallback is not None:
                return fallback.ungated
    return _tensorflow(both, model.input_shape)

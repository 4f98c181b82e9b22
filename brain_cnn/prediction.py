"""Run a trained model on files: the one inference path of the CLI and the app."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .calibration import apply_temperature
from .dataset import list_images
from .errors import UnreadableImageError
from .model_folder import LoadedModel, load_model
from .preprocess import load_scan, load_slices

__all__ = ["Predictor", "expand_inputs", "predict_probabilities"]


def _compiled_forward(model):
    """The model's inference pass as one traced graph, built once per model.

    Calling a Keras model eagerly costs ~10 ms of Python overhead per call on
    a small CPU; a ``tf.function`` with a fixed signature is traced once.
    """
    forward = getattr(model, "_brain_cnn_forward", None)
    if forward is None:
        import tensorflow as tf

        signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)]
        forward = tf.function(lambda x: model(x, training=False), input_signature=signature)
        model._brain_cnn_forward = forward
    return forward


def predict_probabilities(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities (N, K) for ``uint8`` inputs (N, S, S, 1), in batches."""
    if len(images) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float64)
    forward = _compiled_forward(model)
    outputs = [
        forward(images[i : i + batch_size].astype(np.float32)).numpy()
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs).astype(np.float64)


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files to predict: each file as given, each folder's images recursively."""
    files: list[Path] = []
    for path in map(Path, paths):
        files.extend(list_images(path) if path.is_dir() else [path])
    return files


class Predictor:
    """A loaded model folder, ready to classify files or bytes.

    Example:
        >>> predictor = Predictor("models/brain-tumor-mri")  # doctest: +SKIP
        >>> predictor.predict_bytes(open("scan.jpg", "rb").read())["label"]  # doctest: +SKIP
        'glioma'
    """

    def __init__(self, model_folder: str | Path | LoadedModel):
        self.loaded = model_folder if isinstance(model_folder, LoadedModel) else load_model(model_folder)
        self.card = self.loaded.card
        self.model = self.loaded.model
        self.classes = list(self.card.classes)
        self.image_size = self.card.image_size

    def _result(self, name: str, probs: np.ndarray) -> dict[str, Any]:
        return {
            "file": name,
            "label": self.classes[int(np.argmax(probs))],
            "probabilities": {c: round(float(p), 6) for c, p in zip(self.classes, probs)},
        }

    def predict_inputs(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities (the card's temperature applied) for prepared inputs (N, S, S, 1)."""
        return apply_temperature(predict_probabilities(self.model, images, batch_size), self.card.temperature)

    def predict_bytes(self, data: bytes, name: str = "upload") -> dict[str, Any]:
        """Classify one file's bytes.

        Raises:
            UnreadableImageError: the bytes are not a readable image.
        """
        image = load_scan(data, self.image_size, name=name)
        return self._result(name, self.predict_inputs(image[None])[0])

    def predict_files(self, files: list[str | Path], batch_size: int = 32) -> Iterator[dict[str, Any]]:
        """Classify files in order, ``batch_size`` files at a time, so memory stays bounded.

        Yields one dict per slice: ``{"file", "label", "probabilities"}`` (plus
        ``"slice"`` and ``"slice_index"`` for volumes: multi-frame DICOM, NIfTI)
        or ``{"file", "error"}`` for a file that cannot be read.
        """

        def decode(path):
            try:
                inputs, scan = load_slices(path, self.image_size)
                return inputs, scan, None
            except UnreadableImageError as error:
                return None, None, str(error)

        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
            for start in range(0, len(files), batch_size):
                chunk = files[start : start + batch_size]
                decoded = list(pool.map(decode, chunk))
                good = [inputs for inputs, _, _ in decoded if inputs is not None]
                probs = self.predict_inputs(np.concatenate(good), batch_size) if good else None
                offset = 0
                for path, (inputs, scan, error) in zip(chunk, decoded):
                    if inputs is None:
                        yield {"file": str(path), "error": error}
                        continue
                    for i in range(len(inputs)):
                        result = self._result(str(path), probs[offset + i])
                        if scan.is_volume:
                            result.update(slice=scan.slice_labels[i], slice_index=i)
                        yield result
                    offset += len(inputs)

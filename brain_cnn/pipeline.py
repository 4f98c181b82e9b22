"""Input pipeline: decode every image once, keep it in memory, augment on the fly.

Decoding goes through :func:`brain_cnn.preprocess.load_scan`, the same path
the CLI and the app use. The decoded ``uint8`` tensors (7,000 slices at
160 px are ~180 MB) are cached, so each epoch costs only augmentation and the
model itself.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import Sample
from .errors import DatasetError, UnreadableImageError
from .preprocess import DECODE_WORKERS, load_scan

__all__ = ["DecodedSplit", "decode_samples", "make_dataset", "augmenter"]


@dataclass
class DecodedSplit:
    """Images of one split as model inputs, with the files they came from."""

    images: np.ndarray  # (N, S, S, 1) uint8
    labels: np.ndarray  # (N,) int, index into the class list
    files: list[str]  # relative paths, aligned with images
    unreadable: list[tuple[str, str]]  # (path, reason) of files that were skipped


def decode_samples(
    samples: list[Sample], root: str | Path, classes: list[str], image_size: int, workers: int | None = None
) -> DecodedSplit:
    """Decode ``samples`` (paths relative to ``root``) in parallel; unreadable files are skipped and listed."""
    root = Path(root)
    index = {name: i for i, name in enumerate(classes)}
    unknown = Counter(s.label for s in samples if s.label not in index)
    if unknown:
        raise DatasetError(
            f"classes {sorted(unknown)} are not among the model's classes {classes}"
        )

    def one(sample: Sample):
        try:
            return load_scan(root / sample.path, image_size), None
        except UnreadableImageError as error:
            return None, str(error)

    # Pillow and OpenCV release the GIL while decoding and resizing.
    with ThreadPoolExecutor(max_workers=workers or DECODE_WORKERS) as pool:
        results = list(pool.map(one, samples))
    images, labels, files, unreadable = [], [], [], []
    for sample, (image, error) in zip(samples, results):
        if image is None:
            unreadable.append((sample.path, error))
            continue
        images.append(image)
        labels.append(index[sample.label])
        files.append(sample.path)
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size, 1), np.uint8)
    return DecodedSplit(stacked, np.asarray(labels, dtype=np.int32), files, unreadable)


def augmenter(seed: int):
    """Random flips, rotation, zoom, shift, brightness and contrast, on [0, 255] inputs."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.04, fill_mode="constant", seed=seed + 1),
            layers.RandomZoom((-0.12, 0.12), fill_mode="constant", seed=seed + 2),
            layers.RandomTranslation(0.06, 0.06, fill_mode="constant", seed=seed + 3),
            layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 4),
            layers.RandomContrast(0.2, value_range=(0, 255), seed=seed + 5),
        ],
        name="augment",
    )


def make_dataset(split: DecodedSplit, num_classes: int, batch_size: int, training: bool, seed: int = 0):
    """A ``tf.data.Dataset`` of (float32 images in [0, 255], one-hot labels)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((split.images, split.labels)).cache()
    if training:
        data = data.shuffle(len(split.labels), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size, drop_remainder=False)
    to_float = lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes))  # noqa: E731
    data = data.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        augment = augmenter(seed)
        data = data.map(
            lambda x, y: (tf.clip_by_value(augment(x, training=True), 0.0, 255.0), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return data.prefetch(tf.data.AUTOTUNE)

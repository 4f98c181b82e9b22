"""Input pipeline: decode every image once, keep it in memory, augment on the fly.

Decoding goes through :func:`brain_cnn.scan.preprocess.load_scan`, the same path
the CLI and the app use. The decoded ``uint8`` tensors (7,000 slices at
160 px are ~180 MB) are cached, so each epoch costs only augmentation and the
model itself.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brain_cnn.data.classes import is_no_tumour
from brain_cnn.data.dataset import Sample
from brain_cnn.data.masks import UNKNOWN, mask_status, prepare_pair, read_mask
from brain_cnn.errors import DatasetError, UnreadableImageError
from brain_cnn.scan.preprocess import DECODE_WORKERS, load_scan, load_slices

__all__ = ["DecodedSplit", "decode_samples", "make_dataset", "augmenter", "AUGMENTATIONS", "scanner_augment",
           "intensity_remap", "SOFT_TUMOUR"]

AUGMENTATIONS = ("standard", "scanner", "sequence")
# Label of an image known to show a tumour of a type the model has no class for
# (e.g. a "yes" of a yes/no set): its target spreads evenly over the tumour classes.
SOFT_TUMOUR = "tumour"


@dataclass
class DecodedSplit:
    """Images of one split as model inputs, with the files they came from (and their tumour masks, when asked)."""

    images: np.ndarray  # (N, S, S, 1) uint8
    labels: np.ndarray  # (N,) int, index into the class list; -1 for a tumour of unstated type
    files: list[str]  # relative paths, aligned with images
    unreadable: list[tuple[str, str]]  # (path, reason) of files that were skipped
    # With a masks folder (brain_cnn.data.masks): targets (N, S, S, 1) uint8 0/255 through the same head crop as
    # the images (zeros where there is no mask), each image's mask status (MASK, EMPTY, UNKNOWN), and the
    # (path, reason) of mask files that could not be read (their images count as UNKNOWN).
    masks: np.ndarray | None = None
    mask_status: np.ndarray | None = None
    unreadable_masks: list[tuple[str, str]] = field(default_factory=list)


def decode_samples(
    samples: list[Sample], root: str | Path, classes: list[str], image_size: int, workers: int | None = None,
    masks: str | Path | None = None,
) -> DecodedSplit:
    """Decode ``samples`` (paths relative to ``root``) in parallel; unreadable files are skipped and listed.

    With ``masks`` (a ``<data set>-masks/`` folder, :func:`brain_cnn.data.masks.mask_folder`) each image's tumour
    mask is found and brought to model-input coordinates with the image's own head box
    (:func:`brain_cnn.data.masks.prepare_pair`), in the same pass.
    """
    root = Path(root)
    index = {name: i for i, name in enumerate(classes)}
    index[SOFT_TUMOUR] = index.get(SOFT_TUMOUR, -1)
    unknown = Counter(s.label for s in samples if s.label not in index)
    if unknown:
        raise DatasetError(
            f"classes {sorted(unknown)} are not among the model's classes {classes}"
        )

    def one(sample: Sample):
        try:
            if masks is None:
                return load_scan(root / sample.path, image_size), None, None
            return *_with_mask(root, sample, Path(masks), image_size), None
        except UnreadableImageError as error:
            return None, None, str(error)

    # Pillow and OpenCV release the GIL while decoding and resizing.
    with ThreadPoolExecutor(max_workers=workers or DECODE_WORKERS) as pool:
        results = list(pool.map(one, samples))
    images, labels, files, unreadable = [], [], [], []
    targets, statuses, unreadable_masks = [], [], []
    for sample, (image, mask, error) in zip(samples, results):
        if image is None:
            unreadable.append((sample.path, error))
            continue
        images.append(image)
        labels.append(index[sample.label])
        files.append(sample.path)
        if masks is not None:
            status, target, mask_error = mask
            targets.append(target)
            statuses.append(status)
            if mask_error:
                unreadable_masks.append((sample.path, mask_error))
    empty = np.zeros((0, image_size, image_size, 1), np.uint8)
    stacked = np.stack(images) if images else empty
    decoded = DecodedSplit(stacked, np.asarray(labels, dtype=np.int32), files, unreadable)
    if masks is not None:
        decoded.masks = np.stack(targets) if targets else empty
        decoded.mask_status = np.asarray(statuses, dtype=object)
        decoded.unreadable_masks = unreadable_masks
    return decoded


def _with_mask(root: Path, sample: Sample, masks: Path, image_size: int):
    """(model input, (mask status, target, mask error)) of one sample (see :func:`decode_samples`)."""
    inputs, scan = load_slices(root / sample.path, image_size)
    if scan.is_volume:  # as load_scan refuses it
        raise UnreadableImageError(f"{scan.name}: a volume of {len(inputs)} slices, not a single slice")
    status, found = mask_status(masks, sample.path, is_no_tumour(sample.label))
    mask, error = None, None
    if found is not None:
        try:
            mask = read_mask(found)
        except UnreadableImageError as unreadable:
            status, error = UNKNOWN, str(unreadable)
    _, target = prepare_pair(scan.slices[0], mask, image_size)
    return inputs[0], (status, target, error)


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


def scanner_augment(x, seed: int):
    """Break scanner and sequence cues on a float batch in [0, 255]: per image a gamma curve
    and noise, per batch a resolution drop (which blurs), so that the network cannot tell sources apart by
    brightness curves, sharpness or noise texture instead of by anatomy."""
    import tensorflow as tf

    batch = tf.shape(x)[0]
    side = tf.shape(x)[1]
    uniform = lambda shape, low, high: tf.random.uniform(shape, low, high, seed=seed)  # noqa: E731
    gamma = tf.exp(uniform((batch, 1, 1, 1), tf.math.log(0.5), tf.math.log(2.0)))
    x = 255.0 * tf.pow(tf.clip_by_value(x / 255.0, 0.0, 1.0), gamma)
    # One resolution per batch (resize needs one shape): down to 50-100 %, back up.
    scale = uniform((), 0.5, 1.0)
    low = tf.cast(tf.cast(side, tf.float32) * scale, tf.int32)
    x = tf.image.resize(tf.image.resize(x, (low, low), antialias=True), (side, side))
    sigma = uniform((batch, 1, 1, 1), 0.0, 6.0)
    x = x + sigma * tf.random.normal(tf.shape(x), seed=seed + 1)
    return tf.clip_by_value(x, 0.0, 255.0)


def intensity_remap(x, seed: int, knots: int = 6, share: float = 0.5):
    """Map each of a ``share`` of the images of a float batch in [0, 255] through its own random intensity curve.

    The curve is piecewise linear through ``knots`` evenly spaced points whose
    heights are drawn at random, so it need not rise: what is dark may turn
    bright and the reverse, as between T1 and T2 (fluid dark in one, bright in
    the other). Black stays black so the head keeps its outline. A gamma curve
    (:func:`scanner_augment`) only bends a rising line, so it leaves which tissue
    is brighter, the cue that tells sequences apart, unchanged. The idea is that
    of random intensity transforms for domain generalisation (e.g. GIN,
    Ouyang et al., 2022, arXiv:2111.12525; SynthSeg, Billot et al., 2023).
    """
    import tensorflow as tf

    shape = tf.shape(x)
    batch = shape[0]
    heights = tf.random.uniform((batch, knots - 1), seed=seed + 7)
    heights = tf.concat([tf.zeros((batch, 1)), heights], axis=1)
    place = tf.reshape(tf.clip_by_value(x / 255.0, 0.0, 1.0), (batch, -1)) * (knots - 1)
    low = tf.clip_by_value(tf.floor(place), 0.0, knots - 2.0)
    weight = place - low
    low = tf.cast(low, tf.int32)
    below = tf.gather(heights, low, batch_dims=1)
    above = tf.gather(heights, low + 1, batch_dims=1)
    mapped = tf.reshape(255.0 * ((1.0 - weight) * below + weight * above), shape)
    # The rest keep their real contrast: the network is tested on real scans.
    remap = tf.random.uniform((batch, 1, 1, 1), seed=seed + 8) < share
    return tf.where(remap, mapped, x)


def targets(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Training targets (N, K): one-hot, or an even spread over the tumour classes for label -1."""

    out = np.zeros((len(labels), len(classes)), np.float32)
    known = labels >= 0
    out[np.flatnonzero(known), labels[known]] = 1.0
    tumour = np.array([not is_no_tumour(c) for c in classes], np.float32)
    out[~known] = tumour / max(tumour.sum(), 1.0)
    return out


def make_dataset(split: DecodedSplit, classes: list[str], batch_size: int, training: bool, seed: int = 0,
                 augmentation: str | None = "standard", weights: np.ndarray | None = None,
                 soft_targets: np.ndarray | None = None):
    """A ``tf.data.Dataset`` of (float32 images in [0, 255], targets[, sample weights]).

    ``augmentation`` is None (none), ``"standard"`` (geometry, brightness, contrast),
    ``"scanner"`` (standard plus :func:`scanner_augment`) or ``"sequence"``
    (scanner after :func:`intensity_remap`). ``soft_targets`` (N, K)
    replace the labels' one-hot targets (distillation, :mod:`brain_cnn.training.distillation`).
    """
    import tensorflow as tf

    if augmentation not in (None, *AUGMENTATIONS):
        raise ValueError(f"unknown augmentation {augmentation!r}; choose from {', '.join(AUGMENTATIONS)}")
    columns = (split.images, targets(split.labels, classes) if soft_targets is None else soft_targets)
    if weights is not None:
        columns += (np.asarray(weights, np.float32),)
    data = tf.data.Dataset.from_tensor_slices(columns).cache()
    if training:
        data = data.shuffle(len(split.labels), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size, drop_remainder=False)
    data = data.map(lambda x, *rest: (tf.cast(x, tf.float32), *rest), num_parallel_calls=tf.data.AUTOTUNE)
    if training and augmentation:
        augment = augmenter(seed)

        def apply(x, *rest):
            x = tf.clip_by_value(augment(x, training=True), 0.0, 255.0)
            if augmentation == "sequence":
                x = intensity_remap(x, seed)
            if augmentation in ("scanner", "sequence"):
                x = scanner_augment(x, seed)
            return (x, *rest)

        data = data.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)

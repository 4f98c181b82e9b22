"""Training the tumour-map network (:mod:`brain_cnn.model.tumour_maps`) on data chosen against the shortcut.

The training data: the 4-class training images with their masks, the LGG
set's training patients in T1, FLAIR and T1 with contrast (so no source alone
shows the network a class), and the 44-class training split; with the
appearance augmentation of :mod:`brain_cnn.data.pipeline` (random intensity
curves, scanner effects) on top of a geometric one shared by image and mask.

``python -m brain_cnn.training.tumour_maps --out runs/tumour-maps`` trains it;
an interrupted run resumes in the same folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from brain_cnn.data.carves import CALIBRATION, RECORD_FILE
from brain_cnn.data.carves import SETS as CARVED_SETS
from brain_cnn.data.dataset import Sample, SplitManifest, discover
from brain_cnn.data.label_maps import IGNORE, LESION, NO_TUMOUR, bundled_label_map
from brain_cnn.data.leakage import grouped_split
from brain_cnn.data.masks import EMPTY, MASK, mask_folder, mask_status, prepare_pair, read_mask
from brain_cnn.data.painting import NAVIER_STOKES, brain_regions, clear_margin, moved_region, paint_out
from brain_cnn.data.pasting import INVERTED_SHARE, paste_tumour
from brain_cnn.data.pipeline import SOFT_TUMOUR, augmenter, intensity_remap, scanner_augment, targets
from brain_cnn.data.tumour_contrast import BANDS, bands
from brain_cnn.errors import BrainCnnError, DatasetError, UnreadableImageError
from brain_cnn.files import read_json
from brain_cnn.model.tumour_maps import (CLASSES, PROBABILITIES, TUMOUR_MAP, TYPE_FROM, build_segmenter,
                                         call_accuracy, call_loss, call_targets, tumour_map_loss, with_type_from)
from brain_cnn.scan.preprocess import DECODE_WORKERS, read_file
from brain_cnn.scan.read import read_scan
from brain_cnn.training.balance import sample_weights

__all__ = ["PairSample", "DecodedPairs", "training_samples", "decode_pairs", "mapped_pairs", "make_pair_dataset",
           "read_decoded", "counterfactuals", "painted_elsewhere", "paired_twins", "pasted_tumours", "draw_weights",
           "epoch_draws", "removal_validation", "shipping_epoch", "train_tumour_maps", "write_model_folder",
           "SOURCES_FILE"]

# Every split the run made, per data set (the model folder's split.json is the one `evaluate` reads).
SOURCES_FILE = RECORD_FILE
# Which training images the call teaches whether there is a tumour (through the map's peak): all of them, or all
# but the tumours with an expert mask ("except-masked"). On those the mask says where the tumour is, pixel by pixel,
# and the call's push to raise the peak would let the map fire on anything else that marks such a slice. Tumours
# without a mask still raise it (multiple-instance learning), and no-tumour images still lower it: without them the
# call only ever pushes the peak up, and the map fires on every slice (recipe 4's first try, docs/tumour-maps.md).
# :func:`~brain_cnn.model.tumour_maps.call_loss`.
PRESENCE = ("all", "except-masked")
# The sets a run may leave out (leave-one-source-out); the 4-class set holds the validation the rule's bar is on.
EXCLUDABLE = ("brain-tumor-lgg", "brain-tumor-44c")


@dataclass(frozen=True)
class PairSample:
    """One training image: where it is, its class (index into CLASSES, -1: a tumour of another type), its mask."""

    root: str
    path: str  # relative to root
    label: int
    status: str  # MASK, EMPTY or UNKNOWN
    mask: str | None
    source: str  # data set name


def mapped_pairs(root: Path, samples: list[Sample], source: str) -> list[PairSample]:
    """Samples of a data set mapped onto CLASSES by its bundled label map, with their mask status;
    lesions and ignored folders are left out."""
    mapping = bundled_label_map(root)
    masks = mask_folder(root)
    by_label = {label: mapping.target(label, CLASSES) for label in {s.label for s in samples}}
    out = []
    for sample in samples:
        target = by_label[sample.label]
        if target.kind in (IGNORE, LESION):
            continue
        label = CLASSES.index(target.model_class) if target.model_class else -1
        status, found = mask_status(masks, sample.path, target.kind == NO_TUMOUR)
        out.append(PairSample(str(root), sample.path, label, status, str(found) if found else None, source))
    return out


def _carved(carve: Path | None, name: str, made):
    """The split of data set ``name`` in the shared carve (``carve/<name>.json``, :mod:`brain_cnn.data.carves`),
    else ``made()``."""
    path = carve / f"{name}.json" if carve is not None else None
    return SplitManifest.load(path) if path is not None and path.is_file() else made()


def training_samples(data: str | Path, seed: int = 42, carve: str | Path | None = None,
                     exclude: tuple[str, ...] = ()) -> tuple[dict[str, list[PairSample]], dict]:
    """The training and validation images of the recipe, and a record of every split made (for ``split.json``).

    Held out, never trained or validated on: the 4-class official ``Testing``
    split, the LGG test patients, the 44-class test split (that of
    ``models/brain-tumor-44c/split.json`` when present, so figures compare with
    the shipped models') and the yes/no set. With ``carve`` (a folder of the
    shared carve, e.g. ``splits/``) each data set's splits are that carve's,
    and its calibration images are held out too (recorded, for conformal sets). ``exclude``: data sets of
    :data:`EXCLUDABLE` left out of training and validation altogether (their record keeps the held-out splits,
    with no training or validation images), to measure the recipe on a source it never saw.
    """
    if unknown := set(exclude) - set(EXCLUDABLE):
        raise DatasetError(f"cannot leave out {', '.join(sorted(unknown))}: only {' or '.join(EXCLUDABLE)}")
    data = Path(data)
    carve = Path(carve) if carve else None
    if carve is not None and not any((carve / f"{name}.json").is_file() for name in CARVED_SETS):
        raise DatasetError(f"{carve} holds no carve of the data sets (made by python -m brain_cnn.data.carves)")
    four = discover(data / "brain-tumor-mri")
    # Validation carved from Training, copies kept together; LGG by patient (brain-tumor-lgg-masks/cases.csv).
    four_split = _carved(carve, "brain-tumor-mri", lambda: grouped_split(four, seed))
    lgg = discover(data / "brain-tumor-lgg")
    lgg_split = _carved(carve, "brain-tumor-lgg", lambda: grouped_split(lgg, seed))
    shipped = Path(__file__).resolve().parents[2] / "models" / "brain-tumor-44c" / "split.json"
    c44_root = data / "brain-tumor-44c"
    c44 = _carved(carve, "brain-tumor-44c", lambda: SplitManifest.load(shipped) if shipped.is_file()
                  else grouped_split(discover(c44_root), seed))
    splits = {
        "train": (mapped_pairs(four.root, four_split.splits["train"], "brain-tumor-mri")
                  + mapped_pairs(lgg.root, lgg_split.splits["train"], "brain-tumor-lgg")
                  + mapped_pairs(c44_root, c44.splits["train"], "brain-tumor-44c")),
        "validation": (mapped_pairs(four.root, four_split.splits["validation"], "brain-tumor-mri")
                       + mapped_pairs(lgg.root, lgg_split.splits["validation"], "brain-tumor-lgg")),
    }
    record = {"brain-tumor-mri": {k: [s.path for s in v] for k, v in four_split.splits.items()},
              "brain-tumor-lgg": {k: [s.path for s in v] for k, v in lgg_split.splits.items()},
              "brain-tumor-44c": {k: [s.path for s in c44.splits.get(k, [])] for k in ("train", CALIBRATION, "test")
                                  if c44.splits.get(k)}}
    if exclude:
        splits = {name: [p for p in pairs if p.source not in exclude] for name, pairs in splits.items()}
        record = {name: {**made, **({"train": [], "validation": []} if name in exclude else {})}
                  for name, made in record.items()}
    return splits, record


@dataclass
class DecodedPairs:
    images: np.ndarray  # (N, S, S, 1) uint8
    masks: np.ndarray  # (N, S, S, 1) uint8, 0/255
    labels: np.ndarray  # (N,) int, -1: a tumour of another type
    known: np.ndarray  # (N,) bool: the mask is known (a mask file, or empty for a no-tumour image)
    sources: list[str]
    files: list[str]
    unreadable: list[tuple[str, str]]
    # (N,) int: for an edited twin that weighs what its original weighs (:func:`paired_twins`), the original's
    # index; -1 for every other image. None: no such twins.
    twin_of: np.ndarray | None = None


def _decode_one(sample: PairSample, image_size: int):
    scan = read_scan(read_file(Path(sample.root) / sample.path), Path(sample.path).name)
    mask = read_mask(sample.mask) if sample.status == MASK else None
    return prepare_pair(scan.slices[0], mask, image_size)


def decode_pairs(samples: list[PairSample], image_size: int) -> DecodedPairs:
    """Decode images and masks in parallel through the one preprocessing path; unreadable files are listed."""
    def one(sample):
        try:
            return _decode_one(sample, image_size), None
        except UnreadableImageError as error:
            return None, str(error)

    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        results = list(pool.map(one, samples))
    kept = [(s, r) for s, (r, e) in zip(samples, results) if r is not None]
    empty = np.zeros((0, image_size, image_size, 1), np.uint8)
    return DecodedPairs(
        images=np.stack([r[0] for _, r in kept]) if kept else empty,
        masks=np.stack([r[1] for _, r in kept]) if kept else empty,
        labels=np.array([s.label for s, _ in kept], np.int32),
        known=np.array([s.status in (MASK, EMPTY) for s, _ in kept], bool),
        sources=[s.source for s, _ in kept],
        files=[f"{s.source}/{s.path}" for s, _ in kept],
        unreadable=[(f"{s.source}/{s.path}", e) for s, (r, e) in zip(samples, results) if r is None],
    )


def make_pair_dataset(pairs: DecodedPairs, batch_size: int, training: bool, seed: int = 0, presence: str = "all",
                      draws: np.ndarray | None = None):
    """A ``tf.data.Dataset`` of (image, {probabilities, tumour_map}, {their sample weights}).

    ``draws`` (training only): the images of each batch, (steps, batch) indices drawn by
    :func:`epoch_draws`; the balance is then in the draws, and every sample weighs 1. Without it, one
    pass over ``pairs`` shuffled, each image weighted by its cell.

    The call's targets carry, last, the weight of its whether-a-tumour term
    (:func:`~brain_cnn.model.tumour_maps.call_targets`): 1 everywhere in
    validation (the plain cross-entropy, so runs compare), and in training
    per ``presence`` (:data:`PRESENCE`).

    In training each (data set, class) cell weighs the same in total
    (:func:`brain_cnn.training.balance.sample_weights` with the sources), so
    no source's look stands for a class.

    In training, the image and its mask go through one geometric transform
    together (the flips, rotation, zoom and shift of :func:`brain_cnn.data.pipeline.augmenter`);
    the image alone then gets the appearance augmentation: brightness and
    contrast, a random intensity curve for half the images, and scanner
    effects (:func:`brain_cnn.data.pipeline.intensity_remap`, :func:`~brain_cnn.data.pipeline.scanner_augment`).
    """
    import keras
    import tensorflow as tf
    from keras import layers


    if presence not in PRESENCE:
        raise ValueError(f"presence must be one of {PRESENCE}, not {presence!r}")
    masked_tumour = pairs.known & (pairs.labels != CLASSES.index("notumor"))
    teaches = ~masked_tumour if training and presence == "except-masked" else np.ones(len(pairs.labels), bool)
    columns = (pairs.images, pairs.masks, call_targets(targets(pairs.labels, CLASSES), teaches),
               _weights(pairs) if training and draws is None else np.ones(len(pairs.labels), np.float32),
               pairs.known.astype(np.float32))
    if training and draws is not None:
        def batches():  # numpy gathers a batch in microseconds; a training step takes about 600 ms
            for rows in draws:
                yield tuple(column[rows] for column in columns)

        data = tf.data.Dataset.from_generator(batches, output_signature=tuple(
            tf.TensorSpec((None,) + column.shape[1:], tf.as_dtype(column.dtype)) for column in columns))
    else:
        data = tf.data.Dataset.from_tensor_slices(columns).cache()
        if training:
            data = data.shuffle(len(pairs.labels), seed=seed, reshuffle_each_iteration=True)
        data = data.batch(batch_size)
    geometry = keras.Sequential([layer for layer in augmenter(seed).layers
                                 if not isinstance(layer, (layers.RandomBrightness, layers.RandomContrast))])
    appearance = keras.Sequential([layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 4),
                                   layers.RandomContrast(0.2, value_range=(0, 255), seed=seed + 5)])
    half = layers.AveragePooling2D(2)

    def arrange(image, mask, target, weight, known):
        image, mask = tf.cast(image, tf.float32), tf.cast(mask, tf.float32)
        if training:
            both = geometry(tf.concat([image, mask], axis=-1), training=True)
            image, mask = both[..., :1], both[..., 1:]
            image = tf.clip_by_value(appearance(image, training=True), 0.0, 255.0)
            image = scanner_augment(intensity_remap(image, seed), seed)
        return (image, {PROBABILITIES: target, TUMOUR_MAP: half(mask) / 255.0},
                {PROBABILITIES: weight, TUMOUR_MAP: known})

    return data.map(arrange, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _masked_tumours(pairs: DecodedPairs) -> np.ndarray:
    """Indices of the tumour images with a non-empty expert mask."""
    normal = CLASSES.index("notumor")
    return np.flatnonzero(pairs.known & (pairs.labels >= 0) & (pairs.labels != normal)
                          & (pairs.masks.reshape(len(pairs.masks), -1).max(axis=1) > 0))


def _added(pairs: DecodedPairs, chosen: list[int], images: list[np.ndarray], masks: np.ndarray, labels: np.ndarray,
           kind: str, tag: str) -> DecodedPairs:
    """``pairs`` with edited copies of its images ``chosen`` appended: a source of their own (``kind``), their
    files marked ``#tag``."""
    images = np.stack(images) if images else pairs.images[:0]
    return DecodedPairs(
        images=np.concatenate([pairs.images, images]),
        masks=np.concatenate([pairs.masks, masks.reshape((len(images),) + pairs.masks.shape[1:])]),
        labels=np.concatenate([pairs.labels, labels.astype(pairs.labels.dtype)]),
        known=np.concatenate([pairs.known, np.ones(len(images), bool)]),
        sources=pairs.sources + [f"{pairs.sources[i]} ({kind})" for i in chosen],
        files=pairs.files + [f"{pairs.files[i]}#{tag}" for i in chosen],
        unreadable=pairs.unreadable)


def _weights(pairs: DecodedPairs) -> np.ndarray:
    """Each (data set, class) cell of equal total weight (:func:`~brain_cnn.training.balance.sample_weights`);
    a paired twin weighs what its original does, so the twins add no cells of their own to the balance."""
    if pairs.twin_of is None:
        return sample_weights(pairs.labels, pairs.sources)
    original = pairs.twin_of < 0
    weights = np.zeros(len(pairs.labels), np.float32)
    weights[original] = sample_weights(pairs.labels[original], [s for s, o in zip(pairs.sources, original) if o])
    weights[~original] = weights[pairs.twin_of[~original]]
    return weights


HOME = "brain-tumor-mri"  # the 4-class set, the default's own look
PASTED = "pasted"  # the file tag of a pasted slice (:func:`pasted_tumours`)


def not_bright_tumours(pairs: DecodedPairs) -> np.ndarray:
    """Indices of the real (not edited) masked tumours darker than or about as bright as the brain around them
    (:mod:`brain_cnn.data.tumour_contrast`): the tumours every map network so far misses most."""
    real = _masked_tumours(pairs)
    # Every edited copy (twin, pasted, recipes 3 and 5's counterfactuals) is tagged "#kind" in its file name.
    real = real[["#" not in pairs.files[i] for i in real]] if len(real) else real
    return real[bands(pairs.images[real], pairs.masks[real]) != "bright"] if len(real) else real


def _not_bright_drawn_more(pairs: DecodedPairs, weights: np.ndarray, factor: float) -> np.ndarray:
    """``weights`` with each :func:`not_bright_tumours` image (and its twins) ``factor`` times the others of its
    (data set, class) cell; every cell's total is kept, so the balance between cells does not move."""
    rows = np.arange(len(pairs.labels))
    original = rows if pairs.twin_of is None else np.where(pairs.twin_of < 0, rows, pairs.twin_of)
    times = np.where(np.isin(original, not_bright_tumours(pairs)), factor, 1.0)
    cells = np.array([f"{pairs.sources[i]}\0{pairs.labels[i]}" for i in original])
    out = weights * times
    for cell in np.unique(cells):
        here = cells == cell
        out[here] *= weights[here].sum() / out[here].sum()
    return out


def draw_weights(pairs: DecodedPairs, pasted_share: float = 0.0, normal_weight: float = 1.0,
                 not_bright_weight: float = 1.0) -> np.ndarray:
    """How likely each training image is drawn (sums to 1): the cells of :func:`_weights`, and the pasted
    slices (:func:`pasted_tumours`, last in ``pairs``) as ``pasted_share`` of the draws, balanced over their own
    (target source, class) cells. ``normal_weight``: the real tumour-free slices' cells (not the painted-out
    twins) weigh that many times their share, against outlines drawn on normal anatomy. ``not_bright_weight``:
    within its cell, each masked tumour darker than or as bright as the brain around it is drawn that many
    times as often as the others (:func:`_not_bright_drawn_more`)."""
    pasted = np.array([f.endswith(f"#{PASTED}") for f in pairs.files], bool)
    count = int((~pasted).sum())
    if pasted[:count].any():
        raise ValueError("the pasted slices must come last")
    rest = DecodedPairs(pairs.images[:count], pairs.masks[:count], pairs.labels[:count], pairs.known[:count],
                        pairs.sources[:count], pairs.files[:count], [],
                        None if pairs.twin_of is None else pairs.twin_of[:count])
    weights = np.zeros(len(pairs.labels), np.float64)
    weights[:count] = _weights(rest)
    if not_bright_weight != 1.0:
        weights[:count] = _not_bright_drawn_more(rest, weights[:count], not_bright_weight)
    if normal_weight != 1.0:
        real = rest.twin_of < 0 if rest.twin_of is not None else np.ones(count, bool)
        weights[:count][real & (rest.labels == CLASSES.index("notumor"))] *= normal_weight
    weights[:count] /= weights[:count].sum()
    if pasted.any() and pasted_share > 0:
        weights[:count] *= 1 - pasted_share
        extra = sample_weights(pairs.labels[count:], pairs.sources[count:]).astype(np.float64)
        weights[count:] = pasted_share * extra / extra.sum()
    return weights / weights.sum()


def epoch_draws(weights: np.ndarray, steps: int, batch_size: int, seed: int, first: int, last: int) -> np.ndarray:
    """The images of every batch of epochs ``first`` to ``last - 1`` (0-based), drawn with replacement by
    ``weights``: (steps x epochs, batch) indices. Each epoch's draws depend on the seed and the epoch alone, so
    a resumed run draws what the uninterrupted one would have.

    With fixed steps an epoch costs the same whatever the data holds: an LGG slice, in three sequences, is
    drawn about as often as any other image of its cell, one sequence at a time, not three times an epoch.
    """
    return np.concatenate([np.random.default_rng([seed, epoch]).choice(len(weights), size=(steps, batch_size),
                                                                       p=weights)
                           for epoch in range(first, last)]) if last > first else np.zeros((0, batch_size), int)


def paired_twins(pairs: DecodedPairs, fraction: float, seed: int = 0, alike: bool = True) -> DecodedPairs:
    """``pairs`` plus both twins of ``fraction`` of its tumour images with an expert mask: the tumour painted out
    (no tumour, empty mask) and the same shape painted out elsewhere in the brain (its class and mask kept);
    each twin weighs what its original weighs (:func:`make_pair_dataset`).

    Both kinds cover the same tumours, so a fill, of whatever size, is as common on a tumour slice as on a
    painted-out one and says nothing of the label; a tumour with no clear place for its shape elsewhere gets
    neither twin. (:func:`counterfactuals` and :func:`painted_elsewhere` alone draw their tumours
    independently and make each kind a cell of its own in the balance: recipes 3 and 5.)

    ``alike=False``: no twins for the tumours about as bright as the brain around them
    (:mod:`brain_cnn.data.tumour_contrast`). Painting such a tumour out leaves nearly the same image (the fill
    changes the LGG set's alike tumours by 8 grey levels at the median, its bright ones by 29:
    ``experiments/twin_fill_change.py``), so its painted-out twin is the tumour itself labelled "no tumour".
    """
    masked = _masked_tumours(pairs)
    rng = np.random.default_rng(seed + 2)
    chosen = np.sort(rng.choice(masked, size=int(round(fraction * len(masked))), replace=False))
    skipped = set() if alike or not len(chosen) else set(
        chosen[bands(pairs.images[chosen], pairs.masks[chosen]) == "alike"].tolist())
    kept, gone, elsewhere = [], [], []
    for start in range(0, len(chosen), 256):  # the brain masks a batch at a time
        batch = chosen[start:start + 256]
        for i, brain in zip(batch, brain_regions(pairs.images[batch, ..., 0])):
            tumour = pairs.masks[i, ..., 0] > 127
            # Every chosen tumour draws its place elsewhere, the skipped ones too, so the others' twins are
            # those they would have in a run with every twin.
            moved = moved_region(tumour, brain, rng, margin=clear_margin(NAVIER_STOKES)) if brain is not None else None
            if moved is not None and int(i) not in skipped:
                kept.append(int(i))
                gone.append(paint_out(pairs.images[i], tumour, NAVIER_STOKES))
                elsewhere.append(paint_out(pairs.images[i], moved, NAVIER_STOKES))
    twin_of = np.full(len(pairs.labels), -1) if pairs.twin_of is None else pairs.twin_of
    out = _added(pairs, kept, gone, np.zeros((len(kept),) + pairs.masks.shape[1:], np.uint8),
                 np.full(len(kept), CLASSES.index("notumor")), "tumour painted out", "painted-out")
    out = _added(out, kept, elsewhere, pairs.masks[kept], pairs.labels[kept], "painted out elsewhere",
                 "painted-elsewhere")
    out.twin_of = np.concatenate([twin_of, kept, kept]).astype(int)
    return out


def pasted_tumours(pairs: DecodedPairs, count: int, seed: int = 0) -> DecodedPairs:
    """``pairs`` plus up to ``count`` tumour-free slices with an expert-masked glioma or meningioma of the training
    images pasted in (:func:`brain_cnn.data.pasting.paste_tumour`): a tumour of the donor's type with the pasted
    mask, a source of its own ("<target's source> (tumour pasted)"), appended last.

    Donors: every original training tumour with a non-empty expert mask (the 4-class ``Training`` masks, the LGG
    training patients'); targets: every original tumour-free training slice (the 4-class normals, the 44-class
    training split's, the LGG tumour-free slices). Each paste draws a donor (data set, class) cell, then a
    donor, a target source, then a target, all uniformly, and turns the contrast round for a third of them;
    a pair with no plausible place is skipped.
    """
    rng = np.random.default_rng(seed + 3)
    kept = [CLASSES.index("glioma"), CLASSES.index("meningioma")]
    original = np.array(["#" not in f for f in pairs.files], bool)
    donors = [int(i) for i in _masked_tumours(pairs) if original[i] and pairs.labels[i] in kept]
    targets_ = np.flatnonzero(original & (pairs.labels == CLASSES.index("notumor")))
    donor_cells = sorted({(pairs.sources[i], int(pairs.labels[i])) for i in donors})
    by_cell = {cell: [i for i in donors if (pairs.sources[i], int(pairs.labels[i])) == cell] for cell in donor_cells}
    target_sources = sorted({pairs.sources[i] for i in targets_})
    by_source = {s: [int(i) for i in targets_ if pairs.sources[i] == s] for s in target_sources}
    if not donors or not len(targets_) or count <= 0:
        return pairs
    plan = []
    for _ in range(count):
        cell = donor_cells[rng.integers(len(donor_cells))]
        source = target_sources[rng.integers(len(target_sources))]
        plan.append((by_cell[cell][rng.integers(len(by_cell[cell]))], by_source[source][rng.integers(len(by_source[source]))],
                     bool(rng.random() < INVERTED_SHARE)))
    needed = sorted({i for donor, target, _ in plan for i in (donor, target)})
    brains = {}
    for start in range(0, len(needed), 256):  # the brain masks a batch at a time
        batch = needed[start:start + 256]
        brains.update(zip(batch, brain_regions(pairs.images[batch, ..., 0])))
    chosen, images, masks, labels = [], [], [], []
    for donor, target, inverted in plan:
        if brains[donor] is None or brains[target] is None:
            continue
        paste = paste_tumour(pairs.images[donor], pairs.masks[donor, ..., 0] > 127, brains[donor],
                             pairs.images[target], brains[target], rng,
                             meningioma=pairs.labels[donor] == CLASSES.index("meningioma"), inverted=inverted)
        if paste is not None:
            chosen.append(target)
            images.append(paste.image)
            masks.append(paste.mask)
            labels.append(pairs.labels[donor])
    out = _added(pairs, chosen, images, np.array(masks, np.uint8).reshape((len(chosen),) + pairs.masks.shape[1:]),
                 np.array(labels, int), "tumour pasted", PASTED)
    if pairs.twin_of is not None:
        out.twin_of = np.concatenate([pairs.twin_of, np.full(len(chosen), -1)]).astype(int)
    return out


def counterfactuals(pairs: DecodedPairs, fraction: float, seed: int = 0) -> DecodedPairs:
    """``pairs`` plus, for ``fraction`` of its tumour images with an expert mask, the same slice with the tumour
    painted out (filled from the tissue around it), labelled no tumour with an empty mask.

    What is left of a tumour slice once the tumour is gone must not be evidence of a tumour (the removal test
    of :mod:`brain_cnn.evaluation.tumour_maps`). The fill here (Navier-Stokes inpainting of the mask grown by
    3 px, :func:`brain_cnn.data.painting.paint_out`) differs from the removal test's (Telea, 2 px), so a
    network cannot pass that test by knowing one fill; both are still artificial fills, which the test's
    figures must be read with (and :func:`painted_elsewhere` puts the same fill on tumour slices).
    """
    masked = _masked_tumours(pairs)
    chosen = np.sort(np.random.default_rng(seed).choice(masked, size=int(round(fraction * len(masked))),
                                                        replace=False)).tolist()
    painted = [paint_out(pairs.images[i], pairs.masks[i, ..., 0] > 127, NAVIER_STOKES) for i in chosen]
    return _added(pairs, chosen, painted, np.zeros((len(chosen),) + pairs.masks.shape[1:], np.uint8),
                  np.full(len(chosen), CLASSES.index("notumor")), "tumour painted out", "painted-out")


def painted_elsewhere(pairs: DecodedPairs, fraction: float, seed: int = 0) -> DecodedPairs:
    """``pairs`` plus, for ``fraction`` of its tumour images with an expert mask, the same slice with a region of
    the tumour's shape painted out elsewhere in the brain (clear of the tumour), keeping its class and mask.

    The twin of :func:`counterfactuals`: with only tumours painted out, a fill would mark "no tumour" (a
    shortcut of its own, one the removal test would reward); with the same fill on tumour slices too, only the
    tumour's absence tells the two apart. Slices where no clear place in the brain is found are skipped.
    """
    masked = _masked_tumours(pairs)
    rng = np.random.default_rng(seed + 1)
    chosen = np.sort(rng.choice(masked, size=int(round(fraction * len(masked))), replace=False))
    kept, painted = [], []
    for start in range(0, len(chosen), 256):  # the brain masks a batch at a time
        batch = chosen[start:start + 256]
        for i, brain in zip(batch, brain_regions(pairs.images[batch, ..., 0])):
            moved = moved_region(pairs.masks[i, ..., 0] > 127, brain, rng,
                                 margin=clear_margin(NAVIER_STOKES)) if brain is not None else None
            if moved is not None:
                kept.append(int(i))
                painted.append(paint_out(pairs.images[i], moved, NAVIER_STOKES))
    return _added(pairs, kept, painted, pairs.masks[kept], pairs.labels[kept], "painted out elsewhere",
                  "painted-elsewhere")


def read_decoded(path: str | Path) -> DecodedPairs:
    """A run's decoded split (``decoded-train.npz``, ``decoded-validation.npz``), as :func:`decode_pairs` made it."""
    with np.load(path) as saved:
        return DecodedPairs(saved["images"], saved["masks"], saved["labels"], saved["known"],
                            saved["sources"].tolist(), saved["files"].tolist(), [])


def _decoded(cache: Path, samples: list[PairSample], image_size: int) -> DecodedPairs:
    """:func:`decode_pairs`, kept in the run folder so that a resumed run does not decode again."""
    if cache.is_file():
        return read_decoded(cache)
    pairs = decode_pairs(samples, image_size)
    np.savez(cache, images=pairs.images, masks=pairs.masks, labels=pairs.labels, known=pairs.known,
             sources=np.array(pairs.sources), files=np.array(pairs.files))
    return pairs


def removal_validation(validation: DecodedPairs, seed: int = 42):
    """A Keras callback scoring each epoch on validation's masked tumours edited; ``callback.score(model)``
    scores any compiled network the same way (the bar of :func:`shipping_epoch`).

    Adds to each epoch's logs (so ``history.csv`` keeps them):

    * ``val_painted_out_loss``: the loss of every masked validation tumour painted out (:func:`counterfactuals`
      at 1.0: no tumour, empty mask), the same loss as ``val_loss`` on the intact slices;
    * ``val_painted_out_below_half``: the share of them whose tumour probability is below 0.5;
    * ``val_elsewhere_changed``: the share of the masked validation tumours with a clear place for their shape
      elsewhere in the brain (:func:`painted_elsewhere` at 1.0) whose call (tumour first) changes when it is
      painted out there;
    * ``val_missed_dark``, ``val_missed_alike``, ``val_missed_bright``: the share of the masked validation
      tumours in each contrast band (:mod:`brain_cnn.data.tumour_contrast`) whose tumour probability is below
      0.5, on the intact slices (uncalibrated, one look); ``val_missed_dark_4class`` and so on: the same on the
      4-class set's alone, the home tumours the combined models miss.

    NaN where validation has no such slice. Validation's fill is the training's, so these reward knowing it
    too; the removal test's other fill stays the held-out check.
    """
    import keras

    from brain_cnn.inference.decision import TUMOUR_FIRST, decide

    count = len(validation.labels)
    painted = counterfactuals(validation, 1.0, seed)
    painted = DecodedPairs(painted.images[count:], painted.masks[count:], painted.labels[count:],
                           painted.known[count:], painted.sources[count:], painted.files[count:], [])
    elsewhere = painted_elsewhere(validation, 1.0, seed)
    originals = np.array([validation.files.index(f.rsplit("#", 1)[0]) for f in elsewhere.files[count:]], int)
    intact_data, painted_data = (make_pair_dataset(pairs, 64, False) for pairs in (validation, painted))
    normal, nan = CLASSES.index("notumor"), float("nan")
    masked = _masked_tumours(validation)
    band = bands(validation.images[masked], validation.masks[masked]) if len(masked) else np.array([], str)
    home = np.array([validation.sources[i] == HOME for i in masked], bool)
    asked = np.union1d(masked, originals).astype(int)  # every slice whose call is scored, predicted once

    class RemovalValidation(keras.callbacks.Callback):
        def figures(self, model, logs: dict) -> dict:
            if len(painted.labels):
                logs["val_painted_out_loss"] = float(model.evaluate(painted_data, verbose=0, return_dict=True)["loss"])
                gone = model.predict(painted.images, batch_size=64, verbose=0)[PROBABILITIES]
                logs["val_painted_out_below_half"] = float((1 - gone[:, normal] < 0.5).mean())
            else:
                logs["val_painted_out_loss"] = logs["val_painted_out_below_half"] = nan
            calls = (model.predict(validation.images[asked], batch_size=64, verbose=0)[PROBABILITIES]
                     if len(asked) else np.zeros((0, len(CLASSES))))
            if len(originals):
                before = calls[np.searchsorted(asked, originals)]
                after = model.predict(elsewhere.images[count:], batch_size=64, verbose=0)[PROBABILITIES]
                logs["val_elsewhere_changed"] = float((decide(before, CLASSES, TUMOUR_FIRST)
                                                       != decide(after, CLASSES, TUMOUR_FIRST)).mean())
            else:
                logs["val_elsewhere_changed"] = nan
            tumour = 1 - calls[np.searchsorted(asked, masked), normal] if len(masked) else np.zeros(0)
            for name, _, _ in BANDS:
                for suffix, where in (("", np.ones(len(masked), bool)), ("_4class", home)):
                    here = where & (band == name)
                    logs[f"val_missed_{name}{suffix}"] = float((tumour[here] < 0.5).mean()) if here.any() else nan
            return logs

        def score(self, model) -> dict:
            """``model``'s figures, ``val_loss`` (on the intact slices) included."""
            intact = float(model.evaluate(intact_data, verbose=0, return_dict=True)["loss"])
            return self.figures(model, {"val_loss": intact})

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                self.figures(self.model, logs)

    return RemovalValidation()


def shipping_epoch(history: list[dict], bar: dict) -> int | None:
    """The epoch (1-based) that replaces a shipped network under the rule of docs/tumour-maps.md; None if none.

    ``history``: ``history.csv``'s rows (with :func:`removal_validation`'s columns; ``epoch`` 0-based, as
    Keras writes it); ``bar``: the shipped network's figures on the same validation (``callback.score``).
    An epoch qualifies when it is no worse on the intact validation slices (``val_loss``), better on the
    painted-out validation tumours (``val_painted_out_loss``), and changes at most 5 % of calls when the
    same shape is painted out elsewhere; of those, the one lowest on the painted-out tumours ships.
    """
    qualifying = [(float(row["val_painted_out_loss"]), int(row["epoch"]) + 1) for row in history
                  if row.get("val_painted_out_loss") not in (None, "")
                  and float(row["val_loss"]) <= bar["val_loss"]
                  and float(row["val_painted_out_loss"]) < bar["val_painted_out_loss"]
                  and float(row["val_elsewhere_changed"]) <= 0.05]
    return min(qualifying)[1] if qualifying else None


def cosine(epochs: int, learning_rate: float, warmup: int = 1):
    """Learning rate per epoch: a warm-up epoch, then cosine decay to 2 % (a function of the epoch, so resumable)."""
    import math

    def rate(epoch: int, _current=None) -> float:
        if epoch < warmup:
            return learning_rate * 0.3
        done = (epoch - warmup) / max(epochs - warmup, 1)
        return learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * done)))

    return rate


def _compile(model, learning_rate: float):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss={PROBABILITIES: call_loss, TUMOUR_MAP: tumour_map_loss},
                  metrics={PROBABILITIES: [keras.metrics.MeanMetricWrapper(call_accuracy, name="accuracy")]})


def train_tumour_maps(data: str | Path, out: str | Path, epochs: int = 30, image_size: int = 128, width: int = 24,
                      batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 42,
                      max_steps: int | None = None, start_from: str | Path | None = None,
                      painted_out: float = 0.0, presence: str = "all", painted_out_elsewhere: float = 0.0,
                      paired: float = 0.0, bar_from: str | Path | None = None,
                      type_from: str | None = None, steps_per_epoch: int | None = None, pasted: float = 0.0,
                      pasted_slices: int = 6000, state: str | Path | None = None,
                      carve: str | Path | None = None, normal_weight: float = 1.0,
                      exclude: tuple[str, ...] = (), not_bright_weight: float = 1.0,
                      alike_twins: bool = True) -> Path:
    """Train the two-output network on the recipe's sources; resumable; returns the folder.

    Writes ``model.keras`` (the best epoch by validation loss), ``sources.json``
    (every split made, per data set), ``history.csv``, ``recipe.json`` and the
    model folder's ``card.json`` and ``split.json``. ``start_from``: a
    ``model.keras`` of an earlier run of the recipe (the same splits: the same
    seed) to go on training with a new schedule. ``painted_out``: the share of masked training tumours
    added again with the tumour painted out, as no tumour (:func:`counterfactuals`);
    ``painted_out_elsewhere``: the share added again with the same shape painted out elsewhere, as they were
    (:func:`painted_elsewhere`); ``paired``: the share given both twins, each weighing what its original
    weighs (:func:`paired_twins`). ``presence``: which training images the call teaches whether there is a
    tumour (:data:`PRESENCE`). Every epoch's weights are kept in ``epochs/`` and scored on validation's
    masked tumours painted out (:func:`removal_validation`); the epoch :func:`shipping_epoch` chooses against
    the shipped network's figures (``start_from``'s, else those of ``bar_from``, a ``model.keras``) becomes
    the model folder's (``shipping.json`` says which; with none, the lowest validation loss, marked as not
    replacing it; with no bar, the lowest validation loss). ``type_from``: what the type head sees
    (:data:`~brain_cnn.model.tumour_maps.TYPE_FROM`; None: the first, or ``start_from``'s own).
    ``carve``: the folder of the shared carve (:func:`training_samples`). ``normal_weight``: the tumour-free
    slices' share of the draws, times (:func:`draw_weights`; needs ``steps_per_epoch``). ``exclude``: data sets
    left out of training and validation (leave-one-source-out, :func:`training_samples`). ``not_bright_weight``:
    how many times as often a masked tumour not brighter than the brain around it is drawn as the others of its
    cell (:func:`draw_weights`; needs ``steps_per_epoch``). ``alike_twins=False``: no twins for the tumours about
    as bright as the brain around them (:func:`paired_twins`).

    ``steps_per_epoch``: an epoch is that many batches drawn by the balance (:func:`epoch_draws`), not a pass
    over the data. ``pasted``: the share of the draws that are tumour-free slices with a tumour pasted in
    (:func:`pasted_tumours`, ``pasted_slices`` of them made). ``state``: the run's whole resumable state in one
    file (:mod:`brain_cnn.training.run_state`), written every epoch; when it exists the run resumes from it,
    in this run folder or a fresh one (needs ``steps_per_epoch``).
    """
    import keras

    from brain_cnn.training import run_state

    if (state or pasted or normal_weight != 1.0 or not_bright_weight != 1.0) and not steps_per_epoch:
        raise ValueError("a run kept in a state file, or with pasted tumours, draws its epochs: give steps_per_epoch")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    splits, record = training_samples(data, seed, carve, tuple(exclude))
    (out / SOURCES_FILE).write_text(json.dumps(record))
    decoded = {name: _decoded(out / f"decoded-{name}.npz", samples, image_size) for name, samples in splits.items()}
    for name, pairs in decoded.items():
        by_source = {s: pairs.sources.count(s) for s in sorted(set(pairs.sources))}
        print(f"{name}: {len(pairs.labels)} images {by_source}; masks known for {int(pairs.known.sum())}; "
              f"{len(pairs.unreadable)} unreadable", flush=True)
    print(f"decoded in {time.perf_counter() - started:.0f} s", flush=True)
    if painted_out or painted_out_elsewhere:
        edited = counterfactuals(decoded["train"], painted_out, seed)
        decoded["train"] = painted_elsewhere(edited, painted_out_elsewhere, seed) if painted_out_elsewhere else edited
    if paired:
        decoded["train"] = paired_twins(decoded["train"], paired, seed, alike_twins)
    if painted_out or painted_out_elsewhere or paired:
        print(f"train: {len(decoded['train'].labels)} images with the painted-out counterfactuals", flush=True)
    if pasted:
        before = len(decoded["train"].labels)
        decoded["train"] = pasted_tumours(decoded["train"], pasted_slices, seed)
        print(f"train: {len(decoded['train'].labels) - before} tumour-free slices with a tumour pasted in "
              f"(of {pasted_slices} tried), {pasted:.0%} of the draws", flush=True)
    recipe = {"image_size": image_size, "width": width, "batch_size": batch_size, "learning_rate": learning_rate,
              "seed": seed, "classes": CLASSES, "epochs": epochs, "painted_out": painted_out,
              **({"carve": str(carve)} if carve else {}),
              **({"normal_weight": normal_weight} if normal_weight != 1.0 else {}),
              **({"not_bright_weight": not_bright_weight} if not_bright_weight != 1.0 else {}),
              **({"left_out": sorted(exclude)} if exclude else {}),
              "painted_out_elsewhere": painted_out_elsewhere, "paired_twins": paired,
              **({} if alike_twins else {"alike_twins": False}),
              "presence_from_call": presence,
              "training_images": {s: decoded["train"].sources.count(s) for s in sorted(set(decoded["train"].sources))},
              "started_from": str(start_from) if start_from else None, "type_from": type_from,
              **({"steps_per_epoch": steps_per_epoch} if steps_per_epoch else {}),
              **({"pasted_share": pasted, "pasted_tried": pasted_slices} if pasted else {})}
    recipe = json.loads(json.dumps(recipe))  # as a state file gives it back (tuples as lists)
    (out / "recipe.json").write_text(json.dumps(recipe, indent=1))
    digest = run_state.data_digest(decoded["train"].files + decoded["validation"].files,
                                   np.concatenate([decoded["train"].labels, decoded["validation"].labels]))
    saved = run_state.load_state(state) if state and Path(state).is_file() else None
    if saved:
        run_state.check_settings(saved, recipe, digest, Path(state))
    if start_from:
        import brain_cnn.model.layers  # noqa: F401  (registers the custom layers for safe-mode loading)

        model = keras.saving.load_model(start_from, compile=False, safe_mode=True)
    else:
        model = build_segmenter(len(CLASSES), image_size, width, type_from=type_from or TYPE_FROM[0])
    _compile(model, learning_rate)
    first = saved["epoch"] if saved else 0
    if steps_per_epoch:
        steps = min(steps_per_epoch, max_steps) if max_steps else steps_per_epoch
        if not_bright_weight != 1.0:
            print(f"train: {len(not_bright_tumours(decoded['train']))} real masked tumours not brighter than the brain "
                  f"around them, drawn {not_bright_weight:g} times as often as the rest of their cell", flush=True)
        draws = epoch_draws(draw_weights(decoded["train"], pasted, normal_weight, not_bright_weight), steps,
                            batch_size, seed, first, epochs)
        train_data = make_pair_dataset(decoded["train"], batch_size, True, seed, presence, draws=draws)
    else:
        steps = None
        train_data = make_pair_dataset(decoded["train"], batch_size, True, seed, presence)
    validation = make_pair_dataset(decoded["validation"], batch_size, False)
    if max_steps:  # smoke tests
        validation = validation.take(max_steps)
        train_data = train_data if steps else train_data.take(max_steps)
    removal = removal_validation(decoded["validation"], seed)
    if saved:
        bar = saved["bar"]
        if bar:
            (out / "bar.json").write_text(json.dumps(bar, indent=1))
    else:
        bar = _bar(out, removal, model if start_from else bar_from)  # the network gone on from, before any change
    if start_from and type_from:
        model = with_type_from(model, type_from, image_size, width)
        _compile(model, learning_rate)
    callbacks = [
        removal,  # first: the callbacks after it log and checkpoint with its figures
        keras.callbacks.ModelCheckpoint(str(out / "epochs" / "epoch-{epoch:02d}.keras")),
        # A fixed schedule over the planned epochs: the run's length is what the machine allows.
        keras.callbacks.LearningRateScheduler(cosine(epochs, learning_rate)),
    ]
    if state:
        history = saved["history"] if saved else []
        if saved:
            run_state.restore(model, saved)
            run_state.write_history(out / "history.csv", history)
            print(f"resumed from {state} after epoch {first} of {epochs}", flush=True)
        keeper = run_state.state_keeper(state, out, recipe, digest, bar, history, shipping_epoch,
                                        *((saved["candidate"], saved["candidate_epoch"], saved["lowest"],
                                           saved["lowest_epoch"]) if saved else ()))
        callbacks.append(keeper)  # last: it saves what the others decided and logged
    else:
        callbacks += [
            keras.callbacks.ModelCheckpoint(str(out / "model.keras"), monitor="val_loss", save_best_only=True),
            run_state.history_logger(out / "history.csv"),
            # Last: an epoch is backed up (and so not run again on resuming) only once it is logged and saved.
            keras.callbacks.BackupAndRestore(str(out / "backup")),
        ]
    model.fit(train_data, validation_data=validation, epochs=epochs, initial_epoch=first, steps_per_epoch=steps,
              callbacks=callbacks, verbose=2)
    history = list(csv.DictReader((out / "history.csv").open()))
    chosen = shipping_epoch(history, bar) if bar else None
    (out / "shipping.json").write_text(json.dumps({"bar": bar, "epoch": chosen}, indent=1))
    print(f"by the rule of docs/tumour-maps.md: epoch {chosen} (None: no epoch replaces the shipped network)",
          flush=True)
    if state:
        # An epoch of an earlier session has no file here: the state kept the rule's epoch, the lowest in
        # validation loss (states written before it was kept: not), and the last.
        last = model.get_weights()
        for epoch, weights in ((len(history), last), (keeper.lowest_epoch, keeper.lowest),
                               (chosen, keeper.candidate)):
            if not epoch or weights is None or (out / "epochs" / f"epoch-{epoch:02d}.keras").is_file():
                continue
            (out / "epochs").mkdir(exist_ok=True)
            model.set_weights(weights)
            model.save(out / "epochs" / f"epoch-{epoch:02d}.keras")
        model.set_weights(last)
        write_model_folder(out, data, epoch=chosen or keeper.lowest_epoch or len(history))
    else:
        write_model_folder(out, data, epoch=chosen)
    return out


# The shipped tumour-map network: a run must beat its validation figures to replace it.
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "brain-tumor-maps" / "model.keras"


def _bar(out: Path, removal, model=None) -> dict | None:
    """The figures to beat (:func:`removal_validation`), kept in ``bar.json``: ``model``'s (a network, or the
    path of its ``model.keras``); None without one."""
    kept = out / "bar.json"
    if kept.is_file():  # a resumed run keeps the bar it started with
        return json.loads(kept.read_text())
    if model is None:
        return None
    if isinstance(model, (str, Path)):
        import keras

        model = keras.saving.load_model(model, compile=False, safe_mode=True)
        _compile(model, 1e-3)
    bar = removal.score(model)
    kept.write_text(json.dumps(bar, indent=1))
    print(f"the shipped network on validation: {json.dumps(bar)}", flush=True)
    return bar


def _manifest(out: Path, data: Path, seed: int) -> SplitManifest:
    """The model folder's split: what it trained and validated on, every source in one manifest rooted at
    ``data`` (tumours of an unstated type left out: the gate fits classes), and the official 4-class test."""
    splits = {}
    for name in ("train", "validation"):
        with np.load(out / f"decoded-{name}.npz") as saved:
            splits[name] = [Sample(str(f), CLASSES[int(label)]) for f, label in zip(saved["files"], saved["labels"])
                            if label >= 0]
    calibration = []
    for name, record in read_json(out / SOURCES_FILE, default={}).items():
        # A calibration image keeps its data set's folder as its label there; a tumour of an unstated type is
        # kept (as SOFT_TUMOUR), for the screening threshold.
        paths = record.get(CALIBRATION, []) if (data / name).is_dir() else []
        pairs = mapped_pairs(data / name, [Sample(p, Path(p).parent.name) for p in paths], name)
        calibration += [Sample(f"{name}/{pair.path}", CLASSES[pair.label] if pair.label >= 0 else SOFT_TUMOUR)
                        for pair in pairs]
    if calibration:
        splits[CALIBRATION] = calibration
    if (data / "brain-tumor-mri").is_dir():
        four = discover(data / "brain-tumor-mri")
        splits["test"] = [Sample(f"brain-tumor-mri/{s.path}", s.label) for s in four.splits["test"]]
    return SplitManifest(str(data), list(CLASSES), seed, splits,
                         "4-class Training (validation carved by copies), LGG training patients (validation by "
                         "patient), 44-class training split; test: the 4-class official Testing split"
                         + ("; calibration: the shared carve's (splits/)" if calibration else ""))


def _twins_sentence(recipe: dict) -> str:
    """What the card says of the counterfactual twins a run trained with (none: nothing)."""
    if recipe.get("paired_twins"):
        return (f"; counterfactual twins (after Kaushik et al., 2020) of {recipe['paired_twins']:.0%} of the masked "
                "training tumours" + ("" if recipe.get("alike_twins", True) else
                                      " (none for those about as bright as the brain around them)")
                + ": the tumour painted out (no tumour, empty mask) and the same shape painted out "
                "elsewhere (class and mask kept), each weighing what its original weighs")
    parts = [f"{recipe[key]:.0%} of the masked training tumours {what}" for key, what in
             (("painted_out", "painted out as no tumour"),
              ("painted_out_elsewhere", "with the same shape painted out elsewhere")) if recipe.get(key)]
    return f"; counterfactuals: {' and '.join(parts)}" if parts else ""


def write_model_folder(out: str | Path, data: str | Path = "../shared/data", name: str | None = None,
                       epoch: int | None = None) -> Path:
    """Make a run folder a model folder: ``card.json`` and ``split.json`` beside its ``model.keras``.

    ``epoch``: ship that epoch's weights (``epochs/epoch-NN.keras``); by default the epoch the run's
    ``shipping.json`` names (:func:`shipping_epoch`'s choice), else the one with the lowest validation loss.

    Then ``brain-cnn evaluate --model OUT`` fits the temperature and the
    out-of-distribution gate on its validation and training images and
    writes the test figures, and the app and ``predict`` can use it.
    """
    from brain_cnn.files import sha256_file
    from brain_cnn.inference.decision import TUMOUR_FIRST
    from brain_cnn.model.card import MODEL_FILE, SPLIT_FILE, ModelCard, library_versions

    import keras

    import brain_cnn.model.layers  # noqa: F401  (registers the custom layers for safe-mode loading)

    out, data = Path(out), Path(data)
    shipping = read_json(out / "shipping.json", default={})
    history = list(csv.DictReader((out / "history.csv").open())) if (out / "history.csv").is_file() else []
    losses = [(float(row["val_loss"]), int(row["epoch"]) + 1) for row in history if row.get("val_loss")]
    lowest = min(losses)[1] if losses else None  # of equals, the first
    epoch = epoch or shipping.get("epoch")
    chosen_by = ("the rule on the painted-out validation tumours (docs/tumour-maps.md)"
                 if epoch and epoch == shipping.get("epoch") else
                 "the lowest validation loss" if epoch in (None, lowest) else
                 "the last epoch" if epoch == len(history) else "given")
    # The checkpoint holds the optimizer's state too (three times the weights); the model folder needs the weights.
    chosen = out / "epochs" / f"epoch-{epoch:02d}.keras" if epoch else out / MODEL_FILE
    keras.saving.load_model(chosen, compile=False, safe_mode=True).save(out / MODEL_FILE)
    recipe = read_json(out / "recipe.json")
    manifest = _manifest(out, data, int(recipe.get("seed", 42)))
    manifest.save(out / SPLIT_FILE)
    card = ModelCard(
        name=name or out.name, classes=list(CLASSES), image_size=int(recipe["image_size"]),
        dataset={"name": "brain-tumor-mri + brain-tumor-lgg + brain-tumor-44c", "root": str(data),
                 "test": "brain-tumor-mri's official Testing split",
                 "split": manifest.origin, "counts": manifest.counts(), "sources_file": SOURCES_FILE},
        training={**recipe, "epochs_run": len(history), "tumour_map": True,
                  "best_epoch": epoch or lowest,
                  "epoch_chosen_by": chosen_by,
                  **({"replaces_the_shipped_network": shipping.get("epoch") is not None,
                      "shipped_network_on_validation": shipping["bar"]} if shipping.get("bar") else {}),
                  "design": "U-Net decoder (Ronneberger et al., 2015) on the VGG-style encoder; P(no tumour) = 1 - "
                            "the map's smoothed peak; the type head pools over the predicted tumour (after GAIN, "
                            "Li et al., 2018); loss: cross-entropy of the call (whether a tumour: "
                            + ("on every image but the tumours with an expert mask" if
                               recipe.get("presence_from_call") == "except-masked" else "on every image")
                            + ") + BCE and soft Dice (Milletari et al., 2016) on known masks only"
                            + _twins_sentence(recipe)},
        # P(no tumour) is 1 - the map's smoothed peak: tumour first calls a tumour where the map's peak reaches
        # 0.5 (before temperature scaling), so the call goes with the map, not with the single largest class.
        decision=TUMOUR_FIRST,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=library_versions(),
        limitations=["Classifies and maps one 2-D slice at a time; it does not see the rest of the study.",
                     "The tumour map is at half the input's resolution (64 px across the head crop at 128 px); "
                     "small tumours' outlines are coarse.",
                     "Trained on the 4-class set's Training images with masks, the LGG set's training patients "
                     "(T1, FLAIR, T1C+) and the 44-class training split; tumour_maps.json gives its figures on "
                     "held-out data (the yes/no set, the LGG test patients, the 44-class test split, the official "
                     "4-class Testing images).",
                     "Probabilities are temperature-scaled on the validation split; on other data they may be "
                     "over- or under-confident."],
        sha256=sha256_file(out / MODEL_FILE),
    )
    card.save(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brain_cnn.training.tumour_maps", description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the folder holding the public data sets")
    parser.add_argument("--out", required=True, help="run folder (an interrupted run there resumes)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model-folder-only", action="store_true",
                        help="only write card.json and split.json for the run's best epoch so far (no training)")
    parser.add_argument("--name", help="the model's name on its card (default: the run folder's)")
    parser.add_argument("--start-from", help="model.keras of an earlier run of the recipe (same seed) to go on from")
    parser.add_argument("--painted-out", type=float, default=0.0,
                        help="share of the masked training tumours added again painted out, as no tumour")
    parser.add_argument("--painted-out-elsewhere", type=float, default=0.0,
                        help="share of the masked training tumours added again with the same shape painted out "
                             "elsewhere in the brain, as they were")
    parser.add_argument("--paired-twins", type=float, default=0.0,
                        help="share of the masked training tumours added again twice, the tumour painted out (no "
                             "tumour) and the same shape painted out elsewhere (as they were), each weighing what "
                             "its original weighs")
    parser.add_argument("--bar-from", default=str(SHIPPED) if SHIPPED.is_file() else None,
                        help="without --start-from: the model.keras whose validation figures a run must beat to "
                             "replace it (default: the shipped models/brain-tumor-maps)")
    parser.add_argument("--type-from", choices=TYPE_FROM,
                        help="what the type head sees: the slice and the tumour region, or the region alone "
                             "(default: the first, or --start-from's own)")
    parser.add_argument("--epoch", type=int,
                        help="with --model-folder-only: ship this epoch's weights (epochs/epoch-NN.keras); by default the "
                             "run's shipping.json's choice, else the lowest validation loss")
    parser.add_argument("--steps-per-epoch", type=int,
                        help="an epoch is this many batches drawn by the (data set, class) balance, not a pass over "
                             "the data")
    parser.add_argument("--pasted", type=float, default=0.0,
                        help="share of the draws that are tumour-free training slices with an expert-masked tumour "
                             "pasted in (needs --steps-per-epoch)")
    parser.add_argument("--pasted-slices", type=int, default=6000, help="how many pasted slices to make")
    parser.add_argument("--state", help="the run's resumable state in one file, written every epoch; the run "
                                        "resumes from it when it exists (needs --steps-per-epoch)")
    parser.add_argument("--presence", choices=PRESENCE, default="all",
                        help="which training images the call teaches whether there is a tumour, through the map's "
                             "peak: all, or all but the tumours with an expert mask")
    parser.add_argument("--carve", help="the folder of the shared carve of the data sets (splits/, made by "
                                        "python -m brain_cnn.data.carves): their splits, and calibration held out")
    parser.add_argument("--normal-weight", type=float, default=1.0,
                        help="the real tumour-free slices' share of the draws, times (default 1; needs "
                             "--steps-per-epoch)")
    parser.add_argument("--not-bright-weight", type=float, default=1.0,
                        help="draw each masked tumour darker than or about as bright as the brain around it this "
                             "many times as often as the rest of its (data set, class) cell (default 1; needs "
                             "--steps-per-epoch)")
    parser.add_argument("--no-alike-twins", dest="alike_twins", action="store_false",
                        help="give no paired twins (--paired-twins) to the tumours about as bright as the brain "
                             "around them (painting them out leaves nearly the same image)")
    parser.add_argument("--exclude", action="append", default=[], choices=EXCLUDABLE, metavar="DATA_SET",
                        help="leave this data set out of training and validation (leave-one-source-out: "
                             f"{' or '.join(EXCLUDABLE)}; repeatable)")
    args = parser.parse_args(argv)
    for name in ("normal_weight", "not_bright_weight"):
        if not 0 < getattr(args, name) < float("inf"):  # NaN fails both
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not args.alike_twins and not args.paired_twins:
        parser.error("--no-alike-twins changes the paired twins: give --paired-twins")
    if (args.state or args.pasted or args.normal_weight != 1.0 or args.not_bright_weight != 1.0) \
            and not args.steps_per_epoch:
        parser.error("--state, --pasted, --normal-weight and --not-bright-weight draw each epoch's batches: give "
                     "--steps-per-epoch")
    try:
        _run(args)
    except BrainCnnError as error:  # a clear line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> None:
    if args.model_folder_only:
        write_model_folder(args.out, args.data, args.name, args.epoch)
        return
    train_tumour_maps(args.data, args.out, args.epochs, args.image_size, args.width, args.batch_size,
                      args.learning_rate, args.seed, start_from=args.start_from, painted_out=args.painted_out,
                      presence=args.presence, painted_out_elsewhere=args.painted_out_elsewhere,
                      paired=args.paired_twins, bar_from=args.bar_from,
                      type_from=args.type_from, steps_per_epoch=args.steps_per_epoch, pasted=args.pasted,
                      pasted_slices=args.pasted_slices, state=args.state, carve=args.carve,
                      normal_weight=args.normal_weight, exclude=tuple(args.exclude),
                      not_bright_weight=args.not_bright_weight, alike_twins=args.alike_twins)


if __name__ == "__main__":
    sys.exit(main())

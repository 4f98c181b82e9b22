"""Train a model on a folder-per-class data set and write its model folder.

:func:`train` reads top to bottom: data, model, compile, fit, save. It only
trains; ``brain-cnn train`` then evaluates the folder
(:func:`brain_cnn.evaluation.evaluate.evaluate_model_folder`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from brain_cnn.data.carves import CALIBRATION, carve_calibration
from brain_cnn.data.dataset import DataFolder, Sample, SplitManifest, discover
from brain_cnn.data.leakage import grouped_split
from brain_cnn.data.pipeline import DecodedSplit, decode_samples, make_dataset, targets
from brain_cnn.errors import DatasetError, ModelFolderError
from brain_cnn.files import read_json, sha256_file, write_json
from brain_cnn.model.card import HISTORY_FILE, MODEL_FILE, SPLIT_FILE, ModelCard, library_versions, load_card
from brain_cnn.model.folder import load_model, LoadedModel
from brain_cnn.model.lineage import mark_starts, seen_paths
from brain_cnn.model.network import build_model
from brain_cnn.training import callbacks, resume
from brain_cnn.training.added_data import add_sources
from brain_cnn.training.balance import check_balance, training_weights
from brain_cnn.training.config import TrainConfig
from brain_cnn.training.distillation import blend, teacher_probabilities
from brain_cnn.training.distribute import choose_strategy
from brain_cnn.training.start import start_from, truncates

__all__ = ["TrainConfig", "train"]

LIMITATIONS = [
    "Classifies one 2-D slice at a time; it does not see the rest of the study.",
    "Public MRI sets hold copies of one slice (plain and mirrored) across their splits; evaluation.json gives the "
    "test figures on the unseen images beside those on all.",
    "Probabilities are temperature-scaled on the validation split; on other data they may be over- or under-confident.",
]


@dataclass
class RunData:
    """What a run trains and validates on, decoded once."""

    folder: DataFolder
    manifest: SplitManifest
    train: DecodedSplit
    validation: DecodedSplit
    added: list[dict] = field(default_factory=list)  # what each added data set contributed, for the card
    origins: dict[str, str] = field(default_factory=dict)  # the data set of each added training file
    soft_targets: np.ndarray | None = None  # the labels blended with a teacher's probabilities
    teacher: ModelCard | None = None


def train(config: TrainConfig) -> Path:
    """Train per ``config``; returns the model folder written (model, card, history, split).

    Raises:
        DatasetError: the data folder is unusable.
        ModelFolderError: the model to start from or the teacher is unusable.
    """
    import keras

    out = Path(config.out)
    _check_before_loading(config)
    settings = json.loads(json.dumps(asdict(config)))  # as the state file holds them
    state = resume.saved_state(out, settings, json.loads(json.dumps(asdict(TrainConfig(data="", out="")))))
    done = state["epoch"] if state else 0
    # A resumed run draws other shuffles and augmentations than the first part did rather than replaying epoch 1's.
    keras.utils.set_random_seed(config.seed + done)
    distribution = choose_strategy(config.strategy)
    global_batch = config.batch_size * distribution.replicas
    mixed = resume.precision(out, state, distribution.mixed_precision) if state else distribution.mixed_precision
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    out.mkdir(parents=True, exist_ok=True)

    # Data
    if state:
        print(f"resuming the interrupted run in {out}: {done} of {config.epochs} epochs done", flush=True)
    data = _run_data(config, out)
    classes = data.manifest.classes
    train_data = make_dataset(data.train, classes, global_batch, training=True, seed=config.seed,
                              augmentation=config.augmentation,
                              weights=training_weights(config, data.train, data.origins, data.folder.root.name),
                              soft_targets=data.soft_targets)
    val_data = make_dataset(data.validation, classes, global_batch, training=False)
    print(f"strategy: {distribution.name}, {distribution.replicas} replica(s), global batch {global_batch}"
          + (", mixed precision" if mixed else ""), flush=True)
    steps = -(-len(data.train.labels) // global_batch)
    if config.max_steps:
        steps = min(steps, config.max_steps)
        train_data = train_data.take(steps)

    # Model and compile
    initial = _initial_model(config)
    with distribution.strategy.scope():
        model = _network(config, len(classes))
        if initial is not None:
            start_from(model, initial.model, same_classes=initial.card.classes == classes)
        model.compile(optimizer=_optimizer(config, steps, distribution.replicas),
                      loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
        if state:
            resume.restore(model, out, state, steps)

    # Fit
    records = _fit(config, model, train_data, val_data, state, settings, mixed)
    model = _shipped(config, model, len(classes))

    # Save
    run = {"distribution": {"strategy": distribution.name, "replicas": distribution.replicas,
                            "global_batch": global_batch, "peak_learning_rate": config.learning_rate *
                            distribution.replicas, "precision": "mixed_float16" if mixed else "float32"},
           "records": records}
    _save(config, out, model, data, initial, run)
    resume.finish(out)
    return out


def _check_before_loading(config: TrainConfig) -> None:
    """What can be checked before hours of data loading."""
    for start in (config.init_from, config.teacher):
        if start and Path(start).resolve() == Path(config.out).resolve():
            # The run writes its split into OUT at once: the start's record of what it saw would be lost.
            raise ModelFolderError(f"--out {config.out} is the folder the run starts from; train into another "
                                   "folder (a copy, if the result should replace it)")
    if config.init_from and load_card(config.init_from).members:
        raise ModelFolderError(f"{config.init_from} is an ensemble; start from one of its members")
    if config.teacher:
        load_card(config.teacher)  # a missing or broken teacher fails now, not after decoding
    check_balance(config.balance)


def _split(config: TrainConfig, folder: DataFolder) -> SplitManifest:
    """The saved split the config names, or one carved from the folder."""
    if not config.split:
        # Copies of one slice (plain or turned) and the slices of one patient stay on one side of each carved split.
        return grouped_split(folder, config.seed, config.validation_fraction, config.test_fraction,
                             calibration_fraction=config.calibration_fraction)
    manifest = SplitManifest.load(config.split)
    root, data = Path(manifest.root).resolve(), folder.root.resolve()
    if root != data and root in data.parents:
        # A split over a folder of data sets (a tumour-map network's): its images of this data set, re-rooted,
        # so that a classifier can be trained on the same carve.
        prefix = data.relative_to(root).as_posix() + "/"
        splits = {name: [Sample(s.path[len(prefix):], s.label) for s in samples if s.path.startswith(prefix)]
                  for name, samples in manifest.splits.items()}
        if not splits.get("train"):
            raise DatasetError(f"the split {config.split} holds no training image of {folder.root}")
        return _with_calibration(SplitManifest(root=str(config.data), classes=list(manifest.classes),
                                               seed=manifest.seed, splits={k: v for k, v in splits.items() if v},
                                               origin=f"the {data.name} images of {config.split} ({manifest.origin})"),
                                 config)
    if root != data:
        raise DatasetError(f"the split {config.split} was made for {manifest.root}, not {folder.root}")
    return _with_calibration(manifest, config)


def _with_calibration(manifest: SplitManifest, config: TrainConfig) -> SplitManifest:
    """A saved split with ``--calibration-fraction``: the calibration carved from its training images alone, so
    its validation and test images stay as they were (a model retrained for prediction sets is compared with
    the one it may replace on the same test images).

    Raises:
        DatasetError: the split has a calibration split already.
    """
    if not config.calibration_fraction:
        return manifest
    if manifest.splits.get(CALIBRATION):
        raise DatasetError(f"the split {config.split} has a calibration split already; leave out "
                           "--calibration-fraction to use it")
    return carve_calibration(manifest, config.calibration_fraction, config.seed)


def _run_data(config: TrainConfig, out: Path) -> RunData:
    """The split (saved into ``out``), added data sets, both splits decoded, and a teacher's targets."""
    folder = discover(config.data)
    if len(folder.classes) < 2:
        raise DatasetError(f"{folder.root} has only one class ({folder.classes}); need at least two")
    manifest = _split(config, folder)
    classes = manifest.classes
    added, origins = add_sources(config, folder.root, manifest)
    manifest.save(out / SPLIT_FILE)
    print(f"data: {folder.root}  classes: {len(classes)}  " + "  ".join(
        f"{split} {sum(c.values())}" for split, c in manifest.counts().items()), flush=True)
    if folder.skipped:
        print("skipped: " + ", ".join(f"{n} {why}" for why, n in folder.skipped.items()), flush=True)
    started = time.perf_counter()
    decoded = [decode_samples(manifest.splits[s], folder.root, classes, config.image_size)
               for s in ("train", "validation")]
    for split in decoded:
        for path, reason in split.unreadable:
            print(f"warning: skipped unreadable {reason}", file=sys.stderr)
    print(f"decoded {sum(len(s.files) for s in decoded)} images in {time.perf_counter() - started:.0f}s", flush=True)
    data = RunData(folder, manifest, decoded[0], decoded[1], added, origins)
    if config.teacher:
        _teach(config, data)
    return data


def _teach(config: TrainConfig, data: RunData) -> None:
    """Blend the teacher's probabilities on the training images into their targets (distillation)."""
    started = time.perf_counter()
    classes = data.manifest.classes
    taught, data.teacher = teacher_probabilities(config.teacher, data.train.images, classes, config.image_size)
    data.soft_targets = blend(targets(data.train.labels, classes), taught, config.teacher_weight,
                              config.teacher_temperature)
    agree = float(np.mean(taught.argmax(1) == data.train.labels))
    print(f"teacher {data.teacher.name}: probabilities for {len(taught)} training images in "
          f"{time.perf_counter() - started:.0f}s (its call agrees with the label on {agree:.1%})", flush=True)


def _initial_model(config: TrainConfig) -> LoadedModel | None:
    """The model whose weights start the run, if any."""
    if not config.init_from:
        return None
    initial = load_model(config.init_from)
    if initial.card.image_size != config.image_size:
        # The network is convolutions and global pooling, so its weights fit any input size;
        # fine-tuning at a larger one is how a model trained small is moved to a finer grid
        # (Touvron et al., 2019, arXiv:1906.06423).
        print(f"fine-tuning {initial.card.image_size} px weights at {config.image_size} px", flush=True)
    return initial


def _network(config: TrainConfig, num_classes: int):
    """The run's network as its configuration describes it."""
    return build_model(num_classes, config.image_size, 1, config.width, config.depth, config.dropout,
                       config.pooling, config.dilate_last_stage, config.brain_only, config.standardise)


def _optimizer(config: TrainConfig, steps: int, replicas: int):
    """AdamW on a cosine schedule with a warm-up of one epoch (at most half the run); the peak scales with replicas."""
    import keras

    total_steps = max(1, steps * config.epochs)
    peak = config.learning_rate * replicas  # linear scaling rule
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10,
        decay_steps=total_steps - min(steps, total_steps // 2),
        warmup_target=peak,
        warmup_steps=min(steps, total_steps // 2),
        alpha=0.01,
    )
    return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, use_ema=config.ema_momentum > 0,
                                  ema_momentum=config.ema_momentum)


def _fit(config: TrainConfig, model, train_data, val_data, state, settings: dict, mixed: bool) -> list[dict]:
    """Fit (or go on fitting a resumed run), keeping the best validation loss's weights; returns the epochs' records."""
    import keras

    out = Path(config.out)
    checkpoint = out / "best.weights.h5"
    records = list(state["records"]) if state else []
    steps = []
    if config.ema_momentum > 0:  # the swap goes first so that validation and the checkpoint see the averaged weights
        steps.append(callbacks.averaged_weights(train_data))
        if state:
            steps[0].resumed()
    steps += [
        keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True, save_weights_only=True,
                                        initial_value_threshold=min((r["val_loss"] for r in records), default=None)),
        callbacks.early_stopping(config.patience, records),
        resume.state_saver(out, settings, records, mixed),
        callbacks.epoch_logger(config.epochs),
    ]
    if not (state and state["stopped"]):
        model.fit(train_data, validation_data=val_data, epochs=config.epochs,
                  initial_epoch=state["epoch"] if state else 0, callbacks=steps,
                  shuffle=False,  # the tf.data pipeline shuffles
                  verbose=1 if sys.stdout.isatty() else 0)
    model.load_weights(checkpoint)
    checkpoint.unlink()
    return records


def _shipped(config: TrainConfig, model, num_classes: int):
    """An uncompiled float32 copy: no optimizer state (a third of the size), and it runs everywhere, CPUs included,
    whatever precision trained it."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    shipped = _network(config, num_classes)
    shipped.set_weights(model.get_weights())
    return shipped


def _history_of(folder: Path) -> dict:
    """A model folder's training history without what it was itself initialised from; empty if none."""
    history = read_json(folder / HISTORY_FILE, default={})
    return {"best_epoch": history.get("best_epoch"), "epochs": history.get("epochs", [])} if history else {}


def _save(config: TrainConfig, out: Path, model, data: RunData, initial: LoadedModel | None,
          run: dict[str, Any]) -> None:
    """Write the weights, the history and the card."""
    records = run["records"]
    seconds = sum(r["seconds"] for r in records)
    best_epoch = int(np.argmin([r["val_loss"] for r in records])) + 1
    history = {"best_epoch": best_epoch, "epochs": records}
    if initial is not None:  # the run this one continues, so the whole path to the weights stays visible
        history["initialised_from"] = {"name": initial.card.name, **_history_of(Path(config.init_from))}
    write_json(out / HISTORY_FILE, history)
    model.save(out / MODEL_FILE)
    card = ModelCard(
        name=config.name or out.name,
        classes=data.manifest.classes,
        image_size=config.image_size,
        channels=1,
        dataset=_dataset_entry(config, data),
        training={**_training_entry(config, data, initial), "epochs_run": len(records), "best_epoch": best_epoch,
                  "seconds": round(seconds, 1),  # the epochs' time, summed over the parts of a resumed run
                  "parameters": int(model.count_params()), "distribution": run["distribution"]},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=library_versions(),
        limitations=[LIMITATIONS[0],
                     f"Trained on {', '.join([data.folder.root.name] + [r['name'] for r in data.added if 'label_map' in r])}; "
                     "see external.json and loso.json for where it was and was not validated.", *LIMITATIONS[1:]],
        sha256=sha256_file(out / MODEL_FILE),
    )
    card.save(out)
    print(f"saved {out} (best epoch {best_epoch}/{len(records)}, {seconds / 60:.1f} min)", flush=True)


def _dataset_entry(config: TrainConfig, data: RunData) -> dict[str, Any]:
    """The card's account of the data: the folder, the split, counts, added and held-out data sets."""
    return {
        "name": data.folder.root.name,
        "root": str(data.folder.root),
        "split": data.manifest.origin,
        "counts": data.manifest.counts(),
        "skipped": dict(data.folder.skipped),
        "unreadable": len(data.train.unreadable) + len(data.validation.unreadable),
        **({"sources": data.added} if data.added else {}),
        **({"held_out": [Path(e).name for e in config.exclude]} if config.exclude else {}),
    }


def _training_entry(config: TrainConfig, data: RunData, initial: LoadedModel | None) -> dict[str, Any]:
    """The card's account of the recipe: settings, starting weights, teacher, optimizer and loss."""
    teacher = data.teacher
    entry = {k: v for k, v in asdict(config).items()
             if k not in ("data", "out", "name", "split", "init_from", "add_data", "exclude", "teacher")
             and not (k.startswith("teacher_") and not config.teacher)}
    if initial is not None:
        same_head = initial.card.classes == data.manifest.classes and not truncates(initial.model, config.depth)
        entry["initialised_from"] = mark_starts({
            "name": initial.card.name, "folder": str(config.init_from), "sha256": initial.card.sha256,
            "classes": initial.card.classes, "dataset": initial.card.dataset.get("name"),
            "head": "kept" if same_head else "new", "training": initial.card.training}, seen_paths(data.manifest))
    if teacher is not None:
        entry["teacher"] = mark_starts({"name": teacher.name, "folder": str(config.teacher), "sha256": teacher.sha256,
                                        "training": teacher.training}, seen_paths(data.manifest))
    entry["optimizer"] = ("AdamW, cosine decay with 1-epoch warm-up"
                          + (f", weight averaging (EMA {config.ema_momentum}, batch-norm statistics re-estimated "
                             "for the averaged weights)" if config.ema_momentum > 0 else ""))
    entry["loss"] = ("categorical cross-entropy, "
                     + ("weights balanced over (data set, class) cells" if config.balance == "source"
                        else "balanced class weights")
                     + ("; tumours of unstated type spread over the tumour classes" if data.added else "")
                     + (f"; targets blend the labels with the teacher's probabilities (weight "
                        f"{config.teacher_weight}, temperature {config.teacher_temperature})" if teacher else ""))
    return entry

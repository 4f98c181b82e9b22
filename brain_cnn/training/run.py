"""Train a model on a folder-per-class data set and write its model folder.

Reads top to bottom: data, model, compile, fit, save, evaluate.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from brain_cnn.training import resume
from brain_cnn.data.dataset import SplitManifest, discover
from brain_cnn.errors import DatasetError, ModelFolderError
from brain_cnn.data.leakage import grouped_split
from brain_cnn.model.network import CLASS_MAPS_LAYER, LAST_CONV_LAYER
from brain_cnn.model.folder import HISTORY_FILE, MODEL_FILE, SPLIT_FILE, ModelCard, load_card, sha256_file
from brain_cnn.data.pipeline import decode_samples, make_dataset

__all__ = ["TrainConfig", "train", "library_versions"]


@dataclass
class TrainConfig:
    """Everything that decides a training run; saved in the model card."""

    data: str
    out: str
    epochs: int = 40
    image_size: int = 160
    width: int = 32
    depth: int = 4
    dropout: float = 0.3
    pooling: str = "average"  # the head: "average" or "max" (see brain_cnn.model.network)
    dilate_last_stage: bool = False  # a last block twice as fine (see brain_cnn.model.network)
    brain_only: bool = False  # the network sees the brain only, not skull, scalp or background (brain_cnn.model.layers)
    standardise: bool = False  # each slice's head to one mean and spread of grey levels (brain_cnn.model.layers)
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    # Polyak averaging of the weights (0 = off): validation, checkpoints and the shipped
    # model use the exponential moving average, which steadies the epoch-to-epoch swings.
    ema_momentum: float = 0.0
    patience: int = 10
    validation_fraction: float = 0.1
    test_fraction: float = 0.15
    seed: int = 42
    augmentation: str | None = "standard"  # None, "standard", "scanner" or "sequence" (see brain_cnn.data.pipeline)
    # "class": each class weighs the same in the loss; "source": each (data set, class) cell does, so no
    # data set's class mix (e.g. one set's normals, another's tumours) can stand in for the label
    balance: str = "class"
    strategy: str = "auto"  # see brain_cnn.training.distribute
    init_from: str | None = None  # a model folder whose weights start the run (fine-tuning)
    teacher: str | None = None  # a model folder whose probabilities blend into the targets (brain_cnn.training.distillation)
    teacher_weight: float = 0.5  # the teacher's share of each target
    teacher_temperature: float = 2.0  # softens the teacher's probabilities before blending
    split: str | None = None  # a saved split manifest to use instead of making one (e.g. from `audit --write-split`)
    add_data: list[str] = field(default_factory=list)  # more data sets for training: "DIR" or "DIR=MAP.json"
    exclude: list[str] = field(default_factory=list)  # held-out folders: their copies leave training
    max_steps: int | None = None  # steps per epoch cap, for smoke tests
    name: str | None = None


def library_versions() -> dict[str, str]:
    import cv2
    import keras
    import PIL
    import sklearn
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "pillow": PIL.__version__,
        "opencv": cv2.__version__,
    }


def _epoch_logger(total_epochs: int):
    import keras

    class EpochLine(keras.callbacks.Callback):
        """One line per epoch: the figures a person watches."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            print(
                f"epoch {epoch + 1:3d}/{total_epochs}  loss {logs.get('loss', float('nan')):.4f}  "
                f"acc {logs.get('accuracy', float('nan')):.4f}  val_loss {logs.get('val_loss', float('nan')):.4f}  "
                f"val_acc {logs.get('val_accuracy', float('nan')):.4f}  {time.perf_counter() - self.started:.0f}s",
                flush=True,
            )

    return EpochLine()


def _averaged_weights(batches, refresh_steps: int = 50):
    """Swap the optimizer's moving average of the weights in for validation and checkpoints.

    Batch-normalisation statistics belong to the weights that produced them, so
    after the swap they are re-estimated on ``refresh_steps`` training batches
    (the "BN update" of stochastic weight averaging, Izmailov et al., 2018,
    arXiv:1803.05407); otherwise averaged weights are judged with the raw
    weights' statistics.
    """
    import keras
    import tensorflow as tf

    class AveragedWeights(keras.callbacks.SwapEMAWeights):
        def resumed(self):
            """A resumed run's weights were saved at an epoch's end, with the average swapped in."""
            self._ema_weights_in_model = True

        def set_model(self, model):
            super().set_model(model)
            # Calling the model in training mode updates only the moving statistics here:
            # no gradient step is taken.
            self._refresh = tf.function(lambda x: model(x, training=True))

        def on_test_begin(self, logs=None):
            super().on_test_begin(logs)
            for x, *_ in batches.repeat().take(refresh_steps):  # repeat: a small set may have fewer batches
                self._refresh(x)

    return AveragedWeights(swap_on_epoch=True)


def _early_stopping(patience: int, records: list[dict]):
    """Early stopping on validation loss that, in a resumed run, counts the epochs run before."""
    import keras

    class EarlyStopping(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if records:
                losses = [r["val_loss"] for r in records]
                self.best = min(losses)
                self.wait = len(losses) - 1 - int(np.argmin(losses))

    return EarlyStopping(monitor="val_loss", patience=patience)


def _sample_weights(labels: np.ndarray, sources: list[str] | None = None) -> np.ndarray:
    """Balanced weights per sample: each class (and the unstated-type tumours, label -1) weighs the same in total;
    with ``sources`` (each sample's data set), each (data set, class) cell does.

    Balancing the cells rather than the classes is the group balancing of Idrissi et al. (2022) against
    shortcuts: when one set brings most normals and another most tumours, the source predicts the label
    under class weights, and no longer under cell weights.
    """
    from sklearn.utils.class_weight import compute_class_weight

    groups = labels.astype(str) if sources is None else np.char.add(np.asarray(sources, dtype=str),
                                                                  "\0" + labels.astype(str))
    present, index = np.unique(groups, return_inverse=True)
    weights = compute_class_weight("balanced", classes=present, y=groups)
    return weights[index].astype(np.float32)


def _check_balance(balance: str) -> None:
    if balance not in ("class", "source"):
        raise DatasetError(f"unknown balance {balance!r}: 'class' or 'source'")


def _training_weights(config: TrainConfig, split, origins: dict[str, str], main: str) -> np.ndarray:
    """The loss weight of each training image, per ``config.balance`` (checked when the run starts)."""
    if config.balance == "class":
        return _sample_weights(split.labels)
    sources = [origins.get(path, main) for path in split.files]
    counts = Counter(sources)
    print("balanced over data set and class: " + ", ".join(f"{n} {s}" for s, n in counts.items()), flush=True)
    return _sample_weights(split.labels, sources)


def _history_of(folder: Path) -> dict:
    """A model folder's training history without what it was itself initialised from; empty if none."""
    try:
        history = json.loads((folder / HISTORY_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {"best_epoch": history.get("best_epoch"), "epochs": history.get("epochs", [])}


def _network(config: TrainConfig, num_classes: int):
    """The run's network as its configuration describes it."""
    from brain_cnn.model.network import build_model

    return build_model(num_classes, config.image_size, 1, config.width, config.depth, config.dropout,
                       config.pooling, config.dilate_last_stage, config.brain_only, config.standardise)


def _head_weights(initial, name: str) -> list:
    """``initial``'s weights for head layer ``name``, carried across the two heads of :mod:`brain_cnn.model.network`
    (the dense layer is the 1x1 class-map convolution with its kernel flattened)."""
    names = {layer.name for layer in initial.layers}
    if name == CLASS_MAPS_LAYER and CLASS_MAPS_LAYER not in names:
        kernel, bias = initial.get_layer("probabilities").get_weights()
        return [kernel[None, None], bias]
    if name == "probabilities" and CLASS_MAPS_LAYER in names:
        kernel, bias = initial.get_layer(CLASS_MAPS_LAYER).get_weights()
        return [kernel[0, 0], bias]
    return initial.get_layer(name).get_weights()


def _truncates(initial, depth: int) -> bool:
    """Whether a ``depth``-stage network starts from the first stages of the deeper ``initial``."""
    return any(layer.name == f"stage{depth - 1}_b_conv" for layer in initial.layers)


def _start_from(model, initial, same_classes: bool) -> None:
    """Copy ``initial``'s weights into ``model``: all of them for the same classes (fine-tuning),
    else every layer but the softmax head (transfer learning, e.g. to a small binary set).

    A shallower network takes the first ``depth`` stages of a deeper one (its last block is that
    network's ``stage{depth-1}_b``) and a new head, which reads other features. Fewer stages see a
    smaller part of the slice at each place of the last block (67 px instead of 139 px at depth 3),
    so with the max head a class must be found in one region of the slice.
    """
    depth = sum(layer.name.startswith("stage") and layer.name.endswith("_a_conv") for layer in model.layers)
    truncated = _truncates(initial, depth)
    for layer in model.layers:
        head = layer.name in ("probabilities", CLASS_MAPS_LAYER)
        if not layer.weights or (head and (truncated or not same_classes)):
            continue
        source = layer.name
        if truncated and source.startswith(LAST_CONV_LAYER):
            source = f"stage{depth - 1}_b" + source[len(LAST_CONV_LAYER):]
        try:
            layer.set_weights(_head_weights(initial, source))
        except ValueError as error:  # a missing layer or another shape: not the same architecture
            raise DatasetError(f"the model to start from does not have this run's architecture "
                               f"(layer {layer.name}: {error}); give the same --width and --depth, "
                               f"or a smaller --depth to start from its first stages") from None


def _add_sources(config: TrainConfig, root: Path, manifest: SplitManifest) -> tuple[list[dict], dict[str, str]]:
    """Add ``config.add_data`` to the training split and remove copies of held-out images.

    Changes ``manifest`` in place; returns what each added set contributed, for the card, and the data
    set of each added training file (the files of ``root`` itself are not listed).
    """
    if not config.add_data and not config.exclude:
        return [], {}
    from brain_cnn.data.sources import content_hashes, drop_near_duplicates, folder_hashes, mapped_samples, parse_source

    excluded = folder_hashes(config.exclude) if config.exclude else None
    reports, origins = [], {}
    if excluded is not None:
        train_hashes = content_hashes(root, manifest.splits["train"])
        manifest.splits["train"], dropped = drop_near_duplicates(manifest.splits["train"], train_hashes, excluded)
        # The validation split picks the checkpoint, so a held-out source must not be in it either
        # (the main set may hold copies of it: brain-tumor-mri contains most of SARTAJ).
        validation = manifest.splits.get("validation", [])
        manifest.splits["validation"], from_validation = drop_near_duplicates(
            validation, content_hashes(root, validation), excluded)
        if validation and not manifest.splits["validation"]:
            raise DatasetError(f"every validation image of {root.name} is a copy of an image of "
                               f"{', '.join(config.exclude)}; nothing is left to choose the checkpoint on")
        reports.append({"name": root.name, "excluded_near_duplicates_of_held_out": dropped,
                        "excluded_from_validation": from_validation})
        print(f"held out {', '.join(Path(e).name for e in config.exclude)}: {dropped} training and "
              f"{from_validation} validation images of {root.name} dropped as copies", flush=True)
    held = [s for split in ("validation", "test") for s in manifest.splits.get(split, [])]
    held_hashes = content_hashes(root, held)
    for text in config.add_data:
        samples, report = mapped_samples(parse_source(text), root, manifest.classes)
        hashes = content_hashes(root, samples)
        samples, leaking = drop_near_duplicates(samples, hashes, held_hashes)
        dropped = 0
        if excluded is not None:  # the hashes of every mapped sample cover the ones still kept
            samples, dropped = drop_near_duplicates(samples, hashes, excluded)
        manifest.splits["train"] += samples
        origins.update((sample.path, report.data_set) for sample in samples)
        reports.append({"name": report.name, "data_set": report.data_set, "label_map": report.label_map,
                        "used": report.used,
                        "left_out": report.left_out, "near_duplicates_of_validation_or_test": leaking,
                        "excluded_near_duplicates_of_held_out": dropped, "training_images": len(samples)})
        print(f"added {report.name}: {len(samples)} training images ({leaking} copies of "
              f"validation/test and {dropped} of held-out folders dropped)", flush=True)
    if config.add_data:
        manifest.origin += "; training adds " + ", ".join(r["name"] for r in reports if "label_map" in r)
    if config.exclude:
        manifest.origin += f"; copies of {', '.join(Path(e).name for e in config.exclude)} removed"
    return reports, origins


def train(config: TrainConfig, evaluate_after: bool = True) -> Path:
    """Train per ``config``; returns the model folder written.

    Raises:
        DatasetError: the data folder is unusable.
    """
    import keras

    from brain_cnn.training.distribute import choose_strategy

    out = Path(config.out)
    if config.init_from and load_card(config.init_from).members:  # checked before hours of data loading
        raise ModelFolderError(f"{config.init_from} is an ensemble; start from one of its members")
    if config.teacher:
        load_card(config.teacher)  # a missing or broken teacher fails now, not after decoding
    _check_balance(config.balance)
    settings = json.loads(json.dumps(asdict(config)))  # as the state file holds them
    defaults = json.loads(json.dumps(asdict(TrainConfig(data="", out=""))))
    state = resume.saved_state(out, settings, defaults)
    done = state["epoch"] if state else 0
    # A resumed run draws other shuffles and augmentations than the first part did
    # rather than replaying epoch 1's.
    keras.utils.set_random_seed(config.seed + done)
    distribution = choose_strategy(config.strategy)
    replicas = distribution.replicas
    global_batch = config.batch_size * replicas
    mixed = resume.precision(out, state, distribution.mixed_precision) if state else distribution.mixed_precision
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    out.mkdir(parents=True, exist_ok=True)

    # Data
    folder = discover(config.data)
    if len(folder.classes) < 2:
        raise DatasetError(f"{folder.root} has only one class ({folder.classes}); need at least two")
    if state:
        print(f"resuming the interrupted run in {out}: {done} of {config.epochs} epochs done", flush=True)
    if config.split:
        manifest = SplitManifest.load(config.split)
        if Path(manifest.root).resolve() != folder.root.resolve():
            raise DatasetError(f"the split {config.split} was made for {manifest.root}, not {folder.root}")
    else:
        # Copies of one slice (plain or turned) and the slices of one patient stay on one side of each carved split.
        manifest = grouped_split(folder, config.seed, config.validation_fraction, config.test_fraction)
    classes = manifest.classes
    added, origins = _add_sources(config, folder.root, manifest)
    manifest.save(out / SPLIT_FILE)
    print(f"data: {folder.root}  classes: {len(classes)}  " + "  ".join(
        f"{split} {sum(c.values())}" for split, c in manifest.counts().items()
    ), flush=True)
    if folder.skipped:
        print("skipped: " + ", ".join(f"{n} {why}" for why, n in folder.skipped.items()), flush=True)
    started = time.perf_counter()
    train_split = decode_samples(manifest.splits["train"], folder.root, classes, config.image_size)
    val_split = decode_samples(manifest.splits["validation"], folder.root, classes, config.image_size)
    for split in (train_split, val_split):
        for path, reason in split.unreadable:
            print(f"warning: skipped unreadable {reason}", file=sys.stderr)
    print(f"decoded {len(train_split.files) + len(val_split.files)} images in "
          f"{time.perf_counter() - started:.0f}s", flush=True)
    soft_targets, teacher_card = None, None
    if config.teacher:
        from brain_cnn.training.distillation import blend, teacher_probabilities
        from brain_cnn.data.pipeline import targets

        started = time.perf_counter()
        taught, teacher_card = teacher_probabilities(config.teacher, train_split.images, classes, config.image_size)
        soft_targets = blend(targets(train_split.labels, classes), taught, config.teacher_weight,
                             config.teacher_temperature)
        agree = float(np.mean(taught.argmax(1) == train_split.labels))
        print(f"teacher {teacher_card.name}: probabilities for {len(taught)} training images in "
              f"{time.perf_counter() - started:.0f}s (its call agrees with the label on {agree:.1%})", flush=True)
    train_data = make_dataset(train_split, classes, global_batch, training=True, seed=config.seed,
                              augmentation=config.augmentation,
                              weights=_training_weights(config, train_split, origins, folder.root.name),
                              soft_targets=soft_targets)
    val_data = make_dataset(val_split, classes, global_batch, training=False)
    print(f"strategy: {distribution.name}, {replicas} replica(s), global batch {global_batch}"
          + (", mixed precision" if mixed else ""), flush=True)

    # Model
    steps = -(-len(train_split.labels) // global_batch)
    if config.max_steps:
        steps = min(steps, config.max_steps)
        train_data = train_data.take(steps)
    total_steps = max(1, steps * config.epochs)
    peak = config.learning_rate * replicas  # linear scaling rule
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10,
        decay_steps=total_steps - min(steps, total_steps // 2),
        warmup_target=peak,
        warmup_steps=min(steps, total_steps // 2),
        alpha=0.01,
    )
    initial = None
    if config.init_from:
        from brain_cnn.model.folder import load_model

        initial = load_model(config.init_from)
        if initial.card.image_size != config.image_size:
            # The network is convolutions and global pooling, so its weights fit any input size;
            # fine-tuning at a larger one is how a model trained small is moved to a finer grid
            # (Touvron et al., 2019, arXiv:1906.06423).
            print(f"fine-tuning {initial.card.image_size} px weights at {config.image_size} px", flush=True)
    with distribution.strategy.scope():
        model = _network(config, len(classes))
        if initial is not None:
            _start_from(model, initial.model, same_classes=initial.card.classes == classes)
        model.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay,
                                             use_ema=config.ema_momentum > 0,
                                             ema_momentum=config.ema_momentum),
            loss=keras.losses.CategoricalCrossentropy(),
            metrics=["accuracy"],
        )
        if state:
            resume.restore(model, out, state, steps)

    # Fit
    checkpoint = out / "best.weights.h5"
    records = list(state["records"]) if state else []
    callbacks = []
    if config.ema_momentum > 0:  # the swap goes first so that validation and the checkpoint see the averaged weights
        callbacks.append(_averaged_weights(train_data))
        if state:
            callbacks[0].resumed()
    callbacks += [
        keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True, save_weights_only=True,
                                        initial_value_threshold=min((r["val_loss"] for r in records), default=None)),
        _early_stopping(config.patience, records),
        resume.state_saver(out, settings, records, mixed),
        _epoch_logger(config.epochs),
    ]
    if not (state and state["stopped"]):
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.epochs,
            initial_epoch=done,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=1 if sys.stdout.isatty() else 0,
        )
    seconds = sum(r["seconds"] for r in records)
    model.load_weights(checkpoint)
    checkpoint.unlink()
    # Ship an uncompiled float32 copy: no optimizer state (a third of the size),
    # and it runs everywhere, CPUs included, whatever precision trained it.
    keras.mixed_precision.set_global_policy("float32")
    shipped = _network(config, len(classes))
    shipped.set_weights(model.get_weights())
    model = shipped

    # Save
    epochs_run = len(records)
    best_epoch = int(np.argmin([r["val_loss"] for r in records])) + 1
    history_record = {"best_epoch": best_epoch, "epochs": records}
    if initial is not None:  # the run this one continues, so the whole path to the weights stays visible
        same_head = initial.card.classes == classes and not _truncates(initial.model, config.depth)
        history_record["initialised_from"] = {"name": initial.card.name, **_history_of(Path(config.init_from))}
    (out / HISTORY_FILE).write_text(json.dumps(history_record, indent=1))
    model.save(out / MODEL_FILE)
    card = ModelCard(
        name=config.name or out.name,
        classes=classes,
        image_size=config.image_size,
        channels=1,
        dataset={
            "name": folder.root.name,
            "root": str(folder.root),
            "split": manifest.origin,
            "counts": manifest.counts(),
            "skipped": dict(folder.skipped),
            "unreadable": len(train_split.unreadable) + len(val_split.unreadable),
            **({"sources": added} if added else {}),
            **({"held_out": [Path(e).name for e in config.exclude]} if config.exclude else {}),
        },
        training={
            **{k: v for k, v in asdict(config).items()
               if k not in ("data", "out", "name", "split", "init_from", "add_data", "exclude", "teacher")
               and not (k.startswith("teacher_") and not config.teacher)},
            **({"initialised_from": {"name": initial.card.name, "folder": str(config.init_from), "sha256": initial.card.sha256,
                                     "classes": initial.card.classes, "dataset": initial.card.dataset.get("name"),
                                     "head": "kept" if same_head else "new",
                                     "training": initial.card.training}} if initial is not None else {}),
            **({"teacher": {"name": teacher_card.name, "folder": str(config.teacher), "sha256": teacher_card.sha256,
                            "training": teacher_card.training}} if teacher_card is not None else {}),
            "epochs_run": epochs_run,
            "best_epoch": best_epoch,
            "seconds": round(seconds, 1),  # the epochs' time, summed over the parts of a resumed run
            "parameters": int(model.count_params()),
            "optimizer": "AdamW, cosine decay with 1-epoch warm-up"
                         + (f", weight averaging (EMA {config.ema_momentum}, batch-norm statistics re-estimated "
                            "for the averaged weights)" if config.ema_momentum > 0 else ""),
            "distribution": {"strategy": distribution.name, "replicas": replicas, "global_batch": global_batch,
                             "peak_learning_rate": peak,
                             "precision": "mixed_float16" if mixed else "float32"},
            "loss": "categorical cross-entropy, "
                    + ("weights balanced over (data set, class) cells" if config.balance == "source"
                       else "balanced class weights")
                    + ("; tumours of unstated type spread over the tumour classes" if added else "")
                    + (f"; targets blend the labels with the teacher's probabilities (weight "
                       f"{config.teacher_weight}, temperature {config.teacher_temperature})" if teacher_card else ""),
        },
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=library_versions(),
        limitations=[
            "Classifies one 2-D slice at a time; it does not see the rest of the study.",
            f"Trained on {', '.join([folder.root.name] + [r['name'] for r in added if 'label_map' in r])}; "
            "see external.json and loso.json for where it was and was not validated.",
            "Public MRI sets hold copies of one slice (plain and mirrored) across their splits; evaluation.json gives the test figures on the unseen images beside those on all.",
            "Probabilities are temperature-scaled on the validation split; on other data they may be over- or under-confident.",
        ],
        sha256=sha256_file(out / MODEL_FILE),
    )
    card.save(out)
    resume.finish(out)
    print(f"saved {out} (best epoch {best_epoch}/{epochs_run}, {seconds / 60:.1f} min)", flush=True)

    # Evaluate on the held-out splits of the same manifest
    if evaluate_after:
        from brain_cnn.evaluation.evaluate import evaluate_model_folder

        evaluate_model_folder(out, data=folder.root)
    return out


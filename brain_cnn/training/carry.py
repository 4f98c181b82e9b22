"""An interrupted ``brain-cnn train`` run carried to another machine in one file small enough to commit.

A run keeps its state in its folder (``OUT/resume/``, :mod:`brain_cnn.training.resume`, and the best epoch's
checkpoint ``OUT/best.weights.h5``): Keras weight files with the optimizer's moments in float32, three times
the network. ``pack`` writes the same state in :mod:`brain_cnn.training.run_state`'s format (the moments as
bfloat16; the best epoch's weights as float16, only ever used if no later epoch beats it); ``unpack`` puts it
back into a run folder on a fresh clone, and the run's own command then goes on where it stopped::

    python -m brain_cnn.training.carry pack runs/mri-c training-state/mri-c.npz
    python -m brain_cnn.training.carry unpack training-state/mri-c.npz runs/mri-c
    brain-cnn train ...the run's own options...   # resumes

A chain of runs that has finished but is not shipped yet (members waiting for the model they will join) is
carried the same way, as its finished folders' files, byte for byte (the card's checksum checks the weights)::

    python -m brain_cnn.training.carry keep runs/mri-c runs/multisource-c training-state/classifiers-v2.npz
    python -m brain_cnn.training.carry restore training-state/classifiers-v2.npz runs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from brain_cnn.data.dataset import SplitManifest
from brain_cnn.errors import BrainCnnError
from brain_cnn.files import read_json, sha256_file, write_json
from brain_cnn.model.card import CARD_FILE, HISTORY_FILE, MODEL_FILE, SPLIT_FILE
from brain_cnn.training import run_state
from brain_cnn.training.config import TrainConfig
from brain_cnn.training.resume import RESUME_DIR, STATE_FILE
from brain_cnn.training.run import _network, _optimizer

__all__ = ["pack", "unpack", "keep", "restore", "BEST_FILE", "FINISHED_FILES"]

BEST_FILE = "best.weights.h5"  # the checkpoint brain_cnn.training.run keeps of the best epoch so far
FINISHED_FILES = (MODEL_FILE, CARD_FILE, SPLIT_FILE, HISTORY_FILE)  # what every finished run's folder holds


def _compiled(settings: dict, classes: int):
    """The run's network, compiled with its optimizer built, as the run builds it (the schedule's shape does not
    matter here: only the optimizer's variables are carried)."""
    import keras

    config = TrainConfig(**settings)
    model = _network(config, classes)
    model.compile(optimizer=_optimizer(config, 1, 1), loss=keras.losses.CategoricalCrossentropy(),
                  metrics=["accuracy"])
    model.optimizer.build(model.trainable_variables)
    return model


def _classes(out: Path) -> int:
    return len(SplitManifest.load(out / SPLIT_FILE).classes)


def pack(out: str | Path, path: str | Path) -> Path:
    """Write the interrupted run in ``out`` as one file at ``path``; returns ``path``.

    Raises:
        BrainCnnError: no interrupted run there, or one that has stopped (let it finish instead).
    """
    out, path = Path(out), Path(path)
    state_file = out / RESUME_DIR / STATE_FILE
    if not state_file.is_file():
        raise BrainCnnError(f"{out} holds no interrupted run ({state_file} is missing)")
    state = read_json(state_file)
    if state.get("stopped") or state.get("precision") != "float32":
        raise BrainCnnError(f"the run in {out} has stopped early or trains in mixed precision: run its command "
                            "to let it finish instead")
    classes = _classes(out)
    model = _compiled(state["settings"], classes)
    model.load_weights(out / RESUME_DIR / state["weights"])
    best = None
    if (out / BEST_FILE).is_file():
        kept = _compiled(state["settings"], classes)
        kept.load_weights(out / BEST_FILE)
        best = [w.astype(np.float16) for w in kept.get_weights()]
    records = state["records"]
    best_epoch = int(np.argmin([r["val_loss"] for r in records])) + 1 if records else None
    run_state.save_state(path, model, int(state["epoch"]), state["settings"], records, None, "",
                         best, best_epoch if best is not None else None)
    return path


def unpack(path: str | Path, out: str | Path) -> Path:
    """Put the run packed at ``path`` into the run folder ``out`` (its split manifest is rewritten by the run
    itself); returns ``out``.

    Raises:
        BrainCnnError: ``out`` already holds an interrupted run, or the file cannot be read.
    """
    path, out = Path(path), Path(out)
    if (out / RESUME_DIR / STATE_FILE).is_file():
        raise BrainCnnError(f"{out} already holds an interrupted run; delete {out / RESUME_DIR} to replace it")
    state = run_state.load_state(path)
    settings = {**state["settings"], "out": str(out)}  # the run goes on in this folder, under the same recipe
    config = TrainConfig(**settings)
    if config.split:
        classes = len(SplitManifest.load(config.split).classes)
    else:
        from brain_cnn.data.dataset import discover

        classes = len(discover(config.data).classes)
    model = _compiled(settings, classes)
    run_state.restore(model, state)
    folder = out / RESUME_DIR
    folder.mkdir(parents=True, exist_ok=True)
    weights = f"epoch-{state['epoch']}.weights.h5"
    model.save_weights(folder / weights)
    if state["candidate"] is not None:
        kept = _compiled(settings, classes)
        kept.set_weights([w.astype(np.float32) for w in state["candidate"]])
        kept.save_weights(out / BEST_FILE)
    write_json(folder / STATE_FILE, {"settings": settings, "epoch": state["epoch"], "weights": weights,
                                     "precision": "float32", "stopped": False, "records": state["history"]})
    return out


def keep(runs: list[str | Path], path: str | Path) -> Path:
    """Write finished run folders' files (:data:`FINISHED_FILES`, and what an evaluation added beside them)
    into one file at ``path``; returns ``path``.

    Raises:
        BrainCnnError: a run has not finished (an interrupted one is packed with :func:`pack`), or two share a
            name.
    """
    files = {}
    for run in map(Path, runs):
        if (run / RESUME_DIR).is_dir() or not all((run / name).is_file() for name in FINISHED_FILES):
            raise BrainCnnError(f"{run} is not a finished run ({', '.join(FINISHED_FILES)}, no {RESUME_DIR}/)")
        if any(key.startswith(f"{run.name}/") for key in files):
            raise BrainCnnError(f"two runs are named {run.name}")
        for file in sorted(p for p in run.iterdir() if p.is_file() and p.name != BEST_FILE):
            files[f"{run.name}/{file.name}"] = np.frombuffer(file.read_bytes(), np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # numpy adds .npz to a name without it; the name given is kept
        np.savez_compressed(handle, **files)  # the splits are JSON text; the weights barely shrink
    return path


def restore(path: str | Path, into: str | Path) -> list[Path]:
    """Write the runs kept at ``path`` (:func:`keep`) as folders under ``into``; returns them.

    Raises:
        BrainCnnError: the file holds no kept runs, a folder there already holds other weights, or a model's
            checksum does not match its card.
    """
    try:
        with np.load(path) as kept:
            files = {key: kept[key].tobytes() for key in kept.files}
    except (OSError, ValueError) as error:
        raise BrainCnnError(f"{path} cannot be read: {error}") from None
    runs = sorted({key.split("/")[0] for key in files if key.endswith(f"/{MODEL_FILE}")})
    if not runs:
        raise BrainCnnError(f"{path} holds no finished runs (it may be an interrupted run's: unpack it)")
    folders = []
    for run in runs:
        folder = Path(into) / run
        if (folder / MODEL_FILE).is_file() and (folder / MODEL_FILE).read_bytes() != files[f"{run}/{MODEL_FILE}"]:
            raise BrainCnnError(f"{folder} already holds other weights; move it away to restore {run}")
        folder.mkdir(parents=True, exist_ok=True)
        for key in (k for k in files if k.startswith(f"{run}/")):
            (folder / key.split("/", 1)[1]).write_bytes(files[key])
        if read_json(folder / CARD_FILE).get("sha256") != sha256_file(folder / MODEL_FILE):
            raise BrainCnnError(f"{folder}: the weights do not match the card's checksum")
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brain_cnn.training.carry", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="an interrupted run folder into one file")
    packing.add_argument("out")
    packing.add_argument("path")
    unpacking = commands.add_parser("unpack", help="one file into a run folder, to resume there")
    unpacking.add_argument("path")
    unpacking.add_argument("out")
    keeping = commands.add_parser("keep", help="finished run folders into one file, byte for byte")
    keeping.add_argument("runs", nargs="+", metavar="RUN")
    keeping.add_argument("path")
    restoring = commands.add_parser("restore", help="the finished runs of one file, as folders under a folder")
    restoring.add_argument("path")
    restoring.add_argument("into")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            print(f"packed {args.out} into {pack(args.out, args.path)}")
        elif args.command == "keep":
            print(f"kept {', '.join(args.runs)} in {keep(args.runs, args.path)}")
        elif args.command == "restore":
            print(f"restored {', '.join(map(str, restore(args.path, args.into)))}")
        else:
            print(f"unpacked into {unpack(args.path, args.out)}; run the run's own command to go on")
    except BrainCnnError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

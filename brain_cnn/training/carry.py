"""An interrupted ``brain-cnn train`` run carried to another machine in one file small enough to commit.

A run keeps its state in its folder (``OUT/resume/``, :mod:`brain_cnn.training.resume`, and the best epoch's
checkpoint ``OUT/best.weights.h5``): Keras weight files with the optimizer's moments in float32, three times
the network. ``pack`` writes the same state in :mod:`brain_cnn.training.run_state`'s format (the moments as
bfloat16; the best epoch's weights as float16, only ever used if no later epoch beats it); ``unpack`` puts it
back into a run folder on a fresh clone, and the run's own command then goes on where it stopped::

    python -m brain_cnn.training.carry pack runs/mri-c training-state/mri-c.npz
    python -m brain_cnn.training.carry unpack training-state/mri-c.npz runs/mri-c
    brain-cnn train ...the run's own options...   # resumes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from brain_cnn.data.dataset import SplitManifest
from brain_cnn.errors import BrainCnnError
from brain_cnn.files import read_json, write_json
from brain_cnn.model.card import SPLIT_FILE
from brain_cnn.training import run_state
from brain_cnn.training.config import TrainConfig
from brain_cnn.training.resume import RESUME_DIR, STATE_FILE
from brain_cnn.training.run import _network, _optimizer

__all__ = ["pack", "unpack", "BEST_FILE"]

BEST_FILE = "best.weights.h5"  # the checkpoint brain_cnn.training.run keeps of the best epoch so far


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brain_cnn.training.carry", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="an interrupted run folder into one file")
    packing.add_argument("out")
    packing.add_argument("path")
    unpacking = commands.add_parser("unpack", help="one file into a run folder, to resume there")
    unpacking.add_argument("path")
    unpacking.add_argument("out")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            print(f"packed {args.out} into {pack(args.out, args.path)}")
        else:
            print(f"unpacked into {unpack(args.path, args.out)}; run the run's own command to go on")
    except BrainCnnError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

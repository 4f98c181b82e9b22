"""A long run's whole resumable state in one file, small enough to commit and carried from session to session.

One ``.npz`` holds: the weights, the optimizer's state (its step count exact;
Adam's moments as bfloat16, the float32's upper half: resuming needs their
size, not their last bits, and it halves the file), the epochs done, the
recipe, every epoch's figures, the shipping rule's bar, a digest of the
decoded data (which files, which labels: a fresh clone decodes the same data
again, and the digest proves it), the candidate (the weights of the epoch
the shipping rule picks so far) and the weights of the epoch lowest in
validation loss so far (measured whatever the rule says: a fresh clone has
no other epoch's file). Written at each epoch's end to a
neighbouring file and renamed over the old one, so a run killed at any moment
leaves the last complete epoch's state.

``python -m brain_cnn.training.tumour_maps --state FILE --out RUN`` starts a
run there or resumes it, on this machine or a fresh clone.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from brain_cnn.errors import BrainCnnError

__all__ = ["RunState", "data_digest", "load_state", "save_state", "restore", "check_settings", "state_keeper",
           "history_logger", "write_history", "to_bfloat16", "from_bfloat16"]

FORMAT = 1


def to_bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 values as bfloat16 bit patterns (uint16), rounded to nearest even."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    rounded = bits + (0x7FFF + ((bits >> 16) & 1))  # round to nearest, ties to even
    return (rounded >> 16).astype(np.uint16)


def from_bfloat16(bits: np.ndarray) -> np.ndarray:
    """:func:`to_bfloat16`'s bit patterns back as float32."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def data_digest(files: list[str], labels: np.ndarray) -> str:
    """A digest of what a run trains and validates on: every file, in order, with its label."""
    digest = hashlib.sha256()
    for name, label in zip(files, np.asarray(labels).tolist()):
        digest.update(f"{name}\0{label}\n".encode())
    return digest.hexdigest()


class RunState(dict):
    """A loaded state: ``epoch``, ``settings``, ``history`` (rows), ``bar``, ``digest``, ``candidate_epoch``,
    ``lowest_epoch``, and the arrays ``weights``, ``optimizer`` (list of (name, array)), ``candidate`` and
    ``lowest`` (weights or None; ``lowest`` None in states written before it was kept)."""


def save_state(path: str | Path, model, epoch: int, settings: dict, history: list[dict], bar: dict | None,
               digest: str, candidate: list[np.ndarray] | None, candidate_epoch: int | None,
               lowest: list[np.ndarray] | None = None, lowest_epoch: int | None = None) -> None:
    """Write the state of ``model`` (compiled, its optimizer built) after ``epoch`` epochs, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for i, weight in enumerate(model.get_weights()):
        arrays[f"w{i}"] = weight
    names = []
    for i, variable in enumerate(model.optimizer.variables):
        value = np.asarray(variable.numpy())
        if value.dtype == np.float32 and value.ndim > 0:
            arrays[f"o{i}"] = to_bfloat16(value)
            names.append([variable.path, "bfloat16"])
        else:
            arrays[f"o{i}"] = value
            names.append([variable.path, str(value.dtype)])
    # Weights kept for an epoch are stored once: the candidate or the lowest epoch is often the last.
    candidate_from = "weights" if candidate is not None and candidate_epoch == epoch else "own"
    lowest_from = ("weights" if lowest is not None and lowest_epoch == epoch else
                   "candidate" if lowest is not None and lowest_epoch == candidate_epoch else "own")
    for i, weight in enumerate(candidate if candidate_from == "own" and candidate else []):
        arrays[f"c{i}"] = weight
    for i, weight in enumerate(lowest if lowest_from == "own" and lowest else []):
        arrays[f"l{i}"] = weight
    meta = {"format": FORMAT, "epoch": epoch, "settings": settings, "history": history, "bar": bar,
            "digest": digest, "optimizer": names, "weights": len(model.get_weights()),
            "candidate": len(candidate or []), "candidate_epoch": candidate_epoch, "candidate_from": candidate_from,
            "lowest": len(lowest or []), "lowest_epoch": lowest_epoch, "lowest_from": lowest_from}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        np.savez_compressed(handle, **arrays)
    os.replace(partial, path)


def load_state(path: str | Path) -> RunState:
    """The state saved at ``path``.

    Raises:
        BrainCnnError: the file is damaged or of another format.
    """
    try:
        with np.load(path) as saved:
            meta = json.loads(saved["meta"].tobytes().decode())
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')}")
            state = RunState({k: meta[k] for k in ("epoch", "settings", "history", "bar", "digest",
                                                   "candidate_epoch")})
            state["weights"] = [saved[f"w{i}"] for i in range(meta["weights"])]
            state["optimizer"] = [(name, from_bfloat16(saved[f"o{i}"]) if kind == "bfloat16" else saved[f"o{i}"])
                                  for i, (name, kind) in enumerate(meta["optimizer"])]
            # Weights stored once for several epochs kept (:func:`save_state`); older states store each.
            candidate = lowest = None
            if meta["candidate"]:
                candidate = (state["weights"] if meta.get("candidate_from") == "weights" else
                             [saved[f"c{i}"] for i in range(meta["candidate"])])
            if meta.get("lowest"):
                lowest = {"weights": state["weights"], "candidate": candidate}.get(meta.get("lowest_from")) or \
                    [saved[f"l{i}"] for i in range(meta["lowest"])]
            state["candidate"], state["lowest"], state["lowest_epoch"] = candidate, lowest, meta.get("lowest_epoch")
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as error:
        raise BrainCnnError(f"the run state {path} cannot be read ({error}); restore it from git, or start the "
                            f"run again elsewhere") from None
    return state


def restore(model, state: RunState) -> None:
    """Put the saved weights and optimizer state into the compiled ``model``.

    Raises:
        BrainCnnError: the state does not fit this network or optimizer.
    """
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    variables = model.optimizer.variables
    # By order and shape: Keras numbers automatic layer names per process, so paths may differ.
    if ([w.shape for w in state["weights"]] != [w.shape for w in model.get_weights()]
            or [np.shape(value) for _, value in state["optimizer"]] != [tuple(v.shape) for v in variables]):
        raise BrainCnnError("the run state was saved from another network or optimizer than this recipe builds")
    try:
        model.set_weights(state["weights"])
        for variable, (_, value) in zip(variables, state["optimizer"]):
            variable.assign(np.asarray(value).astype(variable.dtype))
    except ValueError as error:
        raise BrainCnnError(f"the run state does not fit this network ({error})") from None


def check_settings(state: RunState, settings: dict[str, Any], digest: str, path: Path) -> None:
    """Refuse to continue a saved run with another recipe or other data.

    Raises:
        BrainCnnError: the settings or the decoded data differ from the saved run's.
    """
    saved = state["settings"]
    if saved != settings:
        changed = "; ".join(f"{key} {saved.get(key)!r}, now {settings.get(key)!r}"
                            for key in sorted(set(saved) | set(settings)) if saved.get(key) != settings.get(key))
        raise BrainCnnError(f"{path} holds a run ({state['epoch']} of {saved.get('epochs')} epochs done) of another "
                            f"recipe ({changed}); run it with its own settings to continue it")
    if state["digest"] != digest:
        raise BrainCnnError(f"{path} holds a run on other data than this machine's decodes (another data folder, or "
                            f"the data sets changed); it continues only on the same data")


def state_keeper(path: str | Path, out: Path, settings: dict, digest: str, bar: dict | None, history: list[dict],
                 choose, candidate: list[np.ndarray] | None = None, candidate_epoch: int | None = None,
                 lowest: list[np.ndarray] | None = None, lowest_epoch: int | None = None):
    """A callback that, at each epoch's end, adds the epoch's figures to ``history``, writes ``out/history.csv``,
    keeps the epoch's weights as the candidate when ``choose(history, bar)`` (the shipping rule) picks it and
    as the lowest when its validation loss is the lowest so far, and saves the state to ``path``. Last among
    the callbacks, so the figures of those before it are in the logs."""
    import keras

    path = Path(path)

    class KeepState(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.candidate, self.candidate_epoch = candidate, candidate_epoch
            self.lowest, self.lowest_epoch = lowest, lowest_epoch

        def on_epoch_end(self, epoch, logs=None):
            history.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
            write_history(out / "history.csv", history)
            if bar and choose(history, bar) == epoch + 1:
                self.candidate, self.candidate_epoch = self.model.get_weights(), epoch + 1
            loss = history[-1].get("val_loss")
            # Strictly lower than every earlier epoch: of equals, the first (as the model folder picks).
            if loss is not None and all(loss < row["val_loss"] for row in history[:-1] if "val_loss" in row):
                self.lowest, self.lowest_epoch = self.model.get_weights(), epoch + 1
            save_state(path, self.model, epoch + 1, settings, history, bar, digest, self.candidate,
                       self.candidate_epoch, self.lowest, self.lowest_epoch)

    return KeepState()


def history_logger(path: Path):
    """A callback that writes ``path`` (``history.csv``) whole at each epoch's end, with the rows already there.

    Keras's ``CSVLogger(append=True)`` keeps the file's first header: a run resumed on code that logs more
    columns would write its rows under the old names, shifted. Here every row is kept by its epoch (an epoch
    run again after a crash replaces its row) and the header is the union of every row's columns."""
    import csv

    import keras

    class History(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rows = {}
            if path.is_file():
                with path.open(newline="") as handle:
                    rows = {int(row["epoch"]): {k: v for k, v in row.items() if v not in ("", None)}
                            for row in csv.DictReader(handle)}
            rows[epoch] = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
            write_history(path, [rows[e] for e in sorted(rows)])

    return History()


def write_history(path: Path, history: list[dict]) -> None:
    """Every epoch's figures as ``history.csv`` (``epoch`` 0-based first, as Keras's CSVLogger writes it)."""
    import csv

    keys = sorted({k for row in history for k in row} - {"epoch"})
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["epoch"] + keys)
        writer.writeheader()
        writer.writerows(history)

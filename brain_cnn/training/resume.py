"""An interrupted training run continues where it stopped.

At the end of every epoch the run's state (the weights with the optimizer's
moments and step count, the figures of every epoch so far, the settings) is
written into ``OUT/resume/``. The same command run again restores it and goes
on with the next epoch, so a run of hours on a CPU survives a closed terminal,
a reboot or a session that ends; ``loso`` folds continue the same way. The
state is removed once the model folder is written.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from brain_cnn.errors import BrainCnnError
from brain_cnn.files import read_json, write_json

__all__ = ["RESUME_DIR", "saved_state", "precision", "restore", "state_saver", "finish"]

RESUME_DIR = "resume"
STATE_FILE = "state.json"


def saved_state(out: Path, settings: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The interrupted run in ``out``, or None if there is none.

    A setting the saved run does not name (an option added since it started)
    matches if it has its default value in ``defaults``: the run was made as that default makes it.

    Raises:
        BrainCnnError: the run there was started with other settings (continuing it
            with these would mix two recipes), or its state file is damaged.
    """
    path = out / RESUME_DIR / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = read_json(path)
        saved, done = state["settings"], int(state["epoch"])
    except (BrainCnnError, KeyError, TypeError, ValueError):
        raise BrainCnnError(f"the saved state of the interrupted run in {out} is damaged; "
                            f"delete {out / RESUME_DIR} to start the run again") from None
    saved = {**{k: v for k, v in (defaults or {}).items() if k not in saved and k in settings}, **saved}
    if saved != settings:
        changed = "; ".join(f"{key} {saved.get(key)!r}, now {settings.get(key)!r}"
                            for key in sorted(set(saved) | set(settings)) if saved.get(key) != settings.get(key))
        raise BrainCnnError(f"{out} holds an interrupted run ({done} of {saved.get('epochs')} epochs done) with "
                            f"other settings ({changed}); run it with its own settings to continue it, or delete "
                            f"{out / RESUME_DIR} to start over")
    return state


def precision(out: Path, state: dict[str, Any], mixed_here: bool) -> bool:
    """Whether the resumed run trains in mixed precision: as its first part did.

    Mixed precision wraps the optimizer in loss scaling, whose saved state a plain
    optimizer cannot take, nor the other way round. A run begun in float32 (a CPU)
    continues in float32 on a GPU; one begun in mixed precision needs a GPU.
    """
    started_mixed = state.get("precision") == "mixed_float16"
    if started_mixed and not mixed_here:
        raise BrainCnnError(f"the interrupted run in {out} was started in mixed precision on a GPU; continue it "
                            f"on a GPU, or delete {out / RESUME_DIR} to start over")
    if mixed_here and not started_mixed:
        print("continuing in float32, the precision the run was started in", flush=True)
    return started_mixed


def restore(model, out: Path, state: dict[str, Any], steps_per_epoch: int) -> None:
    """Load the saved weights and optimizer state into the compiled ``model``.

    Raises:
        BrainCnnError: the saved state does not fit this run.
    """
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(out / RESUME_DIR / state["weights"])
    except (OSError, ValueError, KeyError) as error:
        raise BrainCnnError(f"the interrupted run in {out} cannot continue here ({str(error).splitlines()[0]}); "
                            f"delete {out / RESUME_DIR} to start over") from None
    # Keras skips optimizer state it cannot match with a mere warning; a reset step count would
    # silently restart the learning-rate schedule, so the count is checked.
    steps = int(model.optimizer.iterations.numpy())
    if steps != state["epoch"] * steps_per_epoch:
        raise BrainCnnError(f"the interrupted run in {out} cannot continue here: its optimizer state holds {steps} "
                            f"steps, not the {state['epoch'] * steps_per_epoch} of {state['epoch']} epochs of "
                            f"{steps_per_epoch} steps; delete {out / RESUME_DIR} to start over")


def state_saver(out: Path, settings: dict[str, Any], records: list[dict[str, Any]], mixed: bool):
    """A callback that appends each epoch's figures to ``records`` and saves the run's state.

    It must come after the callbacks that checkpoint and stop, so that what it saves
    is what they decided.
    """
    import keras

    folder = out / RESUME_DIR

    class SaveRunState(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            records.append({"epoch": epoch + 1,
                            **{k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"},
                            "seconds": round(time.perf_counter() - self.started, 1)})
            folder.mkdir(parents=True, exist_ok=True)
            weights = f"epoch-{epoch + 1}.weights.h5"
            self.model.save_weights(folder / weights)
            state = {"settings": settings, "epoch": epoch + 1, "weights": weights,
                     "precision": "mixed_float16" if mixed else "float32",
                     "stopped": bool(self.model.stop_training), "records": records}
            # The state file names its weights file and is replaced in one step, so a run
            # killed at any moment leaves either the old state or the new one, never half.
            partial = folder / (STATE_FILE + ".partial")
            write_json(partial, state)
            os.replace(partial, folder / STATE_FILE)
            for old in folder.glob("epoch-*.weights.h5"):
                if old.name != weights:
                    old.unlink()

    return SaveRunState()


def finish(out: Path) -> None:
    """Remove the saved state once the run's model folder is written."""
    shutil.rmtree(out / RESUME_DIR, ignore_errors=True)

"""Interrupted training runs continue where they stopped (brain_cnn.training.resume, through train)."""

from __future__ import annotations

import json

import pytest

from brain_cnn.training import callbacks
from brain_cnn.training.run import TrainConfig, train

from test_run import _validation_loss

pytestmark = pytest.mark.slow


class _Interrupted(Exception):
    """Stands for a run killed between epochs (a closed terminal, a reboot, a session's end)."""


def _killed_after(monkeypatch, epochs: int) -> None:
    """Make the next training run stop dead after ``epochs`` epochs, its state already saved."""
    import keras


    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == epochs:
                raise _Interrupted

    monkeypatch.setattr(callbacks, "epoch_logger", lambda total: Kill())


def _interrupted_run(data, out, monkeypatch, after: int, **recipe) -> TrainConfig:
    """A tiny run on ``data`` killed after ``after`` epochs; returns its settings."""
    config = TrainConfig(data=str(data), out=str(out), image_size=48, width=4, depth=2, batch_size=8, seed=3,
                         augmentation=None, **{"epochs": 3, **recipe})
    with monkeypatch.context() as patch:
        _killed_after(patch, after)
        with pytest.raises(_Interrupted):
            train(config)
    return config


@pytest.mark.parametrize("ema", [0.0, 0.8], ids=["plain", "averaged"])
def test_an_interrupted_run_continues_where_it_stopped(split_dataset, tmp_path, monkeypatch, capsys, ema):
    config = _interrupted_run(split_dataset, tmp_path / "run", monkeypatch, after=2, epochs=4, ema_momentum=ema)
    folder = tmp_path / "run"
    state = json.loads((folder / "resume" / "state.json").read_text())
    assert state["epoch"] == 2 and len(state["records"]) == 2
    assert not (folder / "model.keras").exists()

    train(config)
    assert "resuming the interrupted run" in capsys.readouterr().out
    history = json.loads((folder / "history.json").read_text())
    # The first two epochs are the ones run before the interruption; two more followed, not four.
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3, 4]
    assert history["epochs"][:2] == state["records"]
    assert not (folder / "resume").exists()
    card = json.loads((folder / "card.json").read_text())
    assert card["training"]["epochs_run"] == 4
    assert card["training"]["seconds"] == pytest.approx(sum(e["seconds"] for e in history["epochs"]), abs=0.2)
    # The shipped weights are the checkpoint of the best epoch, whichever part of the run it fell in.
    assert _validation_loss(folder) == pytest.approx(history["epochs"][history["best_epoch"] - 1]["val_loss"],
                                                     rel=1e-3, abs=1e-4)


def test_a_resumed_run_keeps_the_optimizer_and_its_schedule(split_dataset, tmp_path, monkeypatch):
    import keras


    config = _interrupted_run(split_dataset, tmp_path / "run", monkeypatch, after=1)
    seen = {}

    class Watch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["iterations"] = int(self.model.optimizer.iterations.numpy())

    monkeypatch.setattr(callbacks, "epoch_logger", lambda total: Watch())
    train(config)
    # 48 training phantoms less a tenth for validation, in batches of 8: the step count (and with
    # it the learning-rate schedule) starts where epoch 1 left it, not at zero.
    assert seen["iterations"] == 6


def test_an_interrupted_run_is_not_continued_with_other_settings(split_dataset, tmp_path, monkeypatch):
    from brain_cnn.errors import BrainCnnError

    config = _interrupted_run(split_dataset, tmp_path / "run", monkeypatch, after=1)
    config.epochs = 5
    with pytest.raises(BrainCnnError, match=r"interrupted run \(1 of 3 epochs done\).*epochs 3, now 5.*delete"):
        train(config)
    assert (tmp_path / "run" / "resume" / "state.json").is_file()  # nothing the user ran is lost


def test_saved_state_that_does_not_fit_the_run_is_refused_not_half_loaded(split_dataset, tmp_path, monkeypatch):
    from brain_cnn.errors import BrainCnnError

    config = _interrupted_run(split_dataset, tmp_path / "run", monkeypatch, after=1)
    path = tmp_path / "run" / "resume" / "state.json"
    saved = json.loads(path.read_text())
    assert saved["precision"] == "float32"
    # An optimizer whose step count disagrees with the epochs done (Keras would only warn) ...
    path.write_text(json.dumps({**saved, "epoch": 2}))
    with pytest.raises(BrainCnnError, match="holds 6 steps, not the 12 of 2 epochs of 6 steps"):
        train(config)
    # ... and a run begun in mixed precision on a GPU, continued on a CPU.
    path.write_text(json.dumps({**saved, "precision": "mixed_float16"}))
    with pytest.raises(BrainCnnError, match="started in mixed precision on a GPU; continue it on a GPU"):
        train(config)


def test_a_run_begun_before_an_option_existed_continues_if_the_option_keeps_its_default(tmp_path):
    from brain_cnn.training import resume
    from brain_cnn.errors import BrainCnnError

    (tmp_path / resume.RESUME_DIR).mkdir()
    (tmp_path / resume.RESUME_DIR / resume.STATE_FILE).write_text(
        json.dumps({"settings": {"epochs": 60}, "epoch": 20}))  # saved by a version without brain_only
    defaults = {"epochs": 40, "brain_only": False}
    assert resume.saved_state(tmp_path, {"epochs": 60, "brain_only": False}, defaults)["epoch"] == 20
    with pytest.raises(BrainCnnError, match="brain_only False, now True"):
        resume.saved_state(tmp_path, {"epochs": 60, "brain_only": True}, defaults)
    with pytest.raises(BrainCnnError, match="epochs 60, now 40"):
        resume.saved_state(tmp_path, {"epochs": 40, "brain_only": False}, defaults)

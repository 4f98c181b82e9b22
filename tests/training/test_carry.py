"""An interrupted classifier run packed into one file, unpacked in a fresh folder, goes on where it stopped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brain_cnn.errors import BrainCnnError
from brain_cnn.training.carry import BEST_FILE, main, pack, unpack
from brain_cnn.training.run import train

from test_resume import _interrupted_run

pytestmark = pytest.mark.slow


def test_a_packed_run_resumes_in_a_fresh_folder_with_its_optimizer_and_best_epoch(split_dataset, tmp_path,
                                                                                 monkeypatch, capsys):
    import keras

    from brain_cnn.training import callbacks

    first = tmp_path / "machine-a" / "run"
    config = _interrupted_run(split_dataset, first, monkeypatch, after=2, epochs=4)
    packed = pack(first, tmp_path / "state" / "run.npz")
    assert packed.stat().st_size < 0.6 * sum(p.stat().st_size for p in (first / "resume").glob("*.h5"))

    fresh = tmp_path / "machine-b" / "run"  # a fresh clone: nothing of the first folder
    unpack(packed, fresh)
    with pytest.raises(BrainCnnError, match="already holds"):
        unpack(packed, fresh)
    saved = json.loads((first / "resume" / "state.json").read_text())
    carried = json.loads((fresh / "resume" / "state.json").read_text())
    assert carried["epoch"] == 2 and carried["records"] == saved["records"]
    assert carried["settings"] == {**saved["settings"], "out": str(fresh)}
    assert (fresh / BEST_FILE).is_file()

    seen = {}

    class Watch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["iterations"] = int(self.model.optimizer.iterations.numpy())
            seen["weights"] = [w.copy() for w in self.model.get_weights()]

    monkeypatch.setattr(callbacks, "epoch_logger", lambda total: Watch())
    config.out = str(fresh)
    train(config)
    assert seen["iterations"] == 2 * 6  # the schedule goes on from epoch 2's step count
    # It resumed with the weights the first machine had after epoch 2, exactly.
    first_machine = keras.models.clone_model(keras.saving.load_model(fresh / "model.keras", compile=False))
    first_machine.compile(optimizer=keras.optimizers.AdamW(), loss="categorical_crossentropy")
    first_machine.optimizer.build(first_machine.trainable_variables)
    first_machine.load_weights(next((first / "resume").glob("epoch-2.weights.h5")))
    for resumed, stored in zip(seen["weights"], first_machine.get_weights()):
        np.testing.assert_array_equal(resumed, stored)
    history = json.loads((fresh / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3, 4]


def test_packing_needs_an_interrupted_run(tmp_path, capsys):
    (tmp_path / "done").mkdir()
    assert main(["pack", str(tmp_path / "done"), str(tmp_path / "x.npz")]) == 1
    assert "holds no interrupted run" in capsys.readouterr().err


def test_finished_runs_are_kept_and_restored_byte_for_byte(tiny_model, tmp_path, capsys):
    import shutil

    from brain_cnn.model.folder import load_model
    from brain_cnn.training.carry import FINISHED_FILES

    runs = [shutil.copytree(tiny_model, tmp_path / "runs" / name) for name in ("first", "second")]
    kept = tmp_path / "state" / "members.npz"
    assert main(["keep", *map(str, runs), str(kept)]) == 0
    assert main(["restore", str(kept), str(tmp_path / "fresh")]) == 0
    assert "restored" in capsys.readouterr().out
    for run in runs:
        restored = tmp_path / "fresh" / run.name
        assert set(FINISHED_FILES) <= {p.name for p in restored.iterdir()}
        assert all((restored / p.name).read_bytes() == p.read_bytes() for p in run.iterdir() if p.is_file())
        assert load_model(restored).card.sha256 == load_model(run).card.sha256
    assert main(["restore", str(kept), str(tmp_path / "fresh")]) == 0  # the same again changes nothing

    (runs[1] / "resume").mkdir()  # interrupted: packed with `pack`, not kept
    assert main(["keep", str(runs[1]), str(tmp_path / "x.npz")]) == 1
    assert "is not a finished run" in capsys.readouterr().err
    (runs[1] / "resume").rmdir()
    assert main(["keep", str(runs[0]), str(shutil.copytree(runs[0], tmp_path / "other" / "first")),
                 str(tmp_path / "x.npz")]) == 1
    assert "two runs are named first" in capsys.readouterr().err

    other = tmp_path / "fresh" / "first" / "model.keras"
    other.write_bytes(other.read_bytes()[:-1])  # a folder holding other weights is not overwritten
    assert main(["restore", str(kept), str(tmp_path / "fresh")]) == 1
    assert "already holds other weights" in capsys.readouterr().err
    np.savez(tmp_path / "interrupted.npz", weights=np.zeros(3))
    assert main(["restore", str(tmp_path / "interrupted.npz"), str(tmp_path / "fresh")]) == 1
    assert "holds no finished runs" in capsys.readouterr().err

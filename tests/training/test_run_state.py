import numpy as np
import pytest

from brain_cnn.errors import BrainCnnError
from brain_cnn.training.run_state import (check_settings, data_digest, from_bfloat16, load_state, restore,
                                          save_state, to_bfloat16)
from brain_cnn.training.tumour_maps import DecodedPairs, draw_weights, epoch_draws


def test_bfloat16_keeps_the_exponent_and_eight_bits_of_the_mantissa():
    values = np.array([1e-30, 3.14159, -2.5e-8, 6.0e4, 0.0], np.float32)
    back = from_bfloat16(to_bfloat16(values))
    assert np.allclose(back, values, rtol=2 ** -8, atol=0) and back[0] > 0  # no underflow where float16 would


def _model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=2, verbose=0)
    return model


def test_a_saved_state_restores_weights_and_optimizer_into_a_new_network(tmp_path):
    model = _model()
    history = [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5}]
    first = [w + 1 for w in model.get_weights()]
    save_state(tmp_path / "s.npz", model, 2, {"a": [1, 2]}, history, {"val_loss": 1.0}, "d", model.get_weights(), 2,
               first, 1)
    state = load_state(tmp_path / "s.npz")
    assert state["epoch"] == 2 and state["history"] == history and state["settings"] == {"a": [1, 2]}
    assert state["candidate_epoch"] == 2 and len(state["candidate"]) == 4
    assert state["lowest_epoch"] == 1 and all(np.array_equal(a, b) for a, b in zip(state["lowest"], first))
    import keras

    fresh = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    fresh.compile(keras.optimizers.Adam(1e-2), "mse")
    restore(fresh, state)
    assert all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), model.get_weights()))
    assert int(fresh.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 2
    moments = [v for v in model.optimizer.variables if "momentum" in v.path or "velocity" in v.path]
    for old, new in zip(moments, [v for v in fresh.optimizer.variables if v.path in {m.path for m in moments}]):
        assert np.allclose(old.numpy(), new.numpy(), rtol=2 ** -8)


def test_a_damaged_state_and_another_recipe_or_data_are_refused(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a state")
    with pytest.raises(BrainCnnError, match="cannot be read"):
        load_state(tmp_path / "bad.npz")
    model = _model()
    save_state(tmp_path / "s.npz", model, 1, {"epochs": 9, "seed": 1}, [], None, "abc", None, None)
    state = load_state(tmp_path / "s.npz")
    assert state["lowest"] is None and state["lowest_epoch"] is None
    check_settings(state, {"epochs": 9, "seed": 1}, "abc", tmp_path)
    with pytest.raises(BrainCnnError, match="seed 1, now 2"):
        check_settings(state, {"epochs": 9, "seed": 2}, "abc", tmp_path)
    with pytest.raises(BrainCnnError, match="other data"):
        check_settings(state, {"epochs": 9, "seed": 1}, "xyz", tmp_path)
    assert data_digest(["a", "b"], np.array([0, 1])) != data_digest(["a", "b"], np.array([0, 2]))


def _pairs(labels, sources, files):
    n = len(labels)
    return DecodedPairs(np.zeros((n, 4, 4, 1), np.uint8), np.zeros((n, 4, 4, 1), np.uint8), np.array(labels),
                        np.ones(n, bool), sources, files, [])


def test_draws_balance_the_cells_and_give_the_pasted_slices_their_share():
    pairs = _pairs([0, 0, 0, 2, 0, 2, 0], ["a", "a", "a", "a", "b", "b (tumour pasted)", "b (tumour pasted)"],
                   ["1", "2", "3", "4", "5", "6#pasted", "7#pasted"])
    weights = draw_weights(pairs, 0.2)
    assert np.isclose(weights.sum(), 1) and np.isclose(weights[5:].sum(), 0.2)
    assert np.isclose(weights[:3].sum(), weights[3]) and np.isclose(weights[3], weights[4])  # three cells of 0.8/3
    assert np.isclose(weights[5], weights[6])
    with pytest.raises(ValueError, match="last"):
        draw_weights(_pairs([0, 0], ["a", "a"], ["1#pasted", "2"]), 0.2)


def test_each_epochs_draws_depend_on_the_seed_and_the_epoch_alone():
    weights = np.full(10, 0.1)
    whole = epoch_draws(weights, 3, 4, seed=5, first=0, last=4)
    resumed = epoch_draws(weights, 3, 4, seed=5, first=2, last=4)
    assert whole.shape == (12, 4) and np.array_equal(whole[6:], resumed)
    assert not np.array_equal(whole[:3], whole[3:6])
    assert epoch_draws(weights, 3, 4, seed=5, first=4, last=4).shape == (0, 4)


def test_a_normal_weight_raises_the_real_normals_share_and_not_the_painted_out_twins():
    pairs = _pairs([0, 2, 2, 0, 2], ["a", "a", "a (tumour painted out)", "b", "b"], ["1", "2", "1#painted-out", "3",
                                                                                     "4"])
    pairs.twin_of = np.array([-1, -1, 0, -1, -1])
    plain, weighted = draw_weights(pairs), draw_weights(pairs, normal_weight=2.0)
    assert np.isclose(weighted.sum(), 1)
    # Four cells of a quarter each; the two real normals' cells count twice: 2/6 each, the tumours' 1/6.
    assert np.isclose(weighted[1], 2 * weighted[0]) and np.isclose(weighted[4], 2 * weighted[3])
    assert np.isclose(plain[1], plain[0])
    assert np.isclose(weighted[2], weighted[0])  # the twin weighs what its original (a tumour) does


def test_the_recipes_command_line_says_what_is_wrong_in_one_line(tmp_path, capsys):
    from brain_cnn.training.tumour_maps import main

    for argv, said in ((["--normal-weight", "0"], "must be positive"), (["--not-bright-weight", "-1"], "must be positive"),
                       (["--not-bright-weight", "3"], "give --steps-per-epoch"),
                       (["--not-bright-weight", "nan"], "must be positive"), (["--no-alike-twins"], "--paired-twins"),
                       (["--normal-weight", "2"], "give --steps-per-epoch")):
        with pytest.raises(SystemExit):
            main(["--out", str(tmp_path / "run"), *argv])
        assert said in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "run"), "--carve", str(tmp_path / "nowhere"), "--data", str(tmp_path)]) == 1
    assert "holds no carve" in capsys.readouterr().err


def test_weights_kept_for_the_last_or_the_rules_epoch_are_stored_once(tmp_path):
    model = _model()
    last, earlier = model.get_weights(), [w + 1 for w in model.get_weights()]
    for candidate_epoch, lowest, lowest_epoch, stored in ((2, last, 2, set()),  # both the last epoch
                                                          (1, earlier, 1, {"c"}),  # the lowest is the candidate
                                                          (2, earlier, 1, {"l"})):  # the candidate is the last
        path = tmp_path / f"s{candidate_epoch}{lowest_epoch}.npz"
        save_state(path, model, 2, {}, [], None, "d", last if candidate_epoch == 2 else earlier, candidate_epoch,
                   lowest, lowest_epoch)
        with np.load(path) as saved:
            assert {name[0] for name in saved.files if name[0] in "cl"} == stored
        state = load_state(path)
        assert all(np.array_equal(a, b) for a, b in zip(state["lowest"], lowest))
        assert all(np.array_equal(a, b) for a, b in zip(state["candidate"], last if candidate_epoch == 2 else earlier))


def test_tumours_not_brighter_than_the_brain_are_drawn_more_within_their_cell_and_their_twins_with_them():
    from conftest import phantom

    images, masks = [], []
    for level in (240, 20, 240, 240, 240):  # a bright tumour, a dark one, two more bright ones, a normal
        image, mask = phantom(64, seed=1), np.zeros((64, 64), np.uint8)
        if len(images) < 4:
            mask[26:36, 26:36] = 255
            image[mask > 0] = level
        images.append(image[..., None])
        masks.append(mask[..., None])
    images.append(images[1])  # the dark tumour's painted-elsewhere twin: its class and mask kept
    masks.append(masks[1])
    pairs = DecodedPairs(np.stack(images), np.stack(masks), np.array([0, 0, 1, 1, 2, 0]), np.ones(6, bool),
                         ["a"] * 5 + ["a (painted out elsewhere)"], ["1", "2", "3", "4", "5", "2#painted-elsewhere"],
                         [])
    pairs.twin_of = np.array([-1, -1, -1, -1, -1, 1])
    from brain_cnn.training.tumour_maps import not_bright_tumours

    assert not_bright_tumours(pairs).tolist() == [1]
    unpaired = DecodedPairs(pairs.images, pairs.masks, pairs.labels, pairs.known, pairs.sources, pairs.files, [])
    assert not_bright_tumours(unpaired).tolist() == [1]  # an edited copy (recipes 3 and 5) is not a real tumour
    plain, weighted = draw_weights(pairs), draw_weights(pairs, not_bright_weight=3.0)
    assert np.isclose(weighted.sum(), 1)
    for cell in ([0, 1, 5], [2, 3], [4]):  # glioma (with the twin), meningioma, no tumour: each keeps its share
        assert np.isclose(weighted[cell].sum(), plain[cell].sum())
    assert np.isclose(weighted[1], 3 * weighted[0]) and np.isclose(weighted[5], weighted[1])
    assert np.allclose(weighted[2:5], plain[2:5])


def test_the_history_file_keeps_each_epoch_once_under_every_column_logged(tmp_path):
    import csv

    from brain_cnn.training.run_state import history_logger

    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,2.0,2.5\n1,1.8,2.2\n")  # written by older code, fewer columns
    logger = history_logger(path)
    logger.on_epoch_end(1, {"loss": 1.7, "val_loss": 2.1, "val_missed_dark": 0.25})  # epoch 1 run again
    logger.on_epoch_end(2, {"loss": 1.6, "val_loss": 2.0, "val_missed_dark": 0.2})
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert rows[0]["val_loss"] == "2.5" and rows[0]["val_missed_dark"] == ""
    assert float(rows[1]["loss"]) == 1.7 and float(rows[2]["val_missed_dark"]) == 0.2

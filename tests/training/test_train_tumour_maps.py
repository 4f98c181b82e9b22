import json

import numpy as np
import pytest

from brain_cnn.data.masks import prepare_pair
from brain_cnn.model.tumour_maps import PROBABILITIES, TUMOUR_MAP
from brain_cnn.training.tumour_maps import DecodedPairs, make_pair_dataset, train_tumour_maps

from conftest import phantom

pytestmark = pytest.mark.slow


def pairs(count: int = 8, size: int = 64, lesion: int = 24) -> DecodedPairs:
    """Phantoms with a lesion (and its mask) or without; half the tumour masks unknown."""
    images, masks = [], []
    for i in range(count):
        grey = phantom(96, seed=i)
        truth = np.zeros_like(grey)
        if i % 2 == 0:
            grey[30:30 + lesion, 44:44 + lesion] = 245  # 24: a tumour the size of a large meningioma
            truth[30:30 + lesion, 44:44 + lesion] = 255
        image, mask = prepare_pair(grey, truth, size)
        images.append(image)
        masks.append(mask)
    labels = np.array([0 if i % 2 == 0 else 2 for i in range(count)], np.int32)
    known = np.array([i % 4 != 0 for i in range(count)])
    return DecodedPairs(np.stack(images), np.stack(masks), labels, known, ["s"] * count,
                        [f"f{i}" for i in range(count)], [])


def test_augmented_image_and_mask_stay_aligned_and_unknown_masks_weigh_nothing():
    import keras

    keras.utils.set_random_seed(3)
    data = make_pair_dataset(pairs(), batch_size=8, training=True, seed=3)
    image, target, weight = next(iter(data))
    image, mask = np.asarray(image), np.asarray(target[TUMOUR_MAP])
    assert mask.shape == (8, 32, 32, 1) and 0 <= mask.min() and mask.max() <= 1
    half = image.reshape(8, 32, 2, 32, 2, 1).mean(axis=(2, 4))
    checked = 0
    for i in range(8):  # the lesion is still where its mask is, after the shared geometric transform
        inside, outside = half[i][mask[i] > 0.9], half[i][mask[i] < 0.1]
        if len(inside) > 3:
            # The lesion is one grey level: whatever intensity curve the image got, the masked pixels stay alike,
            # which a mask shifted onto brain, skull and background would not.
            assert inside.std() < 0.3 * half[i].std() and abs(inside.mean() - outside.mean()) > 10
            checked += 1
    assert checked >= 2
    assert sorted(np.asarray(weight[TUMOUR_MAP]).tolist()) == [0, 0, 1, 1, 1, 1, 1, 1]  # shuffled
    assert np.asarray(weight[PROBABILITIES]).min() > 0


def test_it_trains_saves_and_reloads(tmp_path, monkeypatch):
    import json

    import keras

    import brain_cnn.training.tumour_maps as segmentation

    train, validation = pairs(8), pairs(4, lesion=10)  # small enough to be painted out elsewhere in the brain
    asked = []
    monkeypatch.setattr(segmentation, "training_samples",
                        lambda *args: asked.append(args) or ({"train": [], "validation": []}, {}))
    decoded = iter([train, validation])
    monkeypatch.setattr(segmentation, "decode_pairs", lambda samples, size: next(decoded))
    out = train_tumour_maps(tmp_path, tmp_path / "run", epochs=1, image_size=64, width=8, batch_size=4,
                            exclude=("brain-tumor-44c",))
    assert asked[0][3] == ("brain-tumor-44c",)  # leave-one-source-out reaches the samples, and the recipe says it
    assert json.loads((out / "recipe.json").read_text())["left_out"] == ["brain-tumor-44c"]
    model = keras.saving.load_model(out / "model.keras", compile=False, safe_mode=True)
    assert model(np.zeros((1, 64, 64, 1), np.float32))[TUMOUR_MAP].shape == (1, 32, 32, 1)
    assert (out / "history.csv").is_file() and (out / "recipe.json").is_file()
    from brain_cnn.data.dataset import SplitManifest
    from brain_cnn.inference.predictor import Predictor

    predictor = Predictor(out)
    assert predictor.has_map  # the run folder is a model folder: card.json, checksum, split.json
    assert predictor.card.decision == "tumour first"  # P(no tumour) = 1 - the map's peak: tumour at a peak of 0.5
    manifest = SplitManifest.load(out / "split.json")
    assert len(manifest.splits["train"]) == 8 and "test" not in manifest.splits  # no 4-class set here
    import csv

    rows = list(csv.DictReader((out / "history.csv").open()))  # every epoch scored on validation's edited tumours
    for row in rows:
        assert 0 <= float(row["val_painted_out_below_half"]) <= 1 and float(row["val_painted_out_loss"]) > 0
        assert 0 <= float(row["val_elsewhere_changed"]) <= 1
        # The phantoms' one masked validation tumour is bright: the other bands have none to score.
        assert 0 <= float(row["val_missed_bright"]) <= 1 and np.isnan([float(row["val_missed_dark"]),
                                                                      float(row["val_missed_alike"])]).all()
        assert np.isnan(float(row["val_missed_bright_4class"]))  # the phantoms' source is not the 4-class set
        assert (out / "epochs" / f"epoch-{int(row['epoch']) + 1:02d}.keras").is_file()  # the rule's epoch numbers
    assert json.loads((out / "shipping.json").read_text()) == {"bar": None, "epoch": None}  # nothing to beat


def test_a_run_goes_on_from_an_earlier_one(tmp_path, monkeypatch):
    import json

    import brain_cnn.training.tumour_maps as segmentation

    monkeypatch.setattr(segmentation, "training_samples", lambda *args: ({"train": [], "validation": []}, {}))
    decoded = iter([pairs(8), pairs(4), pairs(8), pairs(4)])
    monkeypatch.setattr(segmentation, "decode_pairs", lambda samples, size: next(decoded))
    first = train_tumour_maps(tmp_path, tmp_path / "first", epochs=1, image_size=64, width=8, batch_size=4)
    second = train_tumour_maps(tmp_path, tmp_path / "second", epochs=1, image_size=64, width=8, batch_size=4,
                               learning_rate=1e-4, start_from=first / "model.keras", type_from="region")
    recipe = json.loads((second / "recipe.json").read_text())
    assert recipe["started_from"].endswith("model.keras") and recipe["type_from"] == "region"
    import keras

    model = keras.saving.load_model(second / "model.keras", compile=False, safe_mode=True)
    assert "pool" not in {layer.name for layer in model.layers}  # the type head sees the tumour region alone
    bar = json.loads((second / "bar.json").read_text())  # the network it went on from: the figures to beat
    assert set(bar) == {"val_loss", "val_painted_out_loss", "val_painted_out_below_half", "val_elsewhere_changed",
                        "val_missed_dark", "val_missed_alike", "val_missed_bright", "val_missed_dark_4class",
                        "val_missed_alike_4class", "val_missed_bright_4class"}
    shipping = json.loads((second / "shipping.json").read_text())
    assert shipping["bar"] == bar and shipping["epoch"] in (None, 1)
    training = json.loads((second / "card.json").read_text())["training"]
    assert training["replaces_the_shipped_network"] is (shipping["epoch"] is not None)
    assert training["epoch_chosen_by"].startswith("the rule" if shipping["epoch"] else "the lowest validation loss")


def test_counterfactuals_paint_the_tumour_out_and_call_it_no_tumour():
    from brain_cnn.training.tumour_maps import counterfactuals

    original = pairs(8)  # tumours at 0, 2, 4, 6; masks known for 2 and 6 (and the normals)
    both = counterfactuals(original, 1.0, seed=0)
    assert len(both.labels) == 10 and both.labels[8:].tolist() == [2, 2] and both.known[8:].all()
    assert both.masks[8:].max() == 0 and both.files[8:] == ["f2#painted-out", "f6#painted-out"]
    lesion = original.masks[2, ..., 0] > 127
    assert both.images[8, ..., 0][lesion].mean() < original.images[2, ..., 0][lesion].mean() - 60  # the bright lesion is gone
    assert len(counterfactuals(original, 0.5, seed=0).labels) == 9


def test_the_same_shape_painted_out_elsewhere_keeps_the_class_and_the_mask():
    from brain_cnn.training.tumour_maps import painted_elsewhere

    original = pairs(8, lesion=10)  # masked tumours: 2 and 6
    both = painted_elsewhere(original, 1.0, seed=0)
    added = len(both.labels) - 8
    assert added == 2 and both.labels[8:].tolist() == [0, 0] and both.known[8:].all()
    assert both.files[8:] == ["f2#painted-elsewhere", "f6#painted-elsewhere"]
    assert both.sources[8:] == ["s (painted out elsewhere)"] * 2  # a cell of its own in the balance
    for k, i in enumerate((2, 6)):
        lesion = original.masks[i, ..., 0] > 127
        assert (both.masks[8 + k] == original.masks[i]).all()
        assert (both.images[8 + k, ..., 0][lesion] == original.images[i, ..., 0][lesion]).all()  # the tumour stays
        assert (both.images[8 + k] != original.images[i]).sum() > lesion.sum() // 2  # a region elsewhere is filled


def test_paired_twins_cover_the_same_tumours_and_weigh_what_their_originals_weigh():
    from brain_cnn.training.tumour_maps import _weights, paired_twins

    original = pairs(8, lesion=10)  # masked tumours: 2 and 6
    both = paired_twins(original, 1.0, seed=0)
    assert len(both.labels) == 12 and both.labels[8:].tolist() == [2, 2, 0, 0]
    assert both.files[8:] == ["f2#painted-out", "f6#painted-out", "f2#painted-elsewhere", "f6#painted-elsewhere"]
    assert both.twin_of.tolist() == [-1] * 8 + [2, 6, 2, 6]
    assert both.masks[8:10].max() == 0 and (both.masks[10:] == original.masks[[2, 6]]).all()
    weights = _weights(both)
    assert np.allclose(weights[:8], _weights(original))  # the originals' balance is untouched
    assert np.allclose(weights[8:], weights[[2, 6, 2, 6]])
    lone = pairs(8)  # a 24 px lesion: no clear place for its shape in the phantom's brain, so neither twin
    assert len(paired_twins(lone, 1.0, seed=0).labels) == 8


def test_a_tumour_as_bright_as_the_brain_gets_no_twins_when_asked():
    from brain_cnn.data.tumour_contrast import bands
    from brain_cnn.training.tumour_maps import paired_twins

    original = pairs(8, lesion=10)
    inside = original.masks[2, ..., 0] > 127
    ring = (np.abs(np.argwhere(np.ones_like(inside)) - np.argwhere(inside).mean(axis=0)).max(axis=1) < 12)
    ring = ring.reshape(inside.shape) & ~inside
    original.images[2, ..., 0][inside] = int(original.images[2, ..., 0][ring].mean())  # tumour 2: like the brain
    assert bands(original.images[[2, 6]], original.masks[[2, 6]]).tolist() == ["alike", "bright"]
    every, some = paired_twins(original, 1.0, seed=0), paired_twins(original, 1.0, seed=0, alike=False)
    assert some.files[8:] == ["f6#painted-out", "f6#painted-elsewhere"] and some.twin_of.tolist() == [-1] * 8 + [6, 6]
    # The alike tumour, drawn first, still draws its place elsewhere: the bright one's twins are the same.
    assert np.array_equal(some.images[8:], every.images[[9, 11]])

def test_the_rule_ships_an_epoch_no_worse_intact_and_better_painted_out():
    from brain_cnn.training.tumour_maps import shipping_epoch

    bar = {"val_loss": 1.144, "val_painted_out_loss": 1.660}

    def row(epoch, intact, painted, elsewhere=0.03):
        return {"epoch": str(epoch), "val_loss": str(intact), "val_painted_out_loss": str(painted),
                "val_elsewhere_changed": str(elsewhere)}

    assert shipping_epoch([row(0, 1.2, 0.5), row(1, 1.1, 1.7)], bar) is None  # worse at home; no better painted out
    assert shipping_epoch([row(0, 1.1, 0.9, elsewhere=0.06), row(1, 1.0, 1.5)], bar) == 2  # too many calls changed
    assert shipping_epoch([row(0, 1.14, 0.9), row(1, 1.0, 1.5), row(2, 1.2, 0.2)], bar) == 1
    assert shipping_epoch([{"epoch": "0", "val_loss": "0.9"}], bar) is None  # a run without the figures
    assert shipping_epoch([row(0, 1.144, 1.6, elsewhere=0.05)], bar) == 1  # "no worse", "at most 5 %": bounds count
    assert shipping_epoch([row(0, 1.0, 1.660)], bar) is None  # "better" on the painted-out tumours: strictly
    assert shipping_epoch([row(0, 1.0, 1.0, elsewhere=float("nan"))], bar) is None  # not measured: no pass


def test_the_call_teaches_whether_a_tumour_everywhere_but_on_masked_tumours():
    data = make_pair_dataset(pairs(), batch_size=8, training=True, seed=3, presence="except-masked")
    _, target, weight = next(iter(data))
    presence, known = np.asarray(target[PROBABILITIES])[:, -1], np.asarray(weight[TUMOUR_MAP])
    normal = np.asarray(target[PROBABILITIES])[:, 2] == 1
    # pairs(): tumours 0, 2, 4, 6 (masks known for 2 and 6), normals 1, 3, 5, 7 (empty masks)
    assert presence.sum() == 6 and (presence[normal] == 1).all() and (presence[~normal] == 1 - known[~normal]).all()
    validation = make_pair_dataset(pairs(), batch_size=8, training=False, presence="except-masked")
    assert np.asarray(next(iter(validation))[1][PROBABILITIES])[:, -1].tolist() == [1] * 8  # runs compare
    with pytest.raises(ValueError, match="presence"):
        make_pair_dataset(pairs(), batch_size=8, training=True, presence="some")


def test_the_card_says_which_twins_a_run_trained_with():
    from brain_cnn.training.tumour_maps import _twins_sentence

    assert _twins_sentence({}) == "" and _twins_sentence({"painted_out": 0.0}) == ""
    assert "50% of the masked training tumours painted out as no tumour" in _twins_sentence({"painted_out": 0.5})
    paired = _twins_sentence({"paired_twins": 1.0, "painted_out": 0.0})
    assert "elsewhere" in paired and "each weighing what its original weighs" in paired and "none for" not in paired
    assert "(none for those about as bright as the brain around them)" in _twins_sentence({"paired_twins": 1.0,
                                                                                           "alike_twins": False})


def test_a_run_kept_in_one_state_file_resumes_in_a_fresh_folder_where_it_stopped(tmp_path, monkeypatch):
    import csv

    import brain_cnn.training.tumour_maps as segmentation
    from brain_cnn.errors import BrainCnnError
    from brain_cnn.training.run_state import load_state

    monkeypatch.setattr(segmentation, "training_samples", lambda *args: ({"train": [], "validation": []}, {}))

    def decoding(samples, size):  # each run folder decodes again, as a fresh clone does
        return pairs(8) if not decoding.odd else pairs(4, lesion=10)

    decoding.odd = False

    def decode(samples, size):
        made = decoding(samples, size)
        decoding.odd = not decoding.odd
        return made

    monkeypatch.setattr(segmentation, "decode_pairs", decode)
    state = tmp_path / "state.npz"
    settings = dict(image_size=64, width=8, batch_size=4, steps_per_epoch=2, state=state, bar_from=None)
    train_tumour_maps(tmp_path, tmp_path / "first", epochs=2, **settings)
    saved = load_state(state)
    assert saved["epoch"] == 2 and len(saved["history"]) == 2 and saved["bar"] is None
    monkeypatch.setattr(segmentation, "_bar", lambda *args: None)
    with pytest.raises(BrainCnnError, match="epochs 2, now 3"):  # the plan is part of the recipe
        train_tumour_maps(tmp_path, tmp_path / "fresh", epochs=3, **settings)
    out = train_tumour_maps(tmp_path, tmp_path / "fresh", epochs=2, **settings)  # done: nothing left to train
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1]  # the first folder's epochs, carried by the state file
    assert (out / "epochs" / "epoch-02.keras").is_file() and (out / "card.json").is_file()
    import keras

    shipped = keras.saving.load_model(out / "model.keras", compile=False, safe_mode=True)
    # No rule without a bar: the model folder holds the epoch lowest in validation loss, which the state kept.
    assert all(np.array_equal(a, b) for a, b in zip(shipped.get_weights(), saved["lowest"]))
    assert json.loads((out / "card.json").read_text())["training"]["best_epoch"] == saved["lowest_epoch"]


def test_a_run_stopped_mid_way_goes_on_from_its_state_with_the_next_epochs_draws(tmp_path, monkeypatch):
    import csv

    import brain_cnn.training.tumour_maps as segmentation
    from brain_cnn.training import run_state

    monkeypatch.setattr(segmentation, "training_samples", lambda *args: ({"train": [], "validation": []}, {}))
    made = iter([pairs(8), pairs(4, lesion=10), pairs(8), pairs(4, lesion=10)])
    monkeypatch.setattr(segmentation, "decode_pairs", lambda samples, size: next(made))
    keeper = run_state.state_keeper

    def lowest_first(*args, **kwargs):  # the first epoch's validation loss the lowest, not the last's
        callback = keeper(*args, **kwargs)
        saving = callback.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            saving(epoch, {**(logs or {}), "val_loss": (0.5, 0.9, 0.7)[epoch]})

        callback.on_epoch_end = on_epoch_end
        return callback

    def stopping_after_one(*args, **kwargs):  # a session that ends after the first epoch
        callback = lowest_first(*args, **kwargs)
        saving = callback.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            saving(epoch, logs)
            callback.model.stop_training = True

        callback.on_epoch_end = on_epoch_end
        return callback

    monkeypatch.setattr(run_state, "state_keeper", stopping_after_one)
    state = tmp_path / "state.npz"
    settings = dict(epochs=3, image_size=64, width=8, batch_size=4, steps_per_epoch=2, state=state, bar_from=None)
    train_tumour_maps(tmp_path, tmp_path / "first", **settings)
    assert run_state.load_state(state)["epoch"] == 1
    monkeypatch.setattr(run_state, "state_keeper", lowest_first)
    out = train_tumour_maps(tmp_path, tmp_path / "fresh", **settings)
    saved = run_state.load_state(state)
    assert saved["epoch"] == 3
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    # The schedule went on where it stopped: the warm-up epoch's rate, then the cosine's.
    assert float(rows[0]["learning_rate"]) < float(rows[1]["learning_rate"])
    assert [int(value) for name, value in saved["optimizer"] if name.endswith("iteration")] == [6]  # 3 x 2 steps
    # The first epoch, lowest in validation loss, was trained in the first folder; the fresh one has its file
    # from the state, and its model folder holds it, not the last epoch.
    assert saved["lowest_epoch"] == 1 and (tmp_path / "fresh" / "epochs" / "epoch-01.keras").is_file()
    import keras

    shipped = keras.saving.load_model(out / "model.keras", compile=False, safe_mode=True).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(shipped, saved["lowest"]))
    assert not all(np.array_equal(a, b) for a, b in zip(shipped, saved["weights"]))
    assert json.loads((out / "card.json").read_text())["training"]["best_epoch"] == 1


def test_only_the_lgg_or_44_class_set_can_be_left_out(tmp_path, capsys):
    """Refused before any data is read: the 4-class set holds the validation images the rule's bar is on."""
    from brain_cnn.errors import DatasetError
    from brain_cnn.training.tumour_maps import main, training_samples

    with pytest.raises(DatasetError, match="only brain-tumor-lgg or brain-tumor-44c"):
        training_samples(tmp_path, 42, None, ("brain-tumor-mri",))
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "run"), "--exclude", "brain-tumor-mri"])
    assert "invalid choice" in capsys.readouterr().err

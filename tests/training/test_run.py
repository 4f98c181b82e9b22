"""Training details not covered end to end by the CLI tests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brain_cnn.data.dataset import SplitManifest
from brain_cnn.model.folder import load_model
from brain_cnn.data.pipeline import decode_samples
from brain_cnn.inference.predictor import predict_probabilities
from brain_cnn.training.run import TrainConfig, train

pytestmark = pytest.mark.slow


def _validation_loss(folder) -> float:
    loaded = load_model(folder)
    manifest = SplitManifest.load(folder / "split.json")
    validation = decode_samples(manifest.splits["validation"], manifest.root, manifest.classes, loaded.card.image_size)
    probs = predict_probabilities(loaded.model, validation.images)
    return float(-np.mean(np.log(probs[np.arange(len(probs)), validation.labels])))


def test_weight_averaging_ships_the_weights_it_validated(split_dataset, tmp_path):
    # With averaging on, the logged validation loss, the checkpoint chosen by it and
    # the shipped model must all be the averaged weights, not the raw ones.
    config = TrainConfig(data=str(split_dataset), out=str(tmp_path / "ema"), epochs=4, image_size=48, width=4,
                         depth=2, batch_size=8, seed=3, augmentation=None, ema_momentum=0.8,
                         learning_rate=3e-2)
    folder = train(config)
    history = json.loads((folder / "history.json").read_text())
    logged = history["epochs"][history["best_epoch"] - 1]["val_loss"]
    assert _validation_loss(folder) == pytest.approx(logged, rel=1e-3, abs=1e-4)
    # The batch-norm statistics were re-estimated for the averaged weights: the stem's
    # running mean is the mean of what the shipped stem convolution gives on training images.
    import keras

    loaded = load_model(folder)
    manifest = SplitManifest.load(folder / "split.json")
    train_images = decode_samples(manifest.splits["train"], manifest.root, manifest.classes, 48).images
    stem = keras.Model(loaded.model.input, loaded.model.get_layer("stem_conv").output)
    activations = np.asarray(stem(train_images.astype(np.float32))).mean(axis=(0, 1, 2))
    running = np.asarray(loaded.model.get_layer("stem_bn").moving_mean)
    assert np.abs(running - activations).max() < 0.05 * np.abs(activations).max()
    card = json.loads((folder / "card.json").read_text())
    assert card["training"]["ema_momentum"] == 0.8
    assert "weight averaging" in card["training"]["optimizer"]


def test_a_split_over_a_folder_of_data_sets_gives_its_carve_of_one(tmp_path):
    from brain_cnn.data.dataset import Sample, discover
    from brain_cnn.errors import DatasetError
    from brain_cnn.training.run import _split

    from conftest import write_class_folder

    data = tmp_path / "data"
    write_class_folder(data / "four" / "Training", {"notumor": 3, "tumor": 3})
    write_class_folder(data / "other", {"tumor": 2})
    images = sorted(p.relative_to(data).as_posix() for p in (data / "four").rglob("*.jpg"))
    manifest = SplitManifest(root=str(data), classes=["notumor", "tumor"], seed=1, origin="a carve of two sets",
                             splits={"train": [Sample(p, p.split("/")[2]) for p in images[:4]] +
                                              [Sample("other/tumor/img_000.jpg", "tumor")],
                                     "validation": [Sample(p, p.split("/")[2]) for p in images[4:]]})
    manifest.save(tmp_path / "split.json")
    config = TrainConfig(data=str(data / "four"), out=str(tmp_path / "out"), split=str(tmp_path / "split.json"))
    carved = _split(config, discover(data / "four"))
    assert [s.path for s in carved.splits["train"]] == [p[len("four/"):] for p in images[:4]]
    assert [s.path for s in carved.splits["validation"]] == [p[len("four/"):] for p in images[4:]]
    assert carved.root == str(data / "four") and "four" in carved.origin
    elsewhere = tmp_path / "elsewhere"
    write_class_folder(elsewhere, {"tumor": 2})
    with pytest.raises(DatasetError, match="was made for"):  # a data folder outside the split's
        _split(TrainConfig(data=str(elsewhere), out="x", split=str(tmp_path / "split.json")), discover(elsewhere))


def test_a_saved_split_with_a_calibration_fraction_keeps_its_validation_and_test_images(tmp_path):
    """The calibration comes out of its training images alone: a retrained model is tested on the same images."""
    from brain_cnn.data.dataset import discover
    from brain_cnn.data.leakage import grouped_split
    from brain_cnn.errors import DatasetError
    from brain_cnn.training.run import _split

    from conftest import write_class_folder

    data = tmp_path / "data"
    write_class_folder(data, {"no": 20, "yes": 20})
    saved = grouped_split(discover(data), seed=3, validation_fraction=0.1, test_fraction=0.15)
    saved.save(tmp_path / "split.json")
    config = TrainConfig(data=str(data), out=str(tmp_path / "out"), split=str(tmp_path / "split.json"),
                         calibration_fraction=0.2)
    carved = _split(config, discover(data))
    for name in ("validation", "test"):
        assert carved.splits[name] == saved.splits[name]
    train, calibration = ({s.path for s in carved.splits[n]} for n in ("train", "calibration"))
    assert calibration and not train & calibration and train | calibration == {s.path for s in saved.splits["train"]}
    carved.save(tmp_path / "carved.json")
    with pytest.raises(DatasetError, match="has a calibration split already"):
        _split(TrainConfig(data=str(data), out="x", split=str(tmp_path / "carved.json"), calibration_fraction=0.1),
               discover(data))
    assert _split(TrainConfig(data=str(data), out="x", split=str(tmp_path / "carved.json")),
                  discover(data)).splits["calibration"] == carved.splits["calibration"]

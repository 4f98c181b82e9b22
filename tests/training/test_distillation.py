import json

import numpy as np
import pytest

from brain_cnn.training import run as training
from brain_cnn.cli import main
from brain_cnn.training.distillation import blend, soften, teacher_probabilities
from brain_cnn.errors import ModelFolderError
from brain_cnn.model.card import CARD_FILE, load_card
from brain_cnn.data.pipeline import targets
from brain_cnn.training.run import TrainConfig, train

PROBABILITIES = np.array([[0.97, 0.02, 0.01], [0.2, 0.5, 0.3]])


def test_soften_keeps_the_ranking_and_spreads_the_mass():
    assert np.allclose(soften(PROBABILITIES, 1.0), PROBABILITIES)
    soft = soften(PROBABILITIES, 2.0)
    assert np.allclose(soft.sum(axis=1), 1.0)
    assert (soft.argmax(axis=1) == PROBABILITIES.argmax(axis=1)).all()
    assert soft[0, 0] < 0.97 and soft[0, 2] > 0.01
    # softmax(log p / T) by hand for the first row
    expected = np.sqrt(PROBABILITIES[0]) / np.sqrt(PROBABILITIES[0]).sum()
    assert np.allclose(soft[0], expected)


def test_blend_mixes_labels_and_teacher():
    labels = np.eye(3)[[0, 2]]
    assert np.allclose(blend(labels, PROBABILITIES, 0.0, 2.0), labels)
    assert np.allclose(blend(labels, PROBABILITIES, 1.0, 1.0), PROBABILITIES)
    half = blend(labels, PROBABILITIES, 0.5, 1.0)
    assert np.allclose(half, (labels + PROBABILITIES) / 2) and np.allclose(half.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="weight"):
        blend(labels, PROBABILITIES, 1.5, 1.0)
    with pytest.raises(ValueError, match="temperature"):
        blend(labels, PROBABILITIES, 0.5, 0.0)


@pytest.mark.slow
def test_training_with_a_teacher_learns_from_its_probabilities(tiny_model, split_dataset, tmp_path, monkeypatch):
    seen = {}
    real = training.make_dataset

    def spy(split, classes, *args, **kwargs):
        if kwargs.get("training"):
            seen.update(split=split, classes=classes, soft_targets=kwargs.get("soft_targets"))
        return real(split, classes, *args, **kwargs)

    monkeypatch.setattr(training, "make_dataset", spy)
    config = TrainConfig(data=str(split_dataset), out=str(tmp_path / "student"), epochs=1, image_size=48, width=4,
                         depth=2, batch_size=8, max_steps=2, seed=3, teacher=str(tiny_model),
                         teacher_weight=0.4, teacher_temperature=3.0)
    folder = train(config)

    # the targets the network was fitted to are the blend of the labels and the teacher's own calls
    split = seen["split"]
    taught, _ = teacher_probabilities(str(tiny_model), split.images, seen["classes"], 48)
    expected = blend(targets(split.labels, seen["classes"]), taught, 0.4, 3.0)
    assert np.allclose(seen["soft_targets"], expected, atol=1e-5)
    assert not np.allclose(expected, targets(split.labels, seen["classes"]))

    card = json.loads((folder / CARD_FILE).read_text())
    teacher = card["training"]["teacher"]
    assert teacher["sha256"] == load_card(tiny_model).sha256 and teacher["folder"] == str(tiny_model)
    assert card["training"]["teacher_weight"] == 0.4 and "teacher's probabilities" in card["training"]["loss"]


@pytest.mark.slow
def test_a_teacher_of_another_input_size_is_refused(tiny_model, split_dataset, tmp_path):
    config = TrainConfig(data=str(split_dataset), out=str(tmp_path / "student"), epochs=1, image_size=40, width=4,
                         depth=2, batch_size=8, max_steps=1, teacher=str(tiny_model))
    with pytest.raises(ModelFolderError, match="--image-size 48"):
        train(config)


def test_a_missing_teacher_is_one_line(split_dataset, tmp_path, capsys):
    code = main(["train", "--data", str(split_dataset), "--out", str(tmp_path / "m"),
                 "--teacher", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code != 0 and "nowhere" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1

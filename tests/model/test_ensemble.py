import json
import shutil
import warnings

import numpy as np
import pytest

from brain_cnn.cli import main
from brain_cnn.training.ensemble import make_ensemble
from brain_cnn.errors import ModelFolderError
from brain_cnn.files import sha256_file
from brain_cnn.model.card import CARD_FILE, EVALUATION_FILE, MODEL_FILE, SPLIT_FILE
from brain_cnn.model.folder import load_model

from conftest import encode, phantom

pytestmark = pytest.mark.slow


def other_weights(source, folder, shift: float):
    """A copy of a model folder whose softmax layer gives other probabilities, its card's checksum updated."""
    import keras

    shutil.copytree(source, folder)
    model = keras.models.load_model(folder / MODEL_FILE, compile=False, safe_mode=True)
    kernel, bias = model.get_layer("probabilities").get_weights()
    model.get_layer("probabilities").set_weights([kernel * 3, bias + np.linspace(-shift, shift, len(bias))])
    model.save(folder / MODEL_FILE)
    card = json.loads((folder / CARD_FILE).read_text())
    card["sha256"] = sha256_file(folder / MODEL_FILE)
    (folder / CARD_FILE).write_text(json.dumps(card))
    return folder


@pytest.fixture(scope="module")
def pair(tiny_model, tmp_path_factory):
    """Two members on the same split with different weights, and their ensemble folder (not yet evaluated)."""
    models = tmp_path_factory.mktemp("ensemble")
    first = shutil.copytree(tiny_model, models / "first")
    second = other_weights(tiny_model, models / "second", 1.0)
    return first, second, make_ensemble([first, second], models / "both")


def inputs(size: int) -> np.ndarray:
    return np.stack([phantom(size, lesion=bool(s % 2), seed=s) for s in range(6)])[..., None].astype(np.uint8)


def test_an_ensemble_gives_the_mean_of_its_members_on_every_engine(pair):
    from brain_cnn.model.engines import forward

    first, second, both = pair
    members = [load_model(first), load_model(second)]
    ensemble = load_model(both)
    batch = inputs(ensemble.card.image_size).astype(np.float32)
    outputs = [forward(m.model, "tensorflow")(batch) for m in members]
    assert not np.allclose(outputs[0][1], outputs[1][1], atol=1e-3)  # the members differ
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed ONNX conversion only warns and falls back: make it fail here
        for engine in ("onnxruntime", "tensorflow"):
            features, probs = forward(ensemble.model, engine)(batch)
            np.testing.assert_allclose(probs, (outputs[0][1] + outputs[1][1]) / 2, atol=1e-5)
            np.testing.assert_allclose(features, outputs[0][0], atol=1e-4)  # the gate looks at the first member
    card = json.loads((both / CARD_FILE).read_text())
    assert [m["folder"] for m in card["members"]] == ["../first", "../second"]
    assert not (both / MODEL_FILE).exists() and card["training"]["parameters"] == 2 * members[0].model.count_params()


def test_an_ensemble_is_evaluated_and_predicts_like_any_model(pair, tmp_path):
    from brain_cnn.evaluation.evaluate import evaluate_model_folder
    from brain_cnn.inference.predictor import Predictor

    _, _, both = pair
    report = evaluate_model_folder(both)
    assert set(report["splits"]) == {"test", "validation"} and (both / EVALUATION_FILE).is_file()
    card = load_model(both).card
    assert card.metrics["test"]["accuracy"] == report["splits"]["test"]["accuracy"] and card.gate
    assert card.sha256 == report["sha256"] and len(card.sha256) == 64
    scan = tmp_path / "scan.png"
    scan.write_bytes(encode(phantom(96, lesion=True)))
    predictor = Predictor(both)
    (row,) = predictor.predict_files([scan])
    assert row["file"] == str(scan) and ("probabilities" in row or row["cannot_assess"].startswith("cannot assess"))
    probs = predictor.predict_inputs(inputs(card.image_size))
    assert probs.shape == (6, len(card.classes)) and np.allclose(probs.sum(axis=1), 1)


def test_an_ensembles_heat_map_is_its_members_mean(pair):
    from brain_cnn.explain.explainer import Explainer

    first, second, both = pair
    image = inputs(load_model(both).card.image_size)[1]
    maps = [Explainer(load_model(f).model).heatmap(image, 1, "Grad-CAM") for f in (first, second)]
    mean = (maps[0] + maps[1]) / 2
    combined = Explainer(load_model(both).model).heatmap(image, 1, "Grad-CAM")
    np.testing.assert_allclose(combined, mean / mean.max(), atol=1e-4)
    occlusion = Explainer(load_model(both).model).heatmap(image, 1, "Occlusion")
    assert occlusion.shape == image.shape[:2] and occlusion.max() == pytest.approx(1)


def test_a_member_changed_after_the_ensemble_was_made_is_refused(tiny_model, tmp_path):
    first = shutil.copytree(tiny_model, tmp_path / "first")
    second = shutil.copytree(tiny_model, tmp_path / "second")
    both = make_ensemble([first, second], tmp_path / "both")
    shutil.rmtree(second)
    other_weights(tiny_model, second, 2.0)  # retrained: a valid folder with other weights
    with pytest.raises(ModelFolderError, match="other weights than when the ensemble was made"):
        load_model(both)
    shutil.rmtree(second)
    with pytest.raises(ModelFolderError, match="not found"):
        load_model(both)


def test_members_must_share_classes_and_held_out_splits(tiny_model, tmp_path):
    first = shutil.copytree(tiny_model, tmp_path / "first")
    moved = shutil.copytree(tiny_model, tmp_path / "moved")
    split = json.loads((moved / SPLIT_FILE).read_text())
    split["splits"]["train"].append(split["splits"]["test"].pop())  # a test image it would have trained on
    (moved / SPLIT_FILE).write_text(json.dumps(split))
    with pytest.raises(ModelFolderError, match="different test splits"):
        make_ensemble([first, moved], tmp_path / "x")
    renamed = shutil.copytree(tiny_model, tmp_path / "renamed")
    card = json.loads((renamed / CARD_FILE).read_text())
    card["classes"] = card["classes"][::-1]
    (renamed / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelFolderError, match="has classes"):
        make_ensemble([first, renamed], tmp_path / "x")
    with pytest.raises(ModelFolderError, match="at least two"):
        make_ensemble([first], tmp_path / "x")


def test_ensemble_command_and_its_errors(tiny_model, tmp_path, capsys):
    first = shutil.copytree(tiny_model, tmp_path / "first")
    second = other_weights(tiny_model, tmp_path / "second", 0.5)
    out = tmp_path / "both"
    assert main(["ensemble", str(first), str(second), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 members" in printed and "test" in printed and (out / EVALUATION_FILE).is_file()
    for flip in ("off", "on"):
        assert main(["evaluate", "--model", str(out), "--flip", flip]) == 0
        assert json.loads((out / CARD_FILE).read_text())["flip_averaging"] is (flip == "on")
    assert "flip averaging on" in capsys.readouterr().out
    assert main(["export", "--model", str(out), "--format", "onnx", "--out", str(tmp_path / "both.onnx")]) == 0
    assert "match the Keras model" in capsys.readouterr().out
    assert main(["ensemble", str(first), str(first), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == "error: a member folder is listed twice"
    assert main(["ensemble", str(out), str(first), "--out", str(tmp_path / "x")]) == 2
    assert "is itself an ensemble" in capsys.readouterr().err
    assert main(["ensemble", str(first), str(second), "--out", str(tmp_path / "elsewhere" / "x")]) == 2
    assert "is not beside" in capsys.readouterr().err and not (tmp_path / "elsewhere").exists()
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "y"), "--init-from", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith("is an ensemble; start from one of its members")


def test_tumour_map_networks_are_refused_as_members(tiny_map_model, tmp_path):
    first = shutil.copytree(tiny_map_model, tmp_path / "first")
    second = shutil.copytree(tiny_map_model, tmp_path / "second")
    with pytest.raises(ModelFolderError, match="first is a tumour-map network; an ensemble averages classifiers"):
        make_ensemble([first, second], tmp_path / "both")


@pytest.mark.parametrize("member", ["/etc", "../../outside", "../both", "../first/../../outside"])
def test_a_card_naming_members_outside_its_models_folder_is_refused(tiny_model, tmp_path, member):
    models = tmp_path / "models"
    models.mkdir()
    first = shutil.copytree(tiny_model, models / "first")
    second = shutil.copytree(tiny_model, models / "second")
    both = make_ensemble([first, second], models / "both")
    shutil.copytree(tiny_model, tmp_path / "outside")  # a valid model folder, but not in the models folder
    card = json.loads((both / CARD_FILE).read_text())
    card["members"][1]["folder"] = member
    (both / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelFolderError, match="members are folders of the same models folder|absolute path"):
        load_model(both)


def test_an_ensemble_calibrates_on_what_every_member_left_unseen(tmp_path):
    from brain_cnn.data.dataset import Sample, SplitManifest
    from brain_cnn.training.ensemble import _union_split

    held = {"validation": [Sample("v.png", "a")], "test": [Sample("t.png", "a")]}
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, train, calibration in ((first, ["x.png"], ["c1.png", "c2.png"]),
                                       (second, ["x.png", "c2.png"], ["c1.png", "c3.png"])):
        folder.mkdir()
        SplitManifest(str(tmp_path), ["a"], 42, {"train": [Sample(p, "a") for p in train], **held,
                                                 "calibration": [Sample(p, "a") for p in calibration]},
                      "made here").save(folder / SPLIT_FILE)
    union = _union_split([first, second])
    # c2 was trained on by the second member, so it calibrates neither; c3 only the second member calibrated on,
    # and the first never saw it.
    assert [s.path for s in union.splits["calibration"]] == ["c1.png", "c3.png"]
    assert union.splits["validation"] == held["validation"] and union.splits["test"] == held["test"]

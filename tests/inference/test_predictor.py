import json

import numpy as np
import pytest

from brain_cnn.inference.predictor import Predictor, expand_inputs

from conftest import encode, phantom


@pytest.fixture(scope="module")
def predictor(tiny_model):
    predictor = Predictor(tiny_model)
    predictor.gate = None  # these tests are about order and batching, not what the tiny model's gate refuses
    return predictor


def test_results_come_in_input_order_across_batches(predictor, tmp_path):
    files = []
    for i in range(7):
        path = tmp_path / f"{i}.png"
        path.write_bytes(b"" if i == 3 else encode(phantom(64, lesion=i % 2 == 0, seed=i)))
        files.append(path)
    results = list(predictor.predict_files(files, batch_size=3))
    assert [r["file"] for r in results] == [str(f) for f in files]
    assert "error" in results[3] and all("label" in r for i, r in enumerate(results) if i != 3)
    single = predictor.predict_bytes(files[5].read_bytes(), "5.png")
    assert single["probabilities"] == pytest.approx(results[5]["probabilities"], abs=1e-5)


def test_card_temperature_is_applied(tiny_model, tmp_path):
    import shutil

    folder = tmp_path / "hot"
    shutil.copytree(tiny_model, folder)
    card = json.loads((folder / "card.json").read_text())
    card["gate"] = {}  # this test is about the temperature, not about what the tiny model's gate refuses
    card["temperature"] = 1.0
    (folder / "card.json").write_text(json.dumps(card))
    plain = Predictor(folder).predict_bytes(encode(phantom(64, lesion=True)))
    card["temperature"] = 0.1
    (folder / "card.json").write_text(json.dumps(card))
    sharp = Predictor(folder).predict_bytes(encode(phantom(64, lesion=True)))
    assert sharp["label"] == plain["label"]
    assert max(sharp["probabilities"].values()) >= max(plain["probabilities"].values())


def test_a_tumour_first_card_calls_the_tumour_the_top_class_calls_no_tumour(tmp_path):
    from conftest import constant_model

    example = {"glioma": 0.30, "meningioma": 0.30, "notumor": 0.40}
    scan = encode(phantom(64, lesion=True))
    top = Predictor(constant_model(tmp_path / "top", example)).predict_bytes(scan)
    first = Predictor(constant_model(tmp_path / "first", example, "tumour first")).predict_bytes(scan)
    assert top["probabilities"] == pytest.approx(example, abs=1e-5)
    assert first["probabilities"] == pytest.approx(example, abs=1e-5)
    assert top["label"] == "notumor" and first["label"] == "glioma"


def test_expand_inputs_walks_folders_and_keeps_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jpg").write_bytes(b"x")
    (tmp_path / "sub" / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert expand_inputs([tmp_path / "sub", tmp_path / "notes.txt"]) == [tmp_path / "sub" / "a.jpg", tmp_path / "notes.txt"]


def test_empty_input_gives_empty_output(predictor):
    assert predictor.predict_inputs(np.zeros((0, 48, 48, 1), np.uint8)).shape == (0, 2)


def test_engines_agree_and_flip_averaging_runs_in_one_batch(predictor, monkeypatch):
    from brain_cnn.model.engines import ENGINE_ENV, ENGINES
    from brain_cnn.inference.predictor import predict_outputs

    images = np.stack([phantom(48, lesion=i % 2 == 1, seed=i)[..., None] for i in range(9)])
    results = {}
    for engine in ENGINES:
        monkeypatch.setenv(ENGINE_ENV, engine)
        results[engine] = predict_outputs(predictor.model, images, batch_size=4)
    (f1, p1), (f2, p2) = results.values()
    assert np.allclose(p1, p2, atol=1e-5) and np.allclose(f1, f2, atol=1e-3 * max(1.0, float(np.abs(f1).max())))
    flipped = predict_outputs(predictor.model, images, batch_size=4, flip=True)
    mirror = predict_outputs(predictor.model, np.ascontiguousarray(images[:, :, ::-1]), batch_size=16)
    assert np.allclose(flipped[1], (p2 + mirror[1]) / 2, atol=1e-5)


def test_a_map_model_gives_a_map_with_each_call_and_mirrors_it_back(tiny_map_model):
    from brain_cnn.inference.predictor import predict_all
    from brain_cnn.scan.preprocess import load_slices

    predictor = Predictor(tiny_map_model)
    assert predictor.has_map
    inputs, scan = load_slices(encode(phantom(96, lesion=True, seed=77)), predictor.image_size, "x.png")
    call = predictor.call_slices(scan, inputs)[0]
    assert call.tumour_map.shape == (24, 24) and call.label == "glioma"
    _, _, plain = predict_all(predictor.model, inputs)
    _, _, mirrored = predict_all(predictor.model, inputs[:, :, ::-1])
    _, _, averaged = predict_all(predictor.model, inputs, flip=True)
    np.testing.assert_allclose(averaged, (plain + mirrored[:, :, ::-1]) / 2, atol=1e-5)
    assert predict_all(predictor.model, inputs[:0])[2].shape == (0, 24, 24)


def test_an_ordinary_model_has_no_map(tiny_model):
    predictor = Predictor(tiny_model)
    assert not predictor.has_map
    result = predictor.predict_bytes(encode(phantom(64, lesion=True, seed=5)))
    assert result["label"] in predictor.classes

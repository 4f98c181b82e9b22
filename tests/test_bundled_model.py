"""The bundled model, evaluated on the official test split, scores what its card claims."""

import json

import pytest

from conftest import PROJECT, shared_data

MODEL = PROJECT / "models" / "brain-tumor-mri"


def copy_model(name: str, into, data):
    """A copy of a committed model folder (and an ensemble's members beside it) whose card points at ``data``."""
    import shutil

    folder = into / name
    shutil.copytree(PROJECT / "models" / name, folder)  # evaluation writes its report; keep the committed one
    card = json.loads((folder / "card.json").read_text())
    for member in card.get("members", []):
        shutil.copytree((PROJECT / "models" / name / member["folder"]).resolve(), (folder / member["folder"]).resolve())
    # The card records the data root as given at training time; point the copy at this machine's data.
    card["dataset"]["root"] = str(data)
    (folder / "card.json").write_text(json.dumps(card))
    return folder, card


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("name, floor", [("brain-tumor-mri", 0.98), ("brain-tumor-mri-ensemble", 0.985)])
def test_bundled_models_reproduce_their_cards_on_the_official_test_split(tmp_path, name, floor):
    data = shared_data() / "brain-tumor-mri"
    if not (data / "Testing").is_dir():
        pytest.skip(f"the 4-class data set is not at {data} (set BRAIN_CNN_DATA to its parent folder)")
    from brain_cnn.evaluation.evaluate import evaluate_model_folder

    folder, card = copy_model(name, tmp_path, data)
    report = evaluate_model_folder(folder, data=data, splits=["test"])
    test = report["splits"]["test"]
    assert test["count"] == 1311
    assert test["accuracy"] == pytest.approx(card["metrics"]["test"]["accuracy"], abs=1e-4)
    assert test["accuracy"] >= floor  # the shipped models score 0.9832 and 0.9863; catch a broken model, not noise


@pytest.mark.slow
def test_bundled_gate_refuses_images_that_are_not_brain_mri():
    """scikit-image's photographs and documents and drawn images (benchmarks/ood_gate.py prints each answer)."""
    from benchmarks.nonbrain import drawn_images, non_brain_images

    from brain_cnn.inference.predictor import Predictor

    predictor = Predictor(MODEL)
    images = non_brain_images()
    answers = {name: predictor.predict_bytes(data, name) for name, data in images.items()}
    refused = [name for name, answer in answers.items() if answer["label"] is None]
    for always in ("blank black", "blank white", "uniform noise", "colour noise", "text page (drawn)",
                   "chest X-ray (drawn)", "chest X-ray, small (drawn)"):
        assert always in refused
    # Measured 32 of 32 with the three-layer gate (29 with the last layer alone).
    assert len(refused) >= 0.9 * len(images), sorted(set(images) - set(refused))
    assert len(drawn_images()) == 10


@pytest.mark.slow
@pytest.mark.realdata
def test_bundled_model_reproduces_its_screening_of_the_yes_no_set(tmp_path):
    data = shared_data() / "brain-tumor-yes-no"
    if not data.is_dir():
        pytest.skip(f"the yes/no data set is not at {data} (set BRAIN_CNN_DATA to its parent folder)")
    from brain_cnn.evaluation.screening import evaluate_screening

    claimed = json.loads((MODEL / "external.json").read_text())["brain-tumor-yes-no"]
    folder, _ = copy_model(MODEL.name, tmp_path, shared_data() / "brain-tumor-mri")
    report = evaluate_screening(folder, data)
    assert report["count"] == claimed["count"] == 253
    assert report["overall"]["sensitivity"] == pytest.approx(claimed["overall"]["sensitivity"], abs=1e-3)
    assert report["overall"]["specificity"] == pytest.approx(claimed["overall"]["specificity"], abs=1e-3)
    assert report["seen_in_training"] == claimed["seen_in_training"]


@pytest.mark.slow
def test_the_default_model_is_committed_loads_and_claims_the_goal():
    """The folder the app opens first and `predict` uses exists, passes its checks, and its card claims 98.5 %."""
    from brain_cnn.model.folder import DEFAULT_MODEL, load_model

    loaded = load_model(PROJECT / "models" / DEFAULT_MODEL)
    assert loaded.card.classes == ["glioma", "meningioma", "notumor", "pituitary"]
    assert loaded.card.metrics["test"]["accuracy"] >= 0.985 and loaded.card.metrics["test"]["images"] == 1311


@pytest.mark.slow
@pytest.mark.realdata
def test_the_bundled_tumour_map_model_reproduces_its_card(tmp_path):
    data = shared_data()
    if not (data / "brain-tumor-mri" / "Testing").is_dir():
        pytest.skip(f"the 4-class data set is not at {data / 'brain-tumor-mri'} (set BRAIN_CNN_DATA to its parent)")
    from brain_cnn.evaluation.evaluate import evaluate_model_folder
    from brain_cnn.inference.predictor import Predictor

    folder, card = copy_model("brain-tumor-maps", tmp_path, data)
    assert Predictor(folder).has_map
    report = evaluate_model_folder(folder, data=data, splits=["test"])
    test = report["splits"]["test"]
    assert test["count"] == 1311
    assert test["accuracy"] == pytest.approx(card["metrics"]["test"]["accuracy"], abs=1e-4)

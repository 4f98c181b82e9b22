"""The bundled model, evaluated on the official test split, scores what its card claims."""

import json

import pytest

from conftest import PROJECT, shared_data

MODEL = PROJECT / "models" / "brain-tumor-mri"


@pytest.mark.slow
@pytest.mark.realdata
def test_bundled_model_reproduces_its_card_on_the_official_test_split(tmp_path):
    data = shared_data() / "brain-tumor-mri"
    if not (data / "Testing").is_dir():
        pytest.skip(f"the 4-class data set is not at {data} (set BRAIN_CNN_DATA to its parent folder)")
    import shutil

    from brain_cnn.evaluation import evaluate_model_folder

    folder = tmp_path / MODEL.name
    shutil.copytree(MODEL, folder)  # evaluation writes its report; keep the committed one untouched
    card = json.loads((folder / "card.json").read_text())
    # The card records the data root as given at training time; point the copy at this machine's data.
    card["dataset"]["root"] = str(data)
    (folder / "card.json").write_text(json.dumps(card))
    report = evaluate_model_folder(folder, data=data, splits=["test"])
    test = report["splits"]["test"]
    assert test["count"] == 1311
    assert test["accuracy"] == pytest.approx(card["metrics"]["test"]["accuracy"], abs=1e-4)
    assert test["accuracy"] >= 0.985

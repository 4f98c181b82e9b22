import json
import shutil

import pytest

from brain_cnn.errors import DatasetError
from brain_cnn.evaluation.evaluate import evaluate_model_folder
from brain_cnn.reports.tables import summary_table


@pytest.fixture
def folder(tiny_model, tmp_path):
    target = tmp_path / "tiny"
    shutil.copytree(tiny_model, target)
    return target


def test_own_data_uses_the_saved_split_and_fits_the_temperature(folder):
    report = evaluate_model_folder(folder)
    assert set(report["splits"]) == {"test", "validation"}
    assert report["temperature_fitted_on"] == "validation" and report["temperature"] > 0
    split = json.loads((folder / "split.json").read_text())
    assert report["splits"]["test"]["count"] == len(split["splits"]["test"])
    card = json.loads((folder / "card.json").read_text())
    assert card["temperature"] == report["temperature"]
    assert card["metrics"]["test"]["accuracy"] == report["splits"]["test"]["accuracy"]
    assert "ece_before_scaling" in card["metrics"]["validation"]
    assert "temperature" in summary_table(report)


def test_test_split_alone_keeps_the_cards_temperature(folder):
    card = json.loads((folder / "card.json").read_text())
    card["temperature"] = 2.5
    (folder / "card.json").write_text(json.dumps(card))
    report = evaluate_model_folder(folder, splits=["test"])
    assert report["temperature"] == 2.5 and report["temperature_fitted_on"] == "taken from the model card"


def test_missing_split_and_foreign_classes_are_clear_errors(folder, tmp_path):
    from conftest import write_class_folder

    with pytest.raises(DatasetError, match="no holdout split"):
        evaluate_model_folder(folder, splits=["holdout"])
    write_class_folder(tmp_path / "other", {"cat": 2, "dog": 2})
    with pytest.raises(DatasetError, match="not among the model's classes"):
        evaluate_model_folder(folder, data=tmp_path / "other")


def test_a_model_without_maps_decodes_no_masks(folder, tmp_path, monkeypatch):
    import brain_cnn.evaluation.evaluate as evaluate
    from brain_cnn.errors import ModelFolderError

    from conftest import write_class_folder

    write_class_folder(tmp_path / "scans", {"notumor": 2, "tumor": 2}, start_seed=7000)
    (tmp_path / "scans-masks" / "tumor").mkdir(parents=True)
    asked = []
    real = evaluate.decode_samples
    monkeypatch.setattr(evaluate, "decode_samples", lambda *a, **k: asked.append(k.get("masks")) or real(*a, **k))
    report = evaluate_model_folder(folder, data=tmp_path / "scans")
    assert asked == [None] and "tumour_maps" not in report["splits"]["all"]
    with pytest.raises(ModelFolderError, match="needs a model with tumour maps"):
        evaluate_model_folder(folder, data=tmp_path / "scans", masks=tmp_path / "scans-masks")


def test_limitations_say_which_calls_survive_the_tumours_removal():
    from brain_cnn.reports.sentences import limitations

    report = {"temperature": 1.2, "splits": {"test": {"count": 10, "accuracy": 0.9}},
              "explanations": {"removal": {"by_class": {"glioma": {"called_tumour_hidden": 0.973},
                                                        "meningioma": {"called_tumour_hidden": 0.444},
                                                        "other": {"called_tumour_hidden": None}}}}}
    notes = limitations({"dataset": {"name": "d"}}, report)
    removal = [n for n in notes if "painted out" in n]
    assert len(removal) == 1 and "same call for 97% of the glioma images:" in removal[0] and "meningioma" not in removal[0]
    del report["explanations"]
    assert not any("painted out" in n for n in limitations({"dataset": {"name": "d"}}, report))


@pytest.mark.parametrize("decision,accuracy,sensitivity", [(None, 2 / 6, 0.0), ("tumour first", 3 / 6, 1.0)])
def test_the_calls_are_made_by_the_cards_rule_or_the_one_given(tmp_path, decision, accuracy, sensitivity):
    from conftest import constant_model, write_class_folder

    # Every input gets glioma 35 %, meningioma 25 %, notumor 40 %: the top class is notumor, tumour first glioma.
    folder = constant_model(tmp_path / "constant", {"glioma": 0.35, "meningioma": 0.25, "notumor": 0.40})
    write_class_folder(tmp_path / "scans" / "Testing", {"glioma": 3, "meningioma": 1, "notumor": 2})
    report = evaluate_model_folder(folder, data=tmp_path / "scans", splits=["test"], decision=decision)
    assert report["decision"] == (decision or "top class")
    test = report["splits"]["test"]
    assert test["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert test["screening"]["sensitivity"] == sensitivity
    assert json.loads((folder / "card.json").read_text())["decision"] == "top class"  # another data set's report
    assert f"calls by the {decision or 'top class'} rule" in summary_table(report)

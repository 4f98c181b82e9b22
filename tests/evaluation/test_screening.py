import json
import shutil

import numpy as np
import pytest
from conftest import write_class_folder

from brain_cnn.cli import main
from brain_cnn.errors import DatasetError
from brain_cnn.evaluation.screening import evaluate_screening, group_screening, screening_errors
from brain_cnn.model.card import EXTERNAL_FILE, ModelCard, read_external
from brain_cnn.reports.tables import screening_rows, screening_table


def test_group_figures_on_a_known_confusion():
    kinds = np.array(["tumour"] * 3 + ["no tumour"] * 2 + ["lesion"] * 2)
    called = np.array([1, 1, 0, 0, 1, 1, 0], bool)
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.75, 0.9, 0.2])
    result = group_screening(kinds, called, score, np.array(["glioma", "", "glioma", "", "", "", ""]),
                             np.array(["glioma", "meningioma", "notumor", "notumor", "glioma", "glioma", "notumor"]))
    assert (result["true_positive"], result["false_negative"], result["true_negative"], result["false_positive"]) \
        == (2, 1, 1, 1)
    assert result["sensitivity"] == pytest.approx(2 / 3, abs=1e-4) and result["specificity"] == 0.5
    low, high = result["sensitivity_ci95"]
    assert low < 2 / 3 < high
    assert result["roc_auc"] == pytest.approx(5 / 6, abs=1e-4)  # 5 of the 6 tumour/normal pairs ranked right
    # Two normals: 90 % specificity lets none above the threshold (0.75); lesions take no part.
    assert result["sensitivity_at_90_specificity"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["lesion_called_tumour"] == 0.5
    assert result["type_accuracy"] == 0.5 and result["type_known"] == 2
    assert result["meets_goal"] is False


def test_a_group_without_normals_has_no_specificity():
    result = group_screening(np.array(["tumour", "tumour"]), np.array([True, True]), np.array([0.9, 0.8]))
    assert result["sensitivity"] == 1.0 and result["specificity"] is None and result["roc_auc"] is None
    assert result["sensitivity_at_90_specificity"] is None
    assert result["meets_goal"] is None


def test_errors_are_listed_most_confident_first_from_the_kept_images():
    kinds = np.array(["tumour", "tumour", "tumour", "no tumour", "no tumour", "lesion", "tumour"])
    called = np.array([0, 0, 1, 1, 1, 0, 0], bool)
    score = np.array([0.30, 0.05, 0.90, 0.60, 0.95, 0.10, 0.01])
    keep = np.array([1, 1, 1, 1, 1, 1, 0], bool)  # the last was trained on: not listed
    files = [f"f{i}.jpg" for i in range(7)]
    folders, sequences = np.array(["G T1"] * 3 + ["N T1"] * 2 + ["L T1", "G T2"]), np.array(["T1"] * 6 + ["T2"])
    errors = screening_errors(files, folders, sequences, kinds, called, score, keep)
    assert [e["file"] for e in errors["missed_tumours"]] == ["f1.jpg", "f0.jpg"]  # lowest tumour score first
    assert [e["file"] for e in errors["flagged_normals"]] == ["f4.jpg", "f3.jpg"]  # highest first
    assert errors["missed_count"] == 2 and errors["flagged_count"] == 2
    assert errors["missed_tumours"][0] == {"file": "f1.jpg", "folder": "G T1", "sequence": "T1", "tumour_score": 0.05}
    capped = screening_errors(files, folders, sequences, kinds, called, score, keep, limit=1)
    assert len(capped["missed_tumours"]) == 1 and capped["missed_count"] == 2


@pytest.fixture
def folder(tiny_model, tmp_path):
    target = tmp_path / "tiny"
    shutil.copytree(tiny_model, target)
    return target


@pytest.fixture
def other_source(tmp_path):
    root = tmp_path / "hospital"
    write_class_folder(root, {"Glioma T1": 4, "Glioma T2": 4, "_NORMAL T1": 3, "_NORMAL T2": 3, "Granuloma T1": 2},
                       size=64, start_seed=500)
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"classes": {"Glioma": "glioma", "_NORMAL": "notumor", "Granuloma": "lesion"}}))
    return root, mapping


def test_screening_per_sequence_and_class_folder(folder, other_source):
    root, mapping = other_source
    report = evaluate_screening(folder, root, mapping)
    assert report["count"] == 16 and report["overall"]["tumour"] == 8 and report["overall"]["no_tumour"] == 6
    assert report["overall"]["lesion"] == 2
    assert set(report["by_sequence"]) == {"T1", "T2"}
    assert report["by_sequence"]["T2"]["lesion"] == 0 and report["by_sequence"]["T1"]["tumour"] == 4
    assert report["by_class"]["Granuloma T1"]["kind"] == "lesion"
    assert report["seen_in_training"] == 0  # generated with other seeds than the training phantoms
    saved = read_external(folder)
    assert saved["hospital"]["sha256"] == report["sha256"]
    assert "sequence T1" in screening_table(report)
    # Every tumour it called no tumour is listed with its file, and found where the report says the data is.
    errors, overall = report["errors"], report["overall"]
    assert errors["missed_count"] == overall["false_negative"] and errors["flagged_count"] == overall["false_positive"]
    assert all((root / e["file"]).is_file() for e in errors["missed_tumours"] + errors["flagged_normals"])
    assert report["data_root"] == str(root)
    report["errors"] = screening_errors(["a.jpg", "b.jpg"], np.array(["Glioma T1"] * 2), np.array(["T1"] * 2),
                                        np.array(["tumour"] * 2), np.zeros(2, bool), np.array([0.2, 0.1]),
                                        np.ones(2, bool))
    assert "2 tumours called no tumour (unseen by training); most confident: b.jpg (0.10), a.jpg (0.20)" \
        in screening_table(report)


def test_duplicates_of_training_images_are_counted_and_left_out(folder, other_source, tmp_path):
    root, mapping = other_source
    split = json.loads((folder / "split.json").read_text())
    first = split["splits"]["train"][0][0]
    shutil.copy(f"{split['root']}/{first}", root / "Glioma T1" / "copy.jpg")
    report = evaluate_screening(folder, root, mapping)
    assert report["seen_in_training"] >= 1
    assert report["without_training_duplicates"]["overall"]["tumour"] == report["overall"]["tumour"] - 1
    # The dashboard table shows the same figures as the card: without the copies.
    first_row = screening_rows({"hospital": report})[0]
    assert first_row["tumour"] == report["overall"]["tumour"] - 1
    assert first_row["left out (in training)"] == report["seen_in_training"]


def test_a_model_without_a_no_tumour_class_cannot_screen(folder, other_source):
    card = json.loads((folder / "card.json").read_text())
    card["classes"] = ["cat", "dog"]
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(DatasetError, match="no no-tumour class"):
        evaluate_screening(folder, other_source[0], other_source[1])


def test_cli_screens_another_data_set_and_asks_for_a_map(folder, other_source, capsys):
    root, mapping = other_source
    assert main(["evaluate", "--model", str(folder), "--data", str(root), "--label-map", str(mapping)]) == 0
    assert "screening: model" in capsys.readouterr().out
    assert (folder / EXTERNAL_FILE).is_file()
    assert main(["evaluate", "--model", str(folder), "--data", str(root)]) == 2
    assert "no bundled label map for hospital" in capsys.readouterr().err


def test_screening_one_split_of_a_manifest_keeps_the_whole_sets_entry(folder, other_source, tmp_path):
    from brain_cnn.data.dataset import SplitManifest, discover

    root, mapping = other_source
    samples = discover(root).splits["all"]
    manifest = tmp_path / "split.json"
    SplitManifest(str(root), sorted({s.label for s in samples}), 42,
                  {"train": samples[:10], "test": samples[10:]}, "test").save(manifest)
    evaluate_screening(folder, root, mapping)
    report = evaluate_screening(folder, manifest, mapping, splits=["test"])
    assert report["count"] == len(samples) - 10 and report["data_name"] == "hospital"
    assert report["data_root"] == str(root)  # the manifest's folder, where its files are
    saved = read_external(folder)
    assert saved["hospital"]["count"] == 16 and saved["hospital, test split"]["count"] == 6
    with pytest.raises(DatasetError, match="no validation split"):
        evaluate_screening(folder, manifest, mapping, splits=["validation"])


def test_card_sentences_say_when_a_screened_set_was_partly_in_training():
    from brain_cnn.reports.sentences import validation_statements

    figures = {"sensitivity": 0.95, "specificity": 0.92, "meets_goal": True}
    external = {name: {"data_name": name, "count": 10, "seen_in_training": 0, "overall": figures}
                for name in ("brain-tumor-44c", "brain-tumor-yes-no")}
    lines = validation_statements(external, None, {"brain-tumor-mri", "brain-tumor-44c"})
    assert lines[0].endswith("(a source it was partly trained on, so not independent).")
    assert lines[1].endswith("(goal met).")


def test_the_data_sets_a_model_trained_on_come_from_its_card():
    card = ModelCard(name="m", classes=["a", "b"], image_size=32, dataset={"name": "brain-tumor-mri", "sources": [
        {"name": "scans (2024) (training split of runs/x/split.json)", "data_set": "scans (2024)", "label_map": "m"},
        {"name": "brain-tumor-44c (training split of models/brain-tumor-44c/split.json)", "label_map": "m"},  # older card
        {"name": "brain-tumor-mri", "excluded_near_duplicates_of_held_out": 3},  # the main set's exclusion entry
    ]})
    assert card.trained_data_sets() == {"brain-tumor-mri", "scans (2024)", "brain-tumor-44c"}


def _screened(name, data_name, sequence, sensitivity, specificity, tumour=100, normal=50):
    group = {"tumour": tumour, "no_tumour": normal, "sensitivity": sensitivity, "specificity": specificity}
    return {name: {"data_name": data_name, "seen_in_training": 0, "by_sequence": {sequence: group}}}


def test_a_scans_sequence_note_gives_the_models_figures_on_that_sequence():
    from brain_cnn.reports.sentences import sequence_note

    external = {**_screened("own, test split", "own", "T2", 0.97, 0.95), **_screened("other", "other", "T2", 0.33, 0.98)}
    note = sequence_note("T2", "TR 4000 ms, TE 100 ms", external, trained_on={"main", "own"})
    # A source the model never trained on speaks for new scans before one it partly trained on.
    assert note == ("T2 scan (TR 4000 ms, TE 100 ms). On T2 slices of other (a source it was not trained on) this "
                    "model found 33% of 100 tumour slices and kept 98% of 50 normal slices normal. A 'no tumour' call "
                    "on this scan does not rule a tumour out.")
    partly = sequence_note("T2", "TR 4000 ms, TE 100 ms", external, trained_on={"main", "own", "other"})
    assert "of own, test split (a source it was partly trained on) this model found 97%" in partly
    assert "does not rule" not in partly  # found at least 90 % of the tumours
    no_normals = sequence_note("T1C+", "e", _screened("x", "x", "T1C+", 0.5, None), set())
    assert "found 50% of 100 tumour slices." in no_normals
    assert sequence_note("FLAIR", "e", external, set()).endswith(
        "This model has not been screened on FLAIR slices of another source, so how well it finds tumours on them "
        "is not known.")


@pytest.mark.parametrize("card_rule,given,found", [("top class", None, 0.0), ("tumour first", None, 1.0),
                                                   ("top class", "tumour first", 1.0)])
def test_screening_calls_by_the_cards_rule_or_the_one_given(tmp_path, other_source, card_rule, given, found):
    from conftest import constant_model

    # Every input gets glioma 35 %, meningioma 25 %, notumor 40 %: a tumour only by the tumour-first rule.
    model = constant_model(tmp_path / "constant", {"glioma": 0.35, "meningioma": 0.25, "notumor": 0.40}, card_rule)
    report = evaluate_screening(model, *other_source, decision=given)
    assert report["decision"] == (given or card_rule)
    assert report["overall"]["sensitivity"] == found and report["overall"]["specificity"] == 1 - found
    assert report["operating_point"].startswith("tumour when the tumour classes together" if found else
                                                "tumour when the top calibrated class")
    assert report["errors"]["missed_count"] == (0 if found else 8)


def test_a_calibrated_model_reports_its_sets_and_screening_threshold_on_another_source(folder, other_source):
    from brain_cnn.files import sha256_file
    from brain_cnn.inference.conformal import CONFORMAL_FILE, Conformal
    from brain_cnn.model.card import load_card

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 30)  # notumor, tumor
    p_tumour = np.clip(np.where(labels == 1, 0.8, 0.2) + rng.normal(0, 0.15, 60), 0.01, 0.99)
    # By hand: a slice at the k-th lowest of the 30 calibration tumours has p-value (k + 1) / 31, which first
    # reaches 5 % at k = 1: the threshold is the lowest calibration tumour's probability.
    threshold = np.sort(p_tumour[labels == 1])[0]
    Conformal.fit(np.stack([1 - p_tumour, p_tumour], axis=1), labels, ["notumor", "tumor"]).save(
        folder / CONFORMAL_FILE)
    card = load_card(folder)
    card.conformal = {"file": CONFORMAL_FILE, "sha256": sha256_file(folder / CONFORMAL_FILE)}
    card.save(folder)
    root, mapping = other_source
    report = evaluate_screening(folder, root, mapping)["conformal"]
    overall = report["overall"]
    assert overall["images"] == 14  # the two granulomas, lesions, are neither a tumour nor a normal scan
    assert 0 <= overall["presence_coverage"] <= 1 and set(report["by_sequence"]) == {"T1", "T2"}
    screening = overall["screening"]
    assert screening["tumours"] == 8 and screening["normals"] == 6
    assert screening["threshold"] == round(threshold, 6)
    from brain_cnn.evaluation.screening import screening_pass
    from brain_cnn.model.folder import load_model

    done = screening_pass(load_model(folder), root, mapping)
    presence = 1 - done.probs[:, 0]
    tumours = np.array([kind == "tumour" for _, kind, _, _ in done.kept])
    assert screening["missed"] == int((presence[tumours] < threshold).sum())
    assert screening["normals_flagged"] == int((presence[[kind == "no tumour" for _, kind, _, _ in done.kept]]
                                                >= threshold).sum())

"""Conformal prediction sets end to end: a calibration split carved at training, fitted by evaluate, printed by
predict."""

import json

import pytest

from brain_cnn.cli import main
from brain_cnn.inference.conformal import Conformal
from brain_cnn.model.folder import load_model

from conftest import write_class_folder


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "phantoms"
    write_class_folder(root / "Training", {"notumor": 30, "tumor": 30})
    write_class_folder(root / "Testing", {"notumor": 8, "tumor": 8}, start_seed=1000)
    out = root.parent / "models" / "tiny"
    code = main(["train", "--data", str(root), "--out", str(out), "--epochs", "2", "--image-size", "48",
                 "--width", "4", "--depth", "2", "--batch-size", "8", "--max-steps", "3", "--seed", "1",
                 "--calibration-fraction", "0.25"])
    assert code == 0
    return root, out


@pytest.mark.slow
def test_evaluate_calibrates_on_the_calibration_split_only(calibrated):
    root, out = calibrated
    split = json.loads((out / "split.json").read_text())["splits"]
    calibration = {p for p, _ in split["calibration"]}
    assert 10 <= len(calibration) <= 18  # about a quarter of 60, carved from Training by groups
    assert not calibration & {p for name in ("train", "validation", "test") for p, _ in split[name]}
    card = json.loads((out / "card.json").read_text())
    assert card["conformal"]["calibration_images"] == len(calibration) and card["conformal"]["file"] == "conformal.npz"
    assert 0 <= card["metrics"]["test"]["90% set coverage"] <= 1  # the realised coverage, beside the other figures
    from brain_cnn.reports.tables import summary_table

    printed = summary_table(json.loads((out / "evaluation.json").read_text()))
    assert "90% sets: coverage" in printed and "mean size" in printed
    loaded = load_model(out)
    assert isinstance(loaded.conformal, Conformal) and len(loaded.conformal.scores) == len(calibration)
    test = json.loads((out / "evaluation.json").read_text())["splits"]["test"]["conformal"]
    assert test["images"] == 16 and test["coverage_level"] == 0.9
    assert 0.0 <= test["coverage"] <= 1.0 and test["per_class"].keys() == {"notumor", "tumor"}
    # About 7 calibration tumours cannot bound a 5 % missed rate (20 are needed): said, not faked.
    assert "needs at least 20 calibration tumours" in test["screening"]["unavailable"]


@pytest.mark.slow
def test_predict_prints_the_set_and_refuses_a_level_the_calibration_cannot_give(calibrated, capsys):
    root, out = calibrated
    capsys.readouterr()
    assert main(["predict", "--model", str(out), "--json", str(root / "Testing")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    accepted = [r for r in lines if r["label"] is not None]
    assert accepted and all(r["coverage"] == 0.9 for r in accepted)
    for r in accepted:
        probabilities = r["probabilities"]
        assert set(r["prediction_set"]) <= set(probabilities)
        assert r["prediction_set"] == sorted(r["prediction_set"], key=lambda c: -probabilities[c])
    assert main(["predict", "--model", str(out), "--json", "--coverage", "0.6", str(root / "Testing")]) == 0
    lower = {r["file"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    # Nested: a lower level never adds a class.
    assert all(set(lower[r["file"]]["prediction_set"]) <= set(r["prediction_set"]) for r in accepted)
    assert main(["predict", "--model", str(out), "--coverage", "0.95", str(root / "Testing")]) != 0
    said = capsys.readouterr().err
    assert "needs at least 20" in said and "Traceback" not in said
    assert main(["predict", "--model", str(out), "--coverage", "1.5", str(root / "Testing")]) != 0
    assert "between 0 and 1" in capsys.readouterr().err


@pytest.mark.slow
def test_plain_output_says_the_set(calibrated, capsys):
    root, out = calibrated
    capsys.readouterr()
    assert main(["predict", "--model", str(out), str(root / "Testing" / "tumor")]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    with_set = [row for row in rows if any(cell.startswith("90% set: ") for cell in row)]
    assert with_set and all(row in with_set or "cannot assess" in "".join(row) for row in rows)
    assert all(len(row) >= 4 for row in with_set)


@pytest.mark.slow
def test_a_later_cycle_on_the_same_split_is_calibrated_without_the_run_it_started_from(calibrated, tmp_path):
    """A shipped model's intermediate runs are not shipped: a start that saw nothing beyond the run's own split
    is marked so at training, and a fresh clone can still calibrate; a start that saw more cannot be skipped."""
    import shutil

    root, out = calibrated
    start = tmp_path / "runs" / "first-cycle"
    shutil.copytree(out, start)
    tiny = ["--epochs", "1", "--image-size", "48", "--width", "4", "--depth", "2", "--batch-size", "8",
            "--max-steps", "2", "--seed", "1"]
    later = tmp_path / "models" / "later"
    assert main(["train", "--data", str(root), "--split", str(out / "split.json"), "--init-from", str(start),
                 "--out", str(later), *tiny]) == 0
    assert json.loads((later / "card.json").read_text())["training"]["initialised_from"]["within_own_split"] is True
    shutil.rmtree(start)
    assert main(["evaluate", "--model", str(later), "--name", "brain-tumor-later"]) == 0
    card = json.loads((later / "card.json").read_text())
    assert card["conformal"]["calibration_images"] > 0 and card["name"] == "brain-tumor-later"  # as it ships

    # A start whose training images this run's split holds out: its folder must be there to check the copies.
    wider = json.loads((out / "split.json").read_text())
    wider["splits"]["train"] += wider["splits"].pop("calibration")
    shutil.copytree(out, start)
    (start / "split.json").write_text(json.dumps(wider))
    other = tmp_path / "models" / "other"
    assert main(["train", "--data", str(root), "--split", str(out / "split.json"), "--init-from", str(start),
                 "--out", str(other), *tiny]) == 0
    assert json.loads((other / "card.json").read_text())["training"]["initialised_from"]["within_own_split"] is False
    shutil.rmtree(start)
    assert main(["evaluate", "--model", str(other)]) == 0
    assert json.loads((other / "card.json").read_text())["conformal"] == {}


@pytest.mark.slow
def test_a_calibration_image_that_copies_a_training_image_is_left_out(calibrated):
    """Runs last in this module: it changes the fixture's data."""
    import shutil

    root, out = calibrated
    split = json.loads((out / "split.json").read_text())["splits"]
    before = json.loads((out / "card.json").read_text())["conformal"]["calibration_images"]
    shutil.copy(root / split["train"][0][0], root / split["calibration"][0][0])  # now a plain copy
    assert main(["evaluate", "--model", str(out)]) == 0
    conformal = json.loads((out / "card.json").read_text())["conformal"]
    assert conformal["calibration_images"] == before - 1 and "1 left out as copies" in conformal["fitted_on"]


@pytest.mark.slow
def test_a_calibration_that_can_no_longer_be_refitted_is_dropped_not_kept_stale(calibrated, capsys):
    """Runs last in this module: it changes the fixture's split."""
    root, out = calibrated
    split = json.loads((out / "split.json").read_text())
    del split["splits"]["calibration"]  # e.g. weights retrained without one, the temperature refitted
    (out / "split.json").write_text(json.dumps(split))
    assert main(["evaluate", "--model", str(out)]) == 0
    assert json.loads((out / "card.json").read_text())["conformal"] == {}
    assert not (out / "conformal.npz").exists()
    capsys.readouterr()
    assert main(["predict", "--model", str(out), "--json", str(root / "Testing" / "tumor")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    accepted = [r for r in lines if r["label"] is not None]
    assert accepted and all(r["prediction_set"] is None for r in accepted)


def test_a_calibration_made_for_other_weights_is_not_loaded(tmp_path):
    from brain_cnn.files import sha256_file
    from brain_cnn.inference.conformal import CONFORMAL_FILE
    from brain_cnn.model.card import load_card

    from conftest import constant_model

    folder = constant_model(tmp_path / "m", {"notumor": 0.5, "tumor": 0.5})
    Conformal.fit([[0.5, 0.5]] * 12, [0, 1] * 6, ["notumor", "tumor"]).save(folder / CONFORMAL_FILE)
    card = load_card(folder)
    card.conformal = {"file": CONFORMAL_FILE, "sha256": sha256_file(folder / CONFORMAL_FILE), "model_sha256": "old"}
    card.save(folder)
    assert load_model(folder).conformal is None
    card.conformal["model_sha256"] = card.sha256
    card.save(folder)
    assert load_model(folder).conformal is not None

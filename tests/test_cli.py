"""End to end through the command line: train a tiny model, evaluate it, predict with it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from brain_cnn.cli import main

from conftest import PROJECT


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import write_class_folder

    root = tmp_path_factory.mktemp("data") / "phantoms"
    write_class_folder(root / "Training", {"notumor": 24, "tumor": 24})
    write_class_folder(root / "Testing", {"notumor": 8, "tumor": 8}, start_seed=1000)
    out = root.parent / "models" / "tiny"
    code = main(["train", "--data", str(root), "--out", str(out), "--epochs", "2", "--image-size", "48",
                 "--width", "4", "--depth", "2", "--batch-size", "8", "--max-steps", "3", "--seed", "1"])
    assert code == 0
    return root, out


@pytest.mark.slow
def test_train_writes_a_complete_model_folder(trained):
    root, out = trained
    for name in ("model.keras", "card.json", "history.json", "evaluation.json", "split.json"):
        assert (out / name).is_file(), name
    card = json.loads((out / "card.json").read_text())
    assert card["classes"] == ["notumor", "tumor"] and card["image_size"] == 48
    assert card["dataset"]["counts"]["test"] == {"notumor": 8, "tumor": 8}
    assert sum(card["dataset"]["counts"]["validation"].values()) == 5  # 10 % of 48, carved from Training
    assert card["metrics"]["test"]["images"] == 16
    history = json.loads((out / "history.json").read_text())
    assert len(history["epochs"]) == 2 and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history["epochs"][0])
    report = json.loads((out / "evaluation.json").read_text())
    test = report["splits"]["test"]
    assert sum(map(sum, test["confusion_matrix"])) == 16
    assert test["screening"]["no_tumour_classes"] == ["notumor"]


@pytest.mark.slow
def test_predict_agrees_with_evaluate(trained, tmp_path, capsys):
    """The CLI's predictions on the test folder reproduce the evaluation's accuracy (no train/serve skew)."""
    root, out = trained
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--split", "test"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "notumor" in printed
    test = json.loads((out / "evaluation.json").read_text())["splits"]["test"]

    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "report.png").write_bytes(b"%PDF-1.5 not a picture")
    assert main(["predict", "--model", str(out), "--json", "--batch-size", "5",
                 str(tmp_path / "empty.jpg"), str(root / "Testing"), str(tmp_path / "report.png")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 18
    assert "empty" in lines[0]["error"] and "PDF" in lines[-1]["error"]
    scans = lines[1:-1]
    accepted = [r for r in scans if r["label"] is not None]
    refused = [r for r in scans if r["label"] is None]
    assert all(set(r) == {"file", "label", "probabilities", "tumour_probability", "prediction_set", "coverage"}
               for r in accepted)
    # Trained without a calibration split: the keys are there, null, not left out.
    assert all(r["prediction_set"] is None and r["coverage"] is None for r in accepted)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in accepted)
    assert all(abs(r["tumour_probability"] - 1 + r["probabilities"]["notumor"]) < 1e-5 for r in accepted)
    assert all(r["cannot_assess"].startswith("cannot assess: ") for r in refused)
    # The gate refuses in predict exactly what evaluation counted, and the calls agree.
    assert len(refused) == test["gate"]["refused"]
    if accepted:
        correct = sum(r["label"] == ("notumor" if "/notumor/" in r["file"] else "tumor") for r in accepted)
        assert correct / len(accepted) == pytest.approx(test["gate"]["accuracy_on_accepted"], abs=1e-4)


@pytest.mark.slow
def test_evaluate_on_another_folder_writes_its_own_report(trained, tmp_path):
    from conftest import write_class_folder

    _, out = trained
    write_class_folder(tmp_path / "external", {"notumor": 3, "tumor": 3}, start_seed=5000)
    assert main(["evaluate", "--model", str(out), "--data", str(tmp_path / "external")]) == 0
    report = json.loads((out / "evaluation-external.json").read_text())
    assert report["splits"]["all"]["count"] == 6


def test_evaluate_decision_writes_the_rule_to_the_card_with_the_figures(tiny_model, tmp_path, capsys):
    import shutil

    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model, folder)
    assert json.loads((folder / "card.json").read_text()).get("decision", "top class") == "top class"
    assert main(["evaluate", "--model", str(folder), "--split", "test", "--decision", "tumour-first"]) == 0
    assert "calls by the tumour first rule" in capsys.readouterr().out
    assert json.loads((folder / "card.json").read_text())["decision"] == "tumour first"
    assert json.loads((folder / "evaluation.json").read_text())["decision"] == "tumour first"
    # Without --decision the card's rule stays, and is used.
    assert main(["evaluate", "--model", str(folder), "--split", "test"]) == 0
    assert json.loads((folder / "evaluation.json").read_text())["decision"] == "tumour first"
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", str(folder), "--split", "test", "--decision", "tumor-first"])
    assert "invalid choice: 'tumor-first'" in capsys.readouterr().err


def test_user_errors_are_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data folder not found") and "\n" not in err
    assert main(["predict", "--model", str(tmp_path / "no-model"), "x.jpg"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: model folder not found")


def test_ctrl_c_in_training_says_how_to_continue(tmp_path, monkeypatch, capsys):
    import brain_cnn.cli as cli

    def stopped_after_an_epoch(config):
        (Path(config.out) / "resume").mkdir(parents=True)  # what a finished epoch leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train", stopped_after_an_epoch)
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("interrupted:") and "the same command continues it" in err and "\n" not in err


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_help_says_what_each_command_does(command):
    result = subprocess.run([sys.executable, "-m", "brain_cnn", command, "--help"], capture_output=True,
                            text=True, cwd=PROJECT, timeout=60)
    assert result.returncode == 0 and "usage: brain-cnn " + command in result.stdout


@pytest.mark.slow
def test_predict_reads_dicom_and_nifti_one_line_per_slice(trained, tmp_path, capsys):
    import numpy as np

    from conftest import make_dicom, make_nifti, phantom

    _, out = trained
    (tmp_path / "IM0001").write_bytes(make_dicom(phantom(64).astype(np.uint16) * 8))  # PACS export: no extension
    volume = np.stack([phantom(64, seed=i) for i in range(4)], axis=-1).astype(np.float32)
    (tmp_path / "head.nii.gz").write_bytes(make_nifti(volume, gz=True))
    (tmp_path / "notes.txt").write_text("not a scan")
    capsys.readouterr()
    assert main(["predict", "--model", str(out), "--json", str(tmp_path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["file"]).name for r in lines] == ["IM0001"] + ["head.nii.gz"] * 4
    assert [r.get("slice_index") for r in lines] == [None, 0, 1, 2, 3]
    assert [r.get("sequence") for r in lines] == ["T1C+"] + [None] * 4  # from the DICOM header ("AX T1 POST")
    assert all(("probabilities" in r) != ("cannot_assess" in r) for r in lines)


@pytest.mark.slow
def test_fine_tune_from_a_model_on_its_saved_split(trained, tmp_path, capsys):
    root, out = trained
    tuned = tmp_path / "tuned"
    assert main(["train", "--data", str(root), "--out", str(tuned), "--epochs", "1", "--image-size", "48",
                 "--width", "4", "--depth", "2", "--batch-size", "8", "--max-steps", "2", "--init-from", str(out),
                 "--split", str(out / "split.json"), "--no-evaluate"]) == 0
    card = json.loads((tuned / "card.json").read_text())
    original = json.loads((out / "card.json").read_text())
    assert card["training"]["initialised_from"]["sha256"] == original["sha256"]
    assert json.loads((tuned / "split.json").read_text())["splits"] == json.loads((out / "split.json").read_text())["splits"]
    history, before = (json.loads((folder / "history.json").read_text()) for folder in (tuned, out))
    assert history["initialised_from"] == {"name": original["name"], "best_epoch": before["best_epoch"],
                                           "epochs": before["epochs"]}
    from brain_cnn.model.folder import load_model

    larger = tmp_path / "larger"  # convolutions and global pooling: the weights fit a larger input
    assert main(["train", "--data", str(root), "--out", str(larger), "--epochs", "1", "--image-size", "64",
                 "--width", "4", "--depth", "2", "--batch-size", "8", "--max-steps", "1", "--learning-rate", "1e-9",
                 "--init-from", str(out), "--split", str(out / "split.json"), "--no-evaluate"]) == 0
    before, after = load_model(out), load_model(larger)
    assert after.card.image_size == 64 and after.model.input_shape[1] == 64
    for name in ("stem_conv", "probabilities"):
        weights = zip(before.model.get_layer(name).get_weights(), after.model.get_layer(name).get_weights())
        assert all(float(abs(a - b).max()) < 1e-3 for a, b in weights)
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "bad"), "--image-size", "64",
                 "--init-from", str(out)]) == 2  # another width and depth cannot start from these weights
    split_before = (out / "split.json").read_bytes()
    assert main(["train", "--data", str(root), "--out", str(out), "--init-from", str(out)]) == 2
    assert "the folder the run starts from" in capsys.readouterr().err  # its record of what it saw is kept
    assert (out / "split.json").read_bytes() == split_before
    shallow = tmp_path / "shallow"  # a smaller depth starts from the first stages, with a new head
    assert main(["train", "--data", str(root), "--out", str(shallow), "--epochs", "1", "--image-size", "48",
                 "--width", "4", "--depth", "1", "--pooling", "max", "--batch-size", "8", "--max-steps", "1",
                 "--learning-rate", "1e-9", "--init-from", str(out), "--split", str(out / "split.json"),
                 "--no-evaluate"]) == 0
    after = load_model(shallow)
    assert json.loads((shallow / "card.json").read_text())["training"]["initialised_from"]["head"] == "new"
    assert after.model.get_layer("class_maps").output.shape[1] == 24  # 48 px halved by the stem; no pooling after the last stage
    for mine, theirs in (("stem_conv", "stem_conv"), ("stage0_a_conv", "stage0_a_conv"),
                         ("last_conv_conv", "stage0_b_conv")):
        kernels = after.model.get_layer(mine).get_weights()[0], before.model.get_layer(theirs).get_weights()[0]
        assert float(abs(kernels[0] - kernels[1]).max()) < 1e-3, mine


@pytest.mark.slow
def test_fine_tune_to_the_max_head_seeing_the_brain_only_and_predict_with_it(trained, tmp_path, capsys):
    from brain_cnn.model.folder import load_model

    root, out = trained
    peak = tmp_path / "max"
    assert main(["train", "--data", str(root), "--out", str(peak), "--epochs", "1", "--image-size", "48",
                 "--width", "4", "--depth", "2", "--batch-size", "8", "--max-steps", "2", "--pooling", "max",
                 "--brain-only", "--init-from", str(out), "--split", str(out / "split.json")]) == 0
    card = json.loads((peak / "card.json").read_text())
    assert card["training"]["pooling"] == "max" and card["training"]["initialised_from"]["head"] == "kept"
    assert card["training"]["brain_only"] and load_model(peak).model.get_layer("brain_only")
    assert (peak / "evaluation.json").is_file()
    capsys.readouterr()
    assert main(["predict", "--model", str(peak), "--json", str(root / "Testing")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and all("probabilities" in r or "cannot_assess" in r for r in lines)


@pytest.mark.slow
def test_transfer_to_other_classes_keeps_the_features_and_a_new_head(trained, tmp_path):
    from conftest import write_class_folder

    from brain_cnn.model.folder import load_model

    root, out = trained
    other = tmp_path / "three"
    write_class_folder(other, {"a": 6, "b": 6, "c": 6}, size=64)
    moved = tmp_path / "moved"
    assert main(["train", "--data", str(other), "--out", str(moved), "--epochs", "1", "--image-size", "48",
                 "--width", "4", "--depth", "2", "--batch-size", "8", "--max-steps", "1", "--learning-rate", "1e-9",
                 "--init-from", str(out), "--no-evaluate"]) == 0
    card = json.loads((moved / "card.json").read_text())
    assert card["training"]["initialised_from"]["head"] == "new" and card["classes"] == ["a", "b", "c"]
    before, after = load_model(out).model, load_model(moved).model
    kernel = lambda m: m.get_layer("stem_conv").get_weights()[0]  # noqa: E731
    assert float(abs(kernel(before) - kernel(after)).max()) < 1e-3  # a near-zero learning rate barely moves it
    assert after.output_shape[-1] == 3
    assert main(["train", "--data", str(other), "--out", str(tmp_path / "wider"), "--image-size", "48",
                 "--width", "8", "--depth", "2", "--init-from", str(out), "--no-evaluate"]) == 2

import json

import pytest
from conftest import write_class_folder

from brain_cnn.cli import main
from brain_cnn.errors import DatasetError
from brain_cnn.evaluation.loso import _recipe, _trained, fold_config, run_loso
from brain_cnn.model.card import LOSO_FILE
from brain_cnn.reports.tables import loso_table
from brain_cnn.training.run import TrainConfig

RECIPE = TrainConfig(data="", out="", epochs=1, image_size=32, width=4, depth=2, batch_size=8, max_steps=2)


def test_each_fold_trains_on_the_others_and_excludes_the_held_out_one():
    sources = ["d/brain-tumor-mri", "d/brain-tumor-44c=maps/44c.json", "d/brain-tumor-yes-no"]
    fold = fold_config(sources, "d/brain-tumor-mri", "runs", RECIPE)
    assert fold.data == "d/brain-tumor-44c" and fold.add_data == ["d/brain-tumor-yes-no"]
    assert fold.exclude == ["d/brain-tumor-mri"] and fold.out.endswith("without-brain-tumor-mri")
    fold = fold_config(sources, "d/brain-tumor-44c=maps/44c.json", "runs", RECIPE)
    assert fold.data == "d/brain-tumor-mri" and fold.add_data == ["d/brain-tumor-yes-no"]
    assert fold.exclude == ["d/brain-tumor-44c"]
    with pytest.raises(DatasetError, match="at least two"):
        fold_config(["d/a"], "d/a", "runs", RECIPE)


def test_a_fold_trained_before_a_recipe_option_existed_is_still_reused(tmp_path):
    fold = fold_config(["d/brain-tumor-mri", "d/brain-tumor-yes-no"], "d/brain-tumor-mri", tmp_path, RECIPE)
    older = {k: v for k, v in _recipe(fold).items() if k != "ema_momentum"}  # as saved before --ema existed
    (tmp_path / "without-brain-tumor-mri").mkdir()
    card = tmp_path / "without-brain-tumor-mri" / "card.json"
    card.write_text(json.dumps({"loso_recipe": older}))
    assert not _trained(fold)  # protocol 1: the held-out source's copies stayed in validation
    card.write_text(json.dumps({"loso_recipe": older, "loso_protocol": 2}))
    assert not _trained(fold)  # protocol 2: its mirrored and rotated copies stayed in training
    card.write_text(json.dumps({"loso_recipe": older, "loso_protocol": 3}))
    assert _trained(fold)
    assert not _trained(fold.__class__(**{**fold.__dict__, "ema_momentum": 0.998}))  # a changed option retrains


@pytest.mark.slow
def test_protocol_writes_the_matrix_and_resumes(tmp_path, capsys):
    yes_no = tmp_path / "brain-tumor-yes-no"
    write_class_folder(yes_no, {"yes": 10, "no": 10})
    sartaj = tmp_path / "brain-tumor-sartaj"
    write_class_folder(sartaj / "Training", {"glioma_tumor": 8, "no_tumor": 8}, start_seed=300)
    write_class_folder(sartaj / "Testing", {"glioma_tumor": 3, "no_tumor": 3}, start_seed=400)
    attach = tmp_path / "shipped"
    attach.mkdir()
    results = run_loso([str(sartaj), str(yes_no)], tmp_path / "loso", RECIPE, attach=attach)
    assert set(results["folds"]) == {"brain-tumor-sartaj", "brain-tumor-yes-no"}
    fold = results["folds"]["brain-tumor-yes-no"]
    assert fold["trained_on"] == ["brain-tumor-sartaj"] and fold["count"] == 20
    assert fold["overall"]["tumour"] == 10 and fold["overall"]["no_tumour"] == 10
    assert json.loads((tmp_path / "loso" / "without-brain-tumor-yes-no" / "card.json").read_text())["loso_protocol"] == 3
    assert json.loads((attach / LOSO_FILE).read_text())["folds"].keys() == results["folds"].keys()
    assert "brain-tumor-sartaj" in loso_table(results)
    capsys.readouterr()
    assert main(["loso", "--sources", str(sartaj), str(yes_no), "--out", str(tmp_path / "loso"),
                 "--hold-out", str(yes_no), "--epochs", "1", "--image-size", "32", "--width", "4", "--depth", "2",
                 "--batch-size", "8", "--max-steps", "2"]) == 0
    assert "reusing" in capsys.readouterr().out
    assert main(["loso", "--sources", str(sartaj), str(yes_no), "--out", str(tmp_path / "loso"),
                 "--hold-out", str(tmp_path / "elsewhere")]) == 2

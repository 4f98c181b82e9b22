"""The Evaluation page leads with the unseen test figure; the Dataset page shows copies side by side."""

import json
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import PROJECT, encode
from conftest import write_slices

pytestmark = pytest.mark.slow


def page(models, name: str, monkeypatch, tmp_path, data=None) -> AppTest:
    monkeypatch.setenv("BRAIN_CNN_MODELS", str(models))
    # The Dataset page browses only this installation's data folders: the test's own folder is made one.
    monkeypatch.setenv("BRAIN_CNN_DATA", str(data or tmp_path / "no-data-here"))
    monkeypatch.setenv("BRAIN_CNN_AUDIT", str(tmp_path / "audit.jsonl"))
    monkeypatch.chdir(PROJECT)
    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=120).run()
    at.switch_page(f"app_pages/{name}.py")
    return at.run()


def test_evaluation_leads_with_the_unseen_test_images(tiny_model, monkeypatch, tmp_path):
    models = tmp_path / "models"
    folder = shutil.copytree(tiny_model, models / tiny_model.name)
    report = json.loads((folder / "evaluation.json").read_text())
    test = report["splits"]["test"]
    # A report whose unseen figures differ from the whole split's, so the page must pick the right ones.
    test["unseen"] = {"removed": 10, "count": test["count"] - 10, "removed_by_kind": {"identical": 4, "mirrored": 6},
                      "accuracy": 0.3125, "macro_f1": 0.25, "macro": {**test["macro"], "f1": 0.25},
                      "weighted": test["weighted"], "per_class": test["per_class"], "screening": test["screening"],
                      "confusion_matrix": test["confusion_matrix"]}
    (folder / "evaluation.json").write_text(json.dumps(report))
    at = page(models, "evaluation", monkeypatch, tmp_path)
    assert not at.exception
    assert at.radio[1].value.startswith(f"unseen ({test['count'] - 10})")
    assert at.metric[0].value == "31.25%" and at.metric[1].value == "0.250"
    assert any("4 identical, 6 mirrored" in i.value and "unseen figure is the one for new patients" in i.value
               for i in at.info)
    at.radio[1].set_value(at.radio[1].options[1]).run()
    assert at.metric[0].value == f"{test['accuracy']:.2%}"


def test_dataset_page_shows_copies_by_kind_side_by_side(tiny_model, monkeypatch, tmp_path):
    from PIL import Image

    root = tmp_path / "set"
    write_slices(root / "Training", {"no": [12] * 3, "yes": [16] * 3})
    write_slices(root / "Testing", {"no": [12] * 2, "yes": [16] * 2}, seed=7000)
    planted = np.asarray(Image.open(root / "Training" / "yes" / "img_002.png"))
    (root / "Testing" / "yes" / "mirror.png").write_bytes(encode(np.ascontiguousarray(np.fliplr(planted))))
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / tiny_model.name)
    at = page(models, "dataset", monkeypatch, tmp_path, data=tmp_path)
    at.text_input[0].set_value(str(root)).run()
    at.toggle(key="audit_copies").set_value(True).run()
    assert not at.exception
    rows = at.dataframe[-1].value
    found = rows[rows["finding"] == "test images with a copy in train"].iloc[0]
    assert (found["images with a copy"], found["of"], found["mirrored"], found["identical"]) == (1, 5, 1, 0)
    captions = [shown.caption for element in at.get("image") for shown in element.proto.imgs]
    assert any("Testing/yes/mirror.png" in str(c) for c in captions)
    assert any("Training/yes/img_002.png (mirrored" in str(c) for c in captions)

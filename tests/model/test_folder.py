import json

import pytest

from brain_cnn.errors import ModelFolderError
from brain_cnn.model.network import build_model
from brain_cnn.files import sha256_file
from brain_cnn.model.card import load_card, ModelCard
from brain_cnn.model.folder import list_model_folders, load_model


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    folder.mkdir()
    build_model(3, image_size=32, width=4, depth=2).save(folder / "model.keras")
    ModelCard(name="tiny", classes=["a", "b", "c"], image_size=32, sha256=sha256_file(folder / "model.keras")).save(folder)
    return folder


def copy_of(folder, tmp_path):
    import shutil

    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    return target


def test_loads_a_complete_folder(model_folder):
    loaded = load_model(model_folder)
    assert loaded.card.classes == ["a", "b", "c"]
    assert loaded.model.output_shape == (None, 3)
    assert list_model_folders(model_folder.parent) == [model_folder]


def test_tampered_weights_fail_the_checksum(model_folder, tmp_path):
    folder = copy_of(model_folder, tmp_path)
    with open(folder / "model.keras", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelFolderError, match="checksum"):
        load_model(folder)


@pytest.mark.parametrize("remove", ["model.keras", "card.json"])
def test_incomplete_folder_is_a_clear_error(model_folder, tmp_path, remove):
    folder = copy_of(model_folder, tmp_path)
    (folder / remove).unlink()
    with pytest.raises(ModelFolderError, match="missing"):
        load_model(folder)


def test_card_must_match_the_network(model_folder, tmp_path):
    folder = copy_of(model_folder, tmp_path)
    card = json.loads((folder / "card.json").read_text())
    card["classes"] = ["a", "b"]
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelFolderError, match="3 outputs"):
        load_model(folder)


def test_unreadable_card_and_other_preprocessing(model_folder, tmp_path):
    folder = copy_of(model_folder, tmp_path)
    (folder / "card.json").write_text("{")
    with pytest.raises(ModelFolderError, match="unreadable"):
        load_card(folder)
    (folder / "card.json").write_text(json.dumps({"name": "x", "classes": ["a"], "image_size": 32,
                                                 "preprocessing_version": "0"}))
    with pytest.raises(ModelFolderError, match="preprocessing"):
        load_card(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(ModelFolderError, match="not found"):
        load_model(tmp_path / "nope")

import json

import pytest

from brain_cnn.errors import ModelFolderError
from brain_cnn.inference.decision import TOP_CLASS, TUMOUR_FIRST
from brain_cnn.model.card import ModelCard, load_card

from conftest import PROJECT


def test_the_decision_rule_is_saved_and_loaded(tmp_path):
    ModelCard(name="m", classes=["glioma", "notumor"], image_size=32, decision=TUMOUR_FIRST).save(tmp_path)
    assert json.loads((tmp_path / "card.json").read_text())["decision"] == "tumour first"
    assert load_card(tmp_path).decision == TUMOUR_FIRST


def test_a_card_written_before_the_rule_loads_as_the_top_class(tmp_path):
    (tmp_path / "card.json").write_text(json.dumps({"name": "m", "classes": ["glioma", "notumor"], "image_size": 32}))
    card = load_card(tmp_path)
    assert card.decision == TOP_CLASS and "decision" not in card.extra


def test_an_unknown_rule_is_refused(tmp_path):
    (tmp_path / "card.json").write_text(json.dumps({"name": "m", "classes": ["glioma", "notumor"], "image_size": 32,
                                                   "decision": "tumor first"}))
    with pytest.raises(ModelFolderError, match="decision rule 'tumor first' is not one this version knows"):
        load_card(tmp_path)


def test_the_shipped_tumour_map_network_calls_tumour_first_and_the_classifiers_the_top_class():
    models = PROJECT / "models"
    assert load_card(models / "brain-tumor-maps").decision == TUMOUR_FIRST
    assert load_card(models / "brain-tumor-mri").decision == TOP_CLASS

import json

import pytest

from brain_cnn.errors import DatasetError
from brain_cnn.data.label_maps import (IGNORE, LESION, NO_TUMOUR, TUMOUR, LabelMap, bundled_label_map, canonical_class,
                                  load_label_map)
from brain_cnn.scan.sequences import sequence_of

FOUR = ["glioma", "meningioma", "notumor", "pituitary"]


@pytest.mark.parametrize("folder,sequence", [("Astrocitoma T1C+", "T1C+"), ("_NORMAL T2", "T2"),
                                             ("Glioblastoma t1", "T1"), ("glioma", None), ("T2 stuff", None)])
def test_sequence_comes_from_a_trailing_suffix(folder, sequence):
    assert sequence_of(folder) == sequence


@pytest.mark.parametrize("name,canonical", [("glioma_tumor", "glioma"), ("Glioma Tumour", "glioma"),
                                            ("no_tumor", "notumor"), ("_NORMAL T1", "notumor"), ("no", "notumor"),
                                            ("pituitary", "pituitary")])
def test_canonical_class_names(name, canonical):
    assert canonical_class(name) == canonical


def test_bundled_44c_map():
    mapping = bundled_label_map("/anywhere/brain-tumor-44c")
    assert mapping.target("Astrocitoma T1C+", FOUR) == (TUMOUR, "glioma")
    assert mapping.target("Meningioma T2", FOUR) == (TUMOUR, "meningioma")
    assert mapping.target("_NORMAL T1", FOUR) == (NO_TUMOUR, "notumor")
    assert mapping.target("Carcinoma T1", FOUR) == (TUMOUR, None)
    assert mapping.target("Granuloma T2", FOUR).kind == LESION
    with pytest.raises(DatasetError, match="does not say what 'Lipoma T1' is"):
        mapping.target("Lipoma T1", FOUR)


def test_targets_use_the_models_own_spelling():
    mapping = bundled_label_map("brain-tumor-mri")
    sartaj = ["glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"]
    assert mapping.target("glioma", sartaj) == (TUMOUR, "glioma_tumor")
    assert mapping.target("notumor", sartaj) == (NO_TUMOUR, "no_tumor")
    yes_no = bundled_label_map("brain-tumor-yes-no")
    assert yes_no.target("yes", FOUR) == (TUMOUR, None) and yes_no.target("no", FOUR) == (NO_TUMOUR, "notumor")


def test_every_bundled_map_loads():
    for name in ("brain-tumor-44c", "brain-tumor-sartaj", "brain-tumor-yes-no", "brain-tumor-mri"):
        assert bundled_label_map(name).classes
    assert bundled_label_map("my-own-set") is None


def test_ignore_and_exact_names_win(tmp_path):
    mapping = LabelMap("x", {"Glioma T1": "ignore", "Glioma": "glioma"})
    assert mapping.target("Glioma T1", FOUR).kind == IGNORE
    assert mapping.target("Glioma T2", FOUR) == (TUMOUR, "glioma")


@pytest.mark.parametrize("content,message", [(None, "not found"), ("{nope", "not valid JSON"),
                                             ('{"classes": []}', "needs a"), ('{"classes": {"a": 1}}', "needs a")])
def test_bad_label_map_files(tmp_path, content, message):
    path = tmp_path / "map.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_label_map(path)


def test_a_map_file_round_trips(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"description": "mine", "classes": {"yes": "tumour", "no": "no tumour"}}))
    mapping = load_label_map(path)
    assert mapping.description == "mine" and mapping.target("no", FOUR).kind == NO_TUMOUR

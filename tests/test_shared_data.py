"""Every public data set beside the project is discovered and decodes (skips when absent)."""

import random

import pytest

from brain_cnn.data.dataset import discover, make_split
from brain_cnn.scan.preprocess import load_scan

from conftest import shared_data

EXPECTED = {
    # folder: (number of classes, split names found)
    "brain-tumor-mri": (4, {"train", "test"}),
    "brain-tumor-44c": (44, {"all"}),
    "brain-tumor-sartaj": (4, {"train", "test"}),
    "brain-tumor-yes-no": (2, {"all"}),
}

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_discovered_split_and_decoded(name):
    root = shared_data() / name
    if not root.is_dir():
        pytest.skip(f"{root} is absent (set BRAIN_CNN_DATA to the folder holding the data sets)")
    found = discover(root)
    classes, splits = EXPECTED[name]
    assert len(found.classes) == classes and set(found.splits) == splits
    manifest = make_split(found, seed=0)
    assert set(manifest.splits) == {"train", "validation", "test"}
    assert set(manifest.counts()["train"]) == set(found.classes)
    everything = [s for samples in found.splits.values() for s in samples]
    for sample in random.Random(0).sample(everything, 40):
        assert load_scan(root / sample.path, 64).shape == (64, 64, 1)


def test_class_names_are_kept_exactly():
    root = shared_data() / "brain-tumor-44c"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    classes = discover(root).classes
    assert "Astrocitoma T1C+" in classes and "_NORMAL T2" in classes


def test_the_shared_carve_holds_out_its_calibration_images_from_the_map_networks_training():
    """`splits/` (brain_cnn.data.carves) fits the data here: its files exist, and the tumour-map recipe trained on
    it neither trains nor validates on a calibration image."""
    from brain_cnn.data.dataset import SplitManifest
    from brain_cnn.training.tumour_maps import training_samples

    from conftest import PROJECT

    data = shared_data()
    if not all((data / name).is_dir() for name in ("brain-tumor-mri", "brain-tumor-lgg", "brain-tumor-44c")):
        pytest.skip(f"the 4-class, LGG and 44-class sets are not all in {data}")
    carve = PROJECT / "splits"
    splits, record = training_samples(data, 42, carve)
    for name in ("brain-tumor-mri", "brain-tumor-lgg", "brain-tumor-44c"):
        manifest = SplitManifest.load(carve / f"{name}.json")
        calibration = {s.path for s in manifest.splits["calibration"]}
        assert calibration and set(record[name]["calibration"]) == calibration
        assert all((data / name / path).is_file() for path in calibration)
        used = {p.path for split in splits.values() for p in split if p.source == name}
        assert not used & calibration, name


def test_a_source_left_out_is_neither_trained_nor_validated_on_and_keeps_its_held_out_splits():
    """Leave-one-source-out for the tumour-map recipe: the left-out set's images are gone from training and
    validation, its record says so, and the held-out splits the evaluation measures on are still there."""
    from brain_cnn.training.tumour_maps import training_samples

    from conftest import PROJECT

    data = shared_data()
    if not all((data / name).is_dir() for name in ("brain-tumor-mri", "brain-tumor-lgg", "brain-tumor-44c")):
        pytest.skip(f"the 4-class, LGG and 44-class sets are not all in {data}")
    splits, record = training_samples(data, 42, PROJECT / "splits", ("brain-tumor-lgg",))
    sources = {p.source for split in splits.values() for p in split}
    assert sources == {"brain-tumor-mri", "brain-tumor-44c"}
    assert record["brain-tumor-lgg"]["train"] == record["brain-tumor-lgg"]["validation"] == []
    assert record["brain-tumor-lgg"]["test"] and record["brain-tumor-mri"]["train"]

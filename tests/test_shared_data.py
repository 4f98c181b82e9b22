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

"""The calibration carve: copies and patients stay on one side, and copies of training images go back to train."""

import json

import numpy as np

from brain_cnn.data.carves import CALIBRATION, carve_calibration, carve_sets, main
from brain_cnn.data.dataset import discover
from brain_cnn.data.leakage import files_with_copies, grouped_split, hash_samples

from conftest import encode, write_slices


def test_a_calibration_carve_keeps_copies_together_and_leaves_validation_and_test_alone(tmp_path):
    root = tmp_path / "data"
    write_slices(root, {"yes": [16] * 16, "no": [12] * 16}, copies=True)
    base = grouped_split(discover(root), seed=5, validation_fraction=0.15, test_fraction=0.15)
    carved = carve_calibration(base, fraction=0.2, seed=5)
    assert carved.splits["validation"] == base.splits["validation"] and carved.splits["test"] == base.splits["test"]
    assert set(carved.splits["train"]) | set(carved.splits[CALIBRATION]) == set(base.splits["train"])
    assert {s.label for s in carved.splits[CALIBRATION]} == {"yes", "no"}
    hashes = {split: hash_samples(root, samples) for split, samples in carved.splits.items()}
    assert files_with_copies(hashes[CALIBRATION], hashes["train"]) == {}
    assert "calibration 20% of train" in carved.origin


def _write_set(root, name, seed):
    rng = np.random.default_rng(seed)
    for label in ("glioma", "notumor"):
        (root / name / label).mkdir(parents=True)
        for k in range(30):
            grey = np.zeros((64, 64), np.uint8)
            grey[8:56, 8:56] = (rng.random((48, 48)) * 200 + 30).astype(np.uint8)
            (root / name / label / f"{label}_{k:02d}.png").write_bytes(encode(grey))


def test_sets_are_carved_and_a_calibration_image_copied_into_another_sets_training_goes_back(tmp_path, capsys):
    data = tmp_path / "shared"
    _write_set(data, "brain-tumor-mri", 0)
    _write_set(data, "brain-tumor-44c", 1)
    manifests, moved = carve_sets(data, fraction=0.2, seed=3)
    assert set(manifests) == {"brain-tumor-mri", "brain-tumor-44c"} and moved == {"brain-tumor-mri": 0,
                                                                                  "brain-tumor-44c": 0}
    # The same image in the other set's training split: the carve must hand it back to training.
    victim = manifests["brain-tumor-mri"].splits[CALIBRATION][0]
    trained = manifests["brain-tumor-44c"].splits["train"][0]
    (data / "brain-tumor-44c" / trained.path).write_bytes((data / "brain-tumor-mri" / victim.path).read_bytes())
    manifests, moved = carve_sets(data, fraction=0.2, seed=3)
    assert moved["brain-tumor-mri"] >= 1
    assert victim in manifests["brain-tumor-mri"].splits["train"]
    assert victim not in manifests["brain-tumor-mri"].splits[CALIBRATION]

    out = tmp_path / "splits"
    main(["--data", str(data), "--out", str(out), "--fraction", "0.2", "--seed", "3", "--shipped-44c", ""])
    written = json.loads((out / "brain-tumor-mri.json").read_text())
    assert set(written["splits"]) == {"train", "validation", "calibration", "test"}
    assert "went back to train" in capsys.readouterr().out


def test_a_calibration_image_copied_into_another_sets_validation_goes_back_too(tmp_path):
    data = tmp_path / "shared"
    _write_set(data, "brain-tumor-mri", 0)
    _write_set(data, "brain-tumor-44c", 1)
    manifests, _ = carve_sets(data, fraction=0.2, seed=3)
    victim = manifests["brain-tumor-mri"].splits[CALIBRATION][1]
    validated = manifests["brain-tumor-44c"].splits["validation"][0]
    (data / "brain-tumor-44c" / validated.path).write_bytes((data / "brain-tumor-mri" / victim.path).read_bytes())
    manifests, moved = carve_sets(data, fraction=0.2, seed=3)
    assert moved["brain-tumor-mri"] >= 1 and victim in manifests["brain-tumor-mri"].splits["train"]

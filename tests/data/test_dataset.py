from pathlib import Path

import pytest

from brain_cnn.data.dataset import SplitManifest, discover, make_split
from brain_cnn.errors import DatasetError

from conftest import write_class_folder


def test_split_layout_in_any_case(tmp_path):
    write_class_folder(tmp_path / "TRAINING", {"a": 3, "b": 3})
    write_class_folder(tmp_path / "val", {"a": 1, "b": 1})
    write_class_folder(tmp_path / "Testing", {"a": 2, "b": 2})
    found = discover(tmp_path)
    assert set(found.splits) == {"train", "validation", "test"}
    assert found.counts()["test"] == {"a": 2, "b": 2}


def test_flat_layout_and_exact_class_names(tmp_path):
    write_class_folder(tmp_path, {"Astrocitoma T1C+": 2, "_NORMAL T2": 2, "glioma": 2})
    found = discover(tmp_path)
    assert found.is_flat
    assert found.classes == sorted(["Astrocitoma T1C+", "_NORMAL T2", "glioma"])


def test_hidden_and_non_image_files_are_skipped_and_counted(tmp_path):
    write_class_folder(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "a" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / ".hidden_class").mkdir()
    (tmp_path / ".hidden_class" / "x.jpg").write_bytes(b"x")
    (tmp_path / "b" / "nested").mkdir()
    write_class_folder(tmp_path / "b", {"nested": 1})  # images in sub-folders belong to the class
    found = discover(tmp_path)
    assert found.classes == ["a", "b"]
    assert found.counts()["all"] == {"a": 2, "b": 3}
    assert found.skipped["hidden file"] == 1
    assert found.skipped["not an image (.txt)"] == 1


@pytest.mark.parametrize("make", ["missing", "empty", "no-images"])
def test_unusable_folders_raise_a_clear_error(tmp_path, make):
    root = tmp_path / "data"
    if make != "missing":
        root.mkdir()
    if make == "no-images":
        (root / "a").mkdir()
        (root / "a" / "readme.md").write_text("x")
    with pytest.raises(DatasetError):
        discover(root)


def test_flat_split_is_stratified_seeded_and_disjoint(tmp_path):
    write_class_folder(tmp_path, {"a": 40, "b": 20})
    found = discover(tmp_path)
    first, again = make_split(found, seed=3), make_split(found, seed=3)
    assert first.splits == again.splits
    assert make_split(found, seed=4).splits != first.splits
    paths = [set(s.path for s in first.splits[k]) for k in ("train", "validation", "test")]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    assert sum(map(len, paths)) == 60
    counts = first.counts()
    assert counts["test"] == {"a": 6, "b": 3}  # 15 % of each class
    assert counts["validation"] == {"a": 4, "b": 2}


def test_official_test_split_is_kept_and_validation_carved_from_train(split_dataset):
    found = discover(split_dataset)
    manifest = make_split(found, seed=0, validation_fraction=0.25)
    assert [s.path for s in manifest.splits["test"]] == [s.path for s in found.splits["test"]]
    assert len(manifest.splits["validation"]) == 12 and len(manifest.splits["train"]) == 36
    assert all(s.path.startswith("Training/") for s in manifest.splits["validation"])


def test_manifest_round_trip(split_dataset, tmp_path):
    manifest = make_split(discover(split_dataset), seed=1)
    manifest.save(tmp_path / "split.json")
    loaded = SplitManifest.load(tmp_path / "split.json")
    assert loaded == manifest


def test_corrupt_manifest_is_a_clear_error(tmp_path):
    Path(tmp_path / "split.json").write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable"):
        SplitManifest.load(tmp_path / "split.json")

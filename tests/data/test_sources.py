import json
import shutil

import numpy as np
import pytest
from conftest import write_class_folder

from brain_cnn.data.dataset import Sample
from brain_cnn.errors import DatasetError
from brain_cnn.data.pipeline import SOFT_TUMOUR, targets
from brain_cnn.data.sources import SourceSpec, content_hashes, drop_near_duplicates, mapped_samples, parse_source


def test_parse_source():
    assert parse_source("data/x") == SourceSpec("data/x", None)
    assert parse_source("data/x=maps/x.json") == SourceSpec("data/x", "maps/x.json")


def test_added_images_are_mapped_onto_the_models_classes(tmp_path):
    main_root = tmp_path / "main"
    write_class_folder(main_root, {"glioma": 1, "notumor": 1})
    added = tmp_path / "brain-tumor-44c"
    write_class_folder(added, {"Astrocitoma T1": 2, "Carcinoma T2": 2, "_NORMAL T2": 2, "Granuloma T1": 1})
    samples, report = mapped_samples(SourceSpec(str(added)), main_root, ["glioma", "meningioma", "notumor"])
    labels = sorted(s.label for s in samples)
    assert labels == ["glioma", "glioma", "notumor", "notumor", SOFT_TUMOUR, SOFT_TUMOUR]
    assert all(s.path.startswith("../brain-tumor-44c/") for s in samples)
    assert (main_root / samples[0].path).is_file()
    assert report.left_out == {"lesion": 1} and report.used["glioma"] == 2
    assert report.data_set == "brain-tumor-44c"


def test_an_unknown_data_set_needs_a_map(tmp_path):
    write_class_folder(tmp_path / "mine", {"a": 1, "b": 1})
    with pytest.raises(DatasetError, match="no bundled label map for mine"):
        mapped_samples(SourceSpec(str(tmp_path / "mine")), tmp_path, ["glioma", "notumor"])


def test_soft_targets_spread_over_tumour_classes():
    out = targets(np.array([0, 2, -1]), ["glioma", "meningioma", "notumor", "pituitary"])
    assert out[0].tolist() == [1, 0, 0, 0] and out[1].tolist() == [0, 0, 1, 0]
    assert np.allclose(out[2], [1 / 3, 1 / 3, 0, 1 / 3])


def test_near_duplicates_are_dropped_by_content_not_name(tmp_path):
    write_class_folder(tmp_path / "a", {"glioma": 3})
    write_class_folder(tmp_path / "b", {"glioma": 1}, start_seed=1)  # same phantom as a/glioma/img_001
    samples = [Sample(f"a/glioma/img_{i:03d}.jpg", "glioma") for i in range(3)]
    reference = content_hashes(tmp_path, [Sample("b/glioma/img_000.jpg", "glioma")])
    kept, dropped = drop_near_duplicates(samples, content_hashes(tmp_path, samples), reference)
    assert dropped == 1 and [s.path for s in kept] == ["a/glioma/img_000.jpg", "a/glioma/img_002.jpg"]


def test_source_balance_gives_every_data_set_and_class_cell_the_same_weight():
    from brain_cnn.data.pipeline import DecodedSplit
    from brain_cnn.training.balance import training_weights
    from brain_cnn.training.config import TrainConfig

    # One set brings mostly normals, the other mostly tumours: the shortcut class weights leave open.
    files = ["Training/notumor/a.jpg"] * 6 + ["Training/glioma/b.jpg"] * 2 + ["../other/yes/c.jpg"] * 7 \
        + ["../other/no/d.jpg"]
    labels = np.array([1] * 6 + [0] * 2 + [-1] * 7 + [1])
    files = [f"{f}.{i}" for i, f in enumerate(files)]
    split = DecodedSplit(np.zeros((16, 8, 8, 1), np.uint8), labels, files, [])
    origins = {f: "other" for f in files if f.startswith("../other/")}
    by_source = training_weights(TrainConfig(data="", out="", balance="source"), split, origins, "main")
    cells = {}
    for f, label, w in zip(files, labels, by_source):
        key = (f.startswith("../other/"), int(label))
        cells[key] = cells.get(key, 0.0) + float(w)
    assert len(cells) == 4 and np.allclose(list(cells.values()), 4.0)  # 16 images over 4 cells
    by_class = training_weights(TrainConfig(data="", out=""), split, origins, "main")
    normals = labels == 1
    assert np.isclose(by_class[normals].sum(), 16 / 3)  # three classes: normal, glioma, unstated tumour
    assert by_source[files.index(next(f for f in files if f.startswith("../other/no/")))] == 4.0
    from brain_cnn.training.run import train

    with pytest.raises(DatasetError, match="unknown balance"):  # refused before any data is looked at
        train(TrainConfig(data="nowhere", out="nowhere", balance="cells"))


@pytest.mark.slow
def test_training_adds_sources_and_removes_held_out_duplicates(tmp_path):
    from brain_cnn.training.run import TrainConfig, train

    main_root = tmp_path / "main"
    write_class_folder(main_root / "Training", {"notumor": 12, "tumor": 12})
    write_class_folder(main_root / "Testing", {"notumor": 4, "tumor": 4}, start_seed=100)
    added = tmp_path / "brain-tumor-yes-no"
    write_class_folder(added, {"yes": 6, "no": 6}, start_seed=200)
    shutil.copy(main_root / "Testing" / "tumor" / "img_000.jpg", added / "yes" / "leak.jpg")
    held_out = tmp_path / "held"
    shutil.copytree(main_root / "Training" / "tumor", held_out / "tumor")  # held out: every training tumour
    config = TrainConfig(data=str(main_root), out=str(tmp_path / "model"), epochs=1, image_size=32, width=4,
                         depth=2, batch_size=8, max_steps=2, add_data=[str(added)], exclude=[str(held_out)],
                         augmentation="scanner", balance="source")
    folder = train(config)
    card = json.loads((folder / "card.json").read_text())
    sources = {s["name"]: s for s in card["dataset"]["sources"]}
    assert sources["main"]["excluded_near_duplicates_of_held_out"] >= 9  # 12 less those carved for validation
    # Phantoms look alike, so a few more than the planted copy may count as near duplicates.
    leaking = sources["brain-tumor-yes-no"]["near_duplicates_of_validation_or_test"]
    assert leaking >= 1 and sources["brain-tumor-yes-no"]["training_images"] == 13 - leaking
    manifest = json.loads((folder / "split.json").read_text())
    train_files = [p for p, _ in manifest["splits"]["train"]]
    assert sum(p.startswith("../brain-tumor-yes-no/") for p in train_files) == 13 - leaking
    assert "../brain-tumor-yes-no/yes/leak.jpg" not in train_files
    assert not [p for p in train_files if p.startswith("Training/tumor/")]
    # Nor does the checkpoint get chosen on the held-out images.
    assert not [p for p, _ in manifest["splits"]["validation"] if p.startswith("Training/tumor/")]
    assert sources["main"]["excluded_from_validation"] >= 1
    assert card["dataset"]["held_out"] == ["held"]
    assert sources["brain-tumor-yes-no"]["data_set"] == "brain-tumor-yes-no"
    assert "(data set, class) cells" in card["training"]["loss"]


def test_a_split_manifest_adds_only_its_training_split(tmp_path):
    from brain_cnn.data.dataset import SplitManifest

    added = tmp_path / "brain-tumor-44c"
    write_class_folder(added, {"Astrocitoma T1": 3, "_NORMAL T2": 3})
    train = [Sample("Astrocitoma T1/img_000.jpg", "Astrocitoma T1"), Sample("_NORMAL T2/img_001.jpg", "_NORMAL T2")]
    test = [Sample("Astrocitoma T1/img_001.jpg", "Astrocitoma T1")]
    manifest = tmp_path / "split.json"
    SplitManifest(str(added), ["Astrocitoma T1", "_NORMAL T2"], 42, {"train": train, "test": test}, "test").save(manifest)
    samples, report = mapped_samples(parse_source(str(manifest)), tmp_path / "main", ["glioma", "notumor"])
    assert sorted((s.path, s.label) for s in samples) == [
        ("../brain-tumor-44c/Astrocitoma T1/img_000.jpg", "glioma"), ("../brain-tumor-44c/_NORMAL T2/img_001.jpg", "notumor")]
    assert report.name.startswith("brain-tumor-44c (training split of")


def test_a_manifest_whose_data_folder_is_gone_is_a_clear_error(tmp_path):
    from brain_cnn.data.dataset import SplitManifest

    manifest = tmp_path / "split.json"
    SplitManifest(str(tmp_path / "gone"), ["a"], 42, {"train": []}, "test").save(manifest)
    with pytest.raises(DatasetError, match="not there"):
        mapped_samples(parse_source(str(manifest)), tmp_path, ["glioma", "notumor"])

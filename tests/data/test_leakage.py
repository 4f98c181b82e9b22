import numpy as np
import pytest
from PIL import Image

from brain_cnn.cli import main
from brain_cnn.data.dataset import SplitManifest, discover
from brain_cnn.data.leakage import (ImageHashes, audit_folders, copy_pairs, deduplicated_split, files_with_copies,
                               grouped_split, hash_images, hash_samples, patient_groups)

from conftest import encode, head_volume, write_slices


@pytest.fixture(scope="module")
def head():
    return head_volume(seed=11)


def crop_and_rescale(grey: np.ndarray) -> np.ndarray:
    """A re-export: the black margin trimmed unevenly, then shrunk to 80 %."""
    cut = grey[8:-6, 9:-17]
    return np.asarray(Image.fromarray(cut).resize((round(cut.shape[1] * 0.8), round(cut.shape[0] * 0.8)),
                                                  Image.BILINEAR))


def test_turned_and_rescaled_copies_are_found_and_another_slice_is_not(tmp_path, head):
    original = head[24]
    files = {
        "original.png": original,
        "recompressed.jpg": original,
        "mirrored.png": np.fliplr(original),
        "flipped.png": np.flipud(original),
        "rotated.png": np.rot90(original),
        "cropped-rescaled.png": crop_and_rescale(original),
        "mirrored-rescaled.jpg": crop_and_rescale(np.fliplr(original)),
        "other-slice.png": head[16],
        "other-slice-mirrored.png": np.fliplr(head[32]),
        "other-head.png": head_volume(seed=12)[24],
    }
    for name, pixels in files.items():
        fmt = "JPEG" if name.endswith(".jpg") else "PNG"
        (tmp_path / name).write_bytes(encode(np.ascontiguousarray(pixels), fmt, **({"quality": 70} if fmt == "JPEG" else {})))
    hashes = hash_images([tmp_path / n for n in files], list(files))
    reference = hashes.subset([0])
    found = files_with_copies(hashes, reference)
    assert found == {"original.png": "identical", "recompressed.jpg": "identical", "mirrored.png": "mirrored",
                     "flipped.png": "flipped", "rotated.png": "rotated", "cropped-rescaled.png": "identical",
                     "mirrored-rescaled.jpg": "mirrored"}


def test_pairs_within_one_set_are_listed_once(tmp_path, head):
    for name, pixels in {"a.png": head[20], "b.png": np.fliplr(head[20]), "c.png": head[40]}.items():
        (tmp_path / name).write_bytes(encode(np.ascontiguousarray(pixels)))
    hashes = hash_images(sorted(tmp_path.iterdir()), ["a.png", "b.png", "c.png"])
    pairs = copy_pairs(hashes)
    assert [(p.query, p.reference, p.kind) for p in pairs] == [(0, 1, "mirrored")]


def test_unreadable_files_are_left_out(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "pdf.jpg").write_bytes(b"%PDF-1.4 not an image")
    hashes = hash_images([tmp_path / "empty.png", tmp_path / "pdf.jpg"])
    assert len(hashes) == 0 and copy_pairs(hashes, hashes) == []


def test_a_grouped_split_never_puts_copies_on_two_sides(tmp_path):
    write_slices(tmp_path / "data", {"yes": [16] * 14, "no": [12] * 14}, copies=True)
    manifest = grouped_split(discover(tmp_path / "data"), seed=5, validation_fraction=0.2, test_fraction=0.2)
    root = tmp_path / "data"
    hashes = {split: hash_samples(root, samples) for split, samples in manifest.splits.items()}
    assert all(len(h) >= 6 for h in hashes.values())
    for a, b in (("validation", "train"), ("test", "train"), ("test", "validation")):
        assert files_with_copies(hashes[a], hashes[b]) == {}, (a, b)
    # Each original sits with both its copies.
    side = {s.path: split for split, samples in manifest.splits.items() for s in samples}
    for path in side:
        stem = path.rsplit(".", 1)[0].removesuffix("_m").removesuffix("_c")
        assert side[f"{stem}.png"] == side[path]
    assert "keeping copies and patients together" in manifest.origin


def test_an_lgg_style_set_is_split_by_patient(tmp_path):
    root = tmp_path / "lgg"
    cases = [f"TCGA_XX_{k:04d}_20000101" for k in range(12)]
    rng = np.random.default_rng(0)
    for sequence in ("FLAIR", "T1"):
        for label in ("glioma", "no tumour"):
            folder = root / f"{label} {sequence}"
            folder.mkdir(parents=True)
            for case in cases:
                for z in range(3):  # noise, so that no two images are copies: only the patient joins them
                    grey = (rng.random((64, 64)) * 255).astype(np.uint8)
                    (folder / f"{case}_{z + (0 if label == 'glioma' else 10)}.jpg").write_bytes(encode(grey, "JPEG"))
    (tmp_path / "lgg-masks").mkdir()
    (tmp_path / "lgg-masks" / "cases.csv").write_text("case,institution\n" + "".join(f"{c},XX\n" for c in cases))
    found = discover(root)
    groups = patient_groups(root, found.splits["all"])
    assert len(set(groups.values())) == 12 and len(groups) == len(found.splits["all"])
    manifest = grouped_split(found, seed=1)
    patients = {split: {s.path.split("/")[-1].rpartition("_")[0] for s in samples}
                for split, samples in manifest.splits.items()}
    assert patients["train"] and patients["validation"] and patients["test"]
    assert not patients["train"] & patients["validation"]
    assert not patients["train"] & patients["test"] and not patients["validation"] & patients["test"]


def test_without_a_case_list_no_patient_groups(tmp_path):
    write_slices(tmp_path / "data", {"a": [10, 20]})
    assert patient_groups(tmp_path / "data", discover(tmp_path / "data").splits["all"]) == {}


def test_audit_counts_copies_by_kind_and_writes_a_clean_split(tmp_path, capsys, head):
    root = tmp_path / "data"
    write_slices(root / "Training", {"no": [12] * 5, "yes": [16] * 5})
    write_slices(root / "Testing", {"no": [12] * 3, "yes": [16] * 3}, seed=5000)
    planted = np.asarray(Image.open(root / "Training" / "yes" / "img_001.png"))
    (root / "Testing" / "yes" / "mirror.png").write_bytes(encode(np.ascontiguousarray(np.fliplr(planted))))
    (root / "Testing" / "yes" / "turned.png").write_bytes(encode(np.ascontiguousarray(np.rot90(planted, 3))))
    report = audit_folders([root])
    across = report["data"][0]["across"]["test in train"]
    assert across["images_with_copy"] == 2 and across["of"] == 8
    assert across["by_kind"] == {"mirrored": 1, "rotated": 1}
    assert across["examples"]["mirrored"][0][:2] == ["Testing/yes/mirror.png", "Training/yes/img_001.png"]
    manifest = deduplicated_split(root, seed=0)
    assert sorted(s.path for s in manifest.splits["test"] if "img" not in s.path) == []
    assert len(manifest.splits["test"]) == 6
    assert main(["audit", str(root), "--write-split", str(tmp_path / "clean.json")]) == 0
    out = capsys.readouterr().out
    assert "test images with a copy in train: 2 of 8 (1 mirrored, 1 rotated)" in out
    assert "Testing/yes/mirror.png  ~  Training/yes/img_001.png" in out
    assert len(SplitManifest.load(tmp_path / "clean.json").splits["test"]) == 6


def test_merge_keeps_alignment():
    a = ImageHashes(["a"], np.zeros((1, 8, 32), np.uint8), ["x"])
    b = ImageHashes(["b", "c"], np.ones((2, 8, 32), np.uint8), ["y", "z"])
    merged = ImageHashes.merge([a, b])
    assert merged.files == ["a", "b", "c"] and merged.pixels == ["x", "y", "z"] and merged.perceptual.shape == (3, 8, 32)


def test_within_a_split_both_images_of_a_pair_have_a_copy(tmp_path):
    write_slices(tmp_path / "data" / "Training", {"yes": [16] * 3}, copies=False)
    planted = np.asarray(Image.open(tmp_path / "data" / "Training" / "yes" / "img_000.png"))
    (tmp_path / "data" / "Training" / "yes" / "mirror.png").write_bytes(encode(np.ascontiguousarray(np.fliplr(planted))))
    within = audit_folders([tmp_path / "data"])["data"][0]["within"]["train"]
    assert within["images_with_copy"] == 2 and within["pairs"] == 1 and within["by_kind"] == {"mirrored": 2}

import io

import numpy as np
from PIL import Image

from brain_cnn.cli import main
from brain_cnn.dataset import SplitManifest
from brain_cnn.leakage import audit_folders, deduplicated_split, files_with_near_duplicates, hash_images

from conftest import encode, phantom, write_class_folder


def variants(tmp_path):
    """A scan, three altered copies of it, and two different scans."""
    original = phantom(200, lesion=True, seed=3)
    padded = np.zeros((260, 300), np.uint8)
    padded[30:230, 50:250] = original
    small = np.asarray(Image.fromarray(original).resize((120, 120)))
    files = {
        "original.png": encode(original),
        "recompressed.jpg": encode(original, "JPEG", quality=60),
        "resized.png": encode(small),
        "wider-margin.png": encode(padded),
        "other-1.png": encode(phantom(200, lesion=True, seed=4, margin=0.05)),
        "other-2.png": encode(np.rot90(phantom(200, lesion=False, seed=5, margin=0.3)).copy()),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return hash_images([tmp_path / n for n in files], list(files))


def test_copies_are_found_and_different_scans_are_not(tmp_path):
    hashes = variants(tmp_path)
    reference = hashes.__class__(hashes.files[:1], hashes.perceptual[:1], hashes.pixels[:1])
    found = files_with_near_duplicates(hashes, reference)
    assert {"original.png", "recompressed.jpg", "resized.png", "wider-margin.png"} <= found
    assert "other-1.png" not in found and "other-2.png" not in found


def test_audit_counts_a_planted_leak_and_writes_a_clean_split(tmp_path, capsys):
    root = tmp_path / "data"
    write_class_folder(root / "Training", {"no": 6, "yes": 6}, size=96)
    write_class_folder(root / "Testing", {"no": 3, "yes": 3}, size=96, start_seed=500)
    leaked = (root / "Training" / "yes" / "img_000.jpg").read_bytes()
    (root / "Testing" / "yes" / "copy.jpg").write_bytes(encode(np.asarray(Image.open(io.BytesIO(leaked))), "PNG"))
    report = audit_folders([root])
    across = report["data"][0]["across"]["test in train"]
    assert across["images_with_duplicate"] == 1 and across["of"] == 7
    manifest = deduplicated_split(root, seed=0)
    assert "Testing/yes/copy.jpg" not in [s.path for s in manifest.splits["test"]]
    assert len(manifest.splits["test"]) == 6
    assert main(["audit", str(root), "--write-split", str(tmp_path / "clean.json")]) == 0
    assert "test images with an exact or near duplicate in train: 1 of 7" in capsys.readouterr().out
    assert len(SplitManifest.load(tmp_path / "clean.json").splits["test"]) == 6

"""Tumour maps through the command line: ``predict --masks DIR`` writes them, ``evaluate`` measures them."""

import json
import shutil

import cv2
import numpy as np
import pytest

from brain_cnn.cli import main

from conftest import encode, make_dicom, phantom


def _wide_slice(seed: int) -> np.ndarray:
    """A 90 x 150 slice with the head (and its lesion) off-centre in a black margin, so the crop's offset matters."""
    grey = np.zeros((90, 150), np.uint8)
    grey[13:77, 70:134] = phantom(64, lesion=True, seed=seed)
    return grey


def _read_png(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_predict_writes_each_slices_map_at_the_inputs_size(tiny_map_model, tmp_path, capsys):
    scans = tmp_path / "scans"
    grey = _wide_slice(seed=42)  # not one the model trained on (seeds 5000-5063)
    for folder in ("a", "b"):  # one name in two folders
        (scans / folder).mkdir(parents=True)
        (scans / folder / "head.png").write_bytes(encode(grey))
    frames = np.stack([phantom(64, lesion=True, seed=5100 + i)[:, 4:60] for i in range(3)])  # 64 x 56 frames
    (scans / "a" / "series.dcm").write_bytes(make_dicom(frames.astype(np.uint16) * 8))
    (scans / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "maps"
    capsys.readouterr()
    assert main(["predict", "--model", str(tiny_map_model), "--json", "--masks", str(out), str(scans)]) == 0
    lines = _lines(capsys)
    by_file = {}
    for line in lines:
        by_file.setdefault(line["file"].split("scans/")[1], []).append(line)
    assert sorted(by_file) == ["a/head.png", "a/series.dcm", "b/broken.jpg", "b/head.png"]

    broken = by_file["b/broken.jpg"]
    assert len(broken) == 1 and set(broken[0]) == {"file", "error"} and "truncated" in broken[0]["error"]
    masks = [line["mask"] for line in lines if "error" not in line]
    assert len(masks) == len(set(masks)) == 5  # two images, three frames, no name twice
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a/head.png.png", "a/series.dcm.slice-000.png", "a/series.dcm.slice-001.png",
                       "a/series.dcm.slice-002.png", "b/head.png.png"]

    for name in ("a/head.png", "b/head.png"):
        (line,) = by_file[name]
        full = _read_png(line["mask"])
        assert full.shape == grey.shape and full.dtype == np.uint8
        lesion = grey > 225
        # The bright part of the map lies over the lesion, in the input's own coordinates.
        assert full[lesion].mean() > 128 > full[~lesion].mean() + 64
        assert lesion[np.unravel_index(np.argmax(full), full.shape)]
        assert full[:, :60].max() == 0  # the margin left of the head is outside the crop
    series = by_file["a/series.dcm"]
    assert [line["slice_index"] for line in series] == [0, 1, 2]
    assert all(_read_png(line["mask"]).shape == (64, 56) for line in series)


def test_predict_masks_with_a_model_without_maps_is_a_one_line_error(tiny_model, tmp_path, capsys):
    (tmp_path / "head.png").write_bytes(encode(phantom(64)))
    assert main(["predict", "--model", str(tiny_model), "--masks", str(tmp_path / "maps"),
                 str(tmp_path / "head.png")]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: --masks needs a model with tumour maps") and "\n" not in err
    assert captured.out == "" and not (tmp_path / "maps").exists()


def _masked_data(root, masks, seed: int = 6000) -> None:
    """ROOT/Testing/{glioma,notumor}/*.png phantoms, and under MASKS the glioma images' lesion masks."""
    for label in ("glioma", "notumor"):
        (root / "Testing" / label).mkdir(parents=True)
        for i in range(4):
            grey = phantom(64, label == "glioma", seed + 10 * i + (label == "glioma"))
            (root / "Testing" / label / f"{i}.png").write_bytes(encode(grey))
            if label == "glioma":
                (masks / "Testing" / label).mkdir(parents=True, exist_ok=True)
                (masks / "Testing" / label / f"{i}.png").write_bytes(encode(np.where(grey > 225, 255, 0).astype(np.uint8)))


@pytest.fixture
def map_model(tiny_map_model, tmp_path):
    """A copy of the tumour-map model folder, so the reports evaluate writes stay in this test."""
    return shutil.copytree(tiny_map_model, tmp_path / "tiny-maps")


def test_evaluate_measures_the_maps_on_the_sibling_masks_folder(map_model, tmp_path, capsys):
    root = tmp_path / "phantoms"
    _masked_data(root, tmp_path / "phantoms-masks")
    capsys.readouterr()
    assert main(["evaluate", "--model", str(map_model), "--data", str(root)]) == 0
    printed = capsys.readouterr().out
    scores = json.loads((map_model / "evaluation-phantoms.json").read_text())["splits"]["test"]["tumour_maps"]
    assert scores["masks"] == str((tmp_path / "phantoms-masks").resolve())
    assert scores["with_tumour_mask"] == 4 and scores["without_tumour_mask"] == 4
    assert 0.5 < scores["mean_dice"] <= 1 and 0.5 < scores["median_dice"] <= 1  # about 0.83 as trained
    assert scores["peak_inside"] >= 0.75 and scores["unreadable_masks"] == []
    assert "tumour maps, test: 4 images with a tumour mask (4 without): mean Dice" in printed
    assert "peak inside the tumour" in printed


def test_evaluate_takes_the_masks_from_a_folder_elsewhere(map_model, tmp_path, capsys):
    root = tmp_path / "data" / "scans"
    _masked_data(root, tmp_path / "annotations" / "tumours", seed=7000)
    assert main(["evaluate", "--model", str(map_model), "--data", str(root)]) == 0  # no sibling folder: no maps
    assert "tumour_maps" not in json.loads((map_model / "evaluation-scans.json").read_text())["splits"]["test"]
    assert main(["evaluate", "--model", str(map_model), "--data", str(root),
                 "--masks", str(tmp_path / "annotations" / "tumours")]) == 0
    scores = json.loads((map_model / "evaluation-scans.json").read_text())["splits"]["test"]["tumour_maps"]
    assert scores["with_tumour_mask"] == 4 and scores["mean_dice"] is not None and scores["peak_inside"] is not None
    capsys.readouterr()
    assert main(["evaluate", "--model", str(map_model), "--data", str(root), "--masks", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: masks folder not found")


def test_evaluate_measures_the_maps_on_another_data_set_per_sequence(map_model, tmp_path, capsys):
    """A screened set (its classes are not the model's) laid out as the LGG set: sequence folders, masks flat by
    file stem in the sibling folder; Dice is reported overall and per sequence."""
    root, masks = tmp_path / "hospital", tmp_path / "hospital-masks"
    masks.mkdir()
    for folder, lesion in (("Glioma T1", True), ("Glioma FLAIR", True), ("_NORMAL T1", False)):
        (root / folder).mkdir(parents=True)
        for i in range(3):
            grey = phantom(64, lesion, 7100 + 10 * i + len(folder))
            stem = f"{folder.split()[0].strip('_').lower()}_{folder.split()[-1]}_{i}"
            (root / folder / f"{stem}.png").write_bytes(encode(grey))
            if lesion:
                (masks / f"{stem}.png").write_bytes(encode(np.where(grey > 225, 255, 0).astype(np.uint8)))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"classes": {"Glioma": "glioma", "_NORMAL": "notumor"}}))
    capsys.readouterr()
    assert main(["evaluate", "--model", str(map_model), "--data", str(root), "--label-map", str(mapping)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((map_model / "external.json").read_text())["hospital"]
    scores = report["tumour_maps"]
    assert scores["with_tumour_mask"] == 6 and scores["without_tumour_mask"] == 3 and 0.5 < scores["mean_dice"] <= 1
    assert set(scores["by_sequence"]) == {"T1", "FLAIR"} and scores["by_sequence"]["FLAIR"]["with_tumour_mask"] == 3
    assert "tumour maps, hospital, FLAIR: 3 images with a tumour mask" in printed
    assert "without_training_duplicates" not in scores  # none of these was trained on
    assert main(["evaluate", "--model", str(map_model), "--data", str(root), "--label-map", str(mapping),
                 "--masks", str(tmp_path / "nowhere")]) == 2

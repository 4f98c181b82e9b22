import numpy as np
import pytest

from brain_cnn.errors import UnreadableImageError
from brain_cnn.scan.preprocess import crop_to_head, find_head, load_scan, prepare

from conftest import encode, phantom


def test_find_head_ignores_black_margin():
    canvas = np.zeros((300, 200), np.uint8)
    canvas[100:196, 60:156] = phantom(96, margin=0.0)
    x0, y0, x1, y1 = find_head(canvas)
    assert 50 <= x0 <= 70 and 90 <= y0 <= 110
    assert 145 <= x1 <= 166 and 185 <= y1 <= 206


def test_blank_and_noise_images_are_kept_whole():
    assert find_head(np.zeros((50, 70), np.uint8)) == (0, 0, 70, 50)
    speckle = (np.random.default_rng(0).random((64, 64)) > 0.995).astype(np.uint8) * 255
    assert find_head(speckle) == (0, 0, 64, 64)


def test_crop_is_square_and_keeps_aspect_ratio():
    wide = np.zeros((60, 120), np.uint8)
    wide[10:50, 10:110] = 120
    square = crop_to_head(wide)
    assert square.shape[0] == square.shape[1]
    rows = np.flatnonzero(square.max(axis=1))
    cols = np.flatnonzero(square.max(axis=0))
    assert (cols.size / rows.size) == pytest.approx(100 / 40, rel=0.1)


@pytest.mark.parametrize("size", [32, 160])
def test_prepare_gives_uint8_model_input(size):
    out = prepare(phantom(200), size)
    assert out.shape == (size, size, 1) and out.dtype == np.uint8


def test_prepare_rejects_colour_arrays():
    with pytest.raises(UnreadableImageError):
        prepare(np.zeros((10, 10, 3), np.uint8), 32)


def test_path_and_bytes_give_identical_inputs(tmp_path):
    data = encode(phantom(120, lesion=True), "JPEG")
    (tmp_path / "scan.jpg").write_bytes(data)
    assert np.array_equal(load_scan(tmp_path / "scan.jpg", 64), load_scan(data, 64))


def test_unreadable_paths_have_clear_messages(tmp_path):
    with pytest.raises(UnreadableImageError, match="no such file"):
        load_scan(tmp_path / "missing.png", 64)
    with pytest.raises(UnreadableImageError, match="folder"):
        load_scan(tmp_path, 64)


def test_extremely_elongated_images_are_refused():
    with pytest.raises(UnreadableImageError, match="too elongated"):
        prepare(np.full((48, 65584), 100, np.uint8), 32)

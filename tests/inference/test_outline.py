import cv2
import numpy as np

from brain_cnn.inference.outline import (TumourArea, draw_outline, map_on_slice, map_png, outline, tumour_area)
from brain_cnn.scan.preprocess import prepare_slice

from conftest import phantom


def _lesion_map(side: int, centre: tuple[int, int], radius: int, size: int) -> np.ndarray:
    """A (size, size) map over the model input with a disc of 1.0 where the lesion lies in the square crop."""
    square = np.zeros((side, side), np.float32)
    cv2.circle(square, centre, radius, 1.0, -1)
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)


def test_the_map_comes_back_to_the_slice_where_the_lesion_is():
    # A wide slice with the head off-centre: the crop's offset and padding both matter.
    grey = np.zeros((120, 260), np.uint8)
    grey[10:106, 140:236] = phantom(96, lesion=False, seed=3)
    grey[50:60, 170:180] = 250  # the "lesion", in slice coordinates
    prepared = prepare_slice(grey, 64)
    side = prepared.crop.shape[0]
    dx, dy = prepared.offset
    tumour_map = _lesion_map(side, (175 + dx, 55 + dy), 6, 32)
    full = map_on_slice(tumour_map, prepared.offset, side, grey.shape)
    assert full.shape == grey.shape
    y, x = np.unravel_index(np.argmax(full), full.shape)
    assert 48 <= y <= 62 and 168 <= x <= 182
    assert full[:, :100].max() == 0  # nothing where the slice has no head
    png = cv2.imdecode(np.frombuffer(map_png(full), np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.shape == grey.shape and png.dtype == np.uint8 and png.max() > 200


def test_area_in_pixels_or_mm2_and_the_outline():
    full = np.zeros((100, 100), np.float32)
    full[20:30, 40:60] = 0.9
    assert tumour_area(full) == TumourArea(200, None) and str(tumour_area(full)) == "200 pixels"
    area = tumour_area(full, (0.5, 0.4))
    assert abs(area.mm2 - 40.0) < 1e-9 and str(area) == "40 mm²"
    assert str(tumour_area(full * 0)) == "0 pixels"
    assert len(outline(full)) == 1 and outline(full * 0) == []
    rgb = draw_outline(np.full((100, 100), 80, np.uint8), full)
    assert rgb.shape == (100, 100, 3)
    coloured = (rgb[..., 0] != rgb[..., 2])
    assert coloured[18:32, 38:62].any() and not coloured[50:, :].any() and not coloured[24:26, 48:52].any()


def _brain(side: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    return ((yy - side / 2) / (0.42 * side)) ** 2 + ((xx - side / 2) / (0.36 * side)) ** 2 <= 1


def _blob(square: np.ndarray, y: int, x: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[0:square.shape[0], 0:square.shape[1]]
    square[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = 0.9
    return square


def test_an_outline_is_doubted_where_maps_fire_on_normal_anatomy():
    from brain_cnn.inference.outline import outline_doubt

    brain, empty = _brain(), np.zeros((64, 64), np.float32)
    assert outline_doubt(empty, brain, True) is None  # nothing outlined
    one_side = _blob(empty.copy(), 30, 20, 6)
    assert outline_doubt(one_side, brain, True) is None  # a tumour on one side
    assert "call is no tumour" in outline_doubt(one_side, brain, False)
    ventricles = _blob(_blob(empty.copy(), 28, 26, 4), 28, 38, 4)  # paired, mirror images about the midline x = 32
    assert "both sides of the midline" in outline_doubt(ventricles, brain, True)
    assert outline_doubt(_blob(empty.copy(), 40, 32, 6), brain, True) is None  # one part across the midline: sella
    assert outline_doubt(_blob(_blob(empty.copy(), 20, 22, 4), 44, 40, 4), brain, True) is None  # two, not mirrored
    rim = empty.copy()
    rim[~brain] = 0.9
    rim[:, :4] = rim[:4, :] = 0  # skull and scalp around the brain
    assert "outside the brain" in outline_doubt(rim, brain, True)
    assert outline_doubt(ventricles, None, True) is not None  # no head found: the midline is the input's centre


def test_a_doubtful_outline_is_said_not_drawn_and_not_measured():
    from conftest import mapped_slice

    shown = mapped_slice(6, tumour=0.9)
    assert shown.outline_doubt is None and shown.tumour_area.pixels > 0
    contradicted = mapped_slice(6, tumour=0.1)  # the call is no tumour, the map marks a square
    assert contradicted.outline_text().startswith("Outline uncertain")
    assert contradicted.tumour_area.pixels == 0
    drawn = contradicted.outline_image()
    assert (drawn == drawn[..., :1]).all()  # grey only: no outline drawn


def test_the_fast_brain_mask_is_the_layers():
    from brain_cnn.data.painting import brain_region
    from brain_cnn.inference.outline import brain_mask

    for seed, lesion in ((0, True), (1, False), (2, True)):
        image = prepare_slice(phantom(256, lesion, seed), 160).model_input[..., 0]
        fast, layer = brain_mask(image), brain_region(image)
        assert (fast & layer).sum() / (fast | layer).sum() > 0.97
    assert brain_mask(np.zeros((64, 64), np.uint8)) is None

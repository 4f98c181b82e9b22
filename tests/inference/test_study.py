"""A study's tumour measured as one, on phantoms whose answers are known."""

import math

import numpy as np
import pytest

from brain_cnn.inference.study import (COMPLETE_RESPONSE, PARTIAL_RESPONSE, PROGRESSION, STABLE, DifferentPatients,
                                       category_of, compare, measure_masks)

SPACING = (0.5, 0.8)  # row, column mm
SLICE = 2.0  # mm


def ellipsoid(semi_mm=(12.0, 20.0, 14.0), shape=(40, 160, 120), centre=None, angle=0.0):
    """(slices, rows, columns) bool: an ellipsoid of semi-axes (slice, row, column) in mm, turned ``angle``
    degrees in the slice plane."""
    z, y, x = np.mgrid[:shape[0], :shape[1], :shape[2]].astype(float)
    cz, cy, cx = centre or (shape[0] / 2, shape[1] / 2, shape[2] / 2)
    dz, dy, dx = (z - cz) * SLICE, (y - cy) * SPACING[0], (x - cx) * SPACING[1]
    t = math.radians(angle)
    u, v = dx * math.cos(t) + dy * math.sin(t), -dx * math.sin(t) + dy * math.cos(t)
    return (dz / semi_mm[0]) ** 2 + (v / semi_mm[1]) ** 2 + (u / semi_mm[2]) ** 2 <= 1


def test_an_ellipsoid_gives_its_volume_and_diameters_within_a_voxel():
    semi = (12.0, 20.0, 14.0)
    found = measure_masks(ellipsoid(semi), SPACING, SLICE)
    truth = 4 / 3 * math.pi * semi[0] * semi[1] * semi[2] / 1000
    assert found.volume_ml == pytest.approx(truth, rel=0.03)
    assert found.units == "mm" and found.regions == 1 and found.largest_slice == 20
    longest, perpendicular = found.diameters
    assert abs(longest - 2 * semi[1]) <= SPACING[0]  # along the rows
    assert abs(perpendicular - 2 * semi[2]) <= SPACING[1]
    assert found.product == pytest.approx(longest * perpendicular)
    assert found.as_json()["diameters_mm"] == [round(longest, 1), round(perpendicular, 1)]


def test_a_turned_ellipse_is_measured_along_its_own_axes():
    mask = ellipsoid((6.0, 9.0, 22.0), shape=(5, 160, 120), angle=35)
    found = measure_masks(mask, SPACING, SLICE)
    longest, perpendicular = found.diameters
    assert abs(longest - 44.0) <= 1.0 and abs(perpendicular - 18.0) <= 1.0
    (x0, y0), (x1, y1) = found.longest_ends
    assert math.degrees(math.atan2((y1 - y0) * SPACING[0], (x1 - x0) * SPACING[1])) % 180 == pytest.approx(35, abs=4)


def test_a_lone_blob_on_one_slice_is_left_out_and_said():
    masks = ellipsoid()
    masks[3, 10:20, 10:20] = True  # far from the tumour, on one slice only
    found = measure_masks(masks, SPACING, SLICE)
    assert found.regions == 1 and found.voxels == int(ellipsoid().sum())
    assert any("slice 4 alone (100 pixels) was left out" in n for n in found.notes)
    assert measure_masks(masks[3:4], SPACING, SLICE).voxels == int(masks[3].sum())  # one slice: nothing to join


def test_without_spacing_lengths_are_pixels_and_volume_voxels():
    found = measure_masks(ellipsoid(), None, None)
    assert found.units == "pixels" and found.volume_ml is None and found.voxels > 0
    body = found.as_json()
    assert body["diameters_mm"] is None and body["diameters_pixels"] and body["volume_ml"] is None
    nothing = measure_masks(np.zeros((4, 20, 20), bool), SPACING, SLICE)
    assert nothing.volume_ml == 0 and nothing.diameters is None and nothing.largest_slice is None


def test_a_study_against_itself_is_stable_and_shrunk_or_grown_copies_get_their_category():
    semi = (12.0, 20.0, 14.0)
    base = measure_masks(ellipsoid(semi), SPACING, SLICE)
    same = compare(base, base)
    assert same.volume_percent == 0 and same.product_percent == 0 and same.category == STABLE and not same.warnings
    shrunk = measure_masks(ellipsoid(tuple(0.6 * s for s in semi)), SPACING, SLICE)  # product x 0.36
    assert compare(shrunk, base).category == PARTIAL_RESPONSE
    grown = measure_masks(ellipsoid(tuple(1.2 * s for s in semi)), SPACING, SLICE)  # product x 1.44
    change = compare(grown, base)
    assert change.category == PROGRESSION and change.product_percent == pytest.approx(44, abs=6)
    assert change.volume_percent == pytest.approx(72.8, abs=6)  # 1.2 cubed
    gone = measure_masks(np.zeros_like(ellipsoid()), SPACING, SLICE)
    assert compare(gone, base).category == COMPLETE_RESPONSE
    assert compare(base, gone).category == PROGRESSION


@pytest.mark.parametrize("now,before,category", [(125, 100, PROGRESSION), (124, 100, STABLE), (51, 100, STABLE),
                                                 (50, 100, PARTIAL_RESPONSE), (0, 100, COMPLETE_RESPONSE)])
def test_rano_thresholds(now, before, category):
    assert category_of(now, before) == category


def test_different_patients_are_refused_unless_confirmed_and_other_differences_warned():
    a = measure_masks(ellipsoid(), SPACING, SLICE)
    b = measure_masks(ellipsoid(), (0.9, 0.9), SLICE)
    a.patient_key, b.patient_key = "one", "two"
    with pytest.raises(DifferentPatients):
        compare(a, b)
    change = compare(a, b, same_patient_confirmed=True)
    assert any("different patients" in w for w in change.warnings)
    assert any("row and column spacings differ" in w for w in change.warnings)
    b.sequence = "T2"
    assert any("different sequences" in w for w in compare(a, b, same_patient_confirmed=True).warnings)

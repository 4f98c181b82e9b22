"""Painting a region out of a slice: both fills, the moved region, the brain region."""

import numpy as np
import pytest

from brain_cnn.data.painting import NAVIER_STOKES, TELEA, clear_margin, moved_region, paint_out


@pytest.mark.parametrize("fill", [TELEA, NAVIER_STOKES])
def test_painting_out_fills_the_region_and_its_rim_from_around_it(fill):
    image = np.full((32, 32, 1), 90, np.uint8)
    image[10:16, 10:16] = 250
    image[9, 10:16] = 200  # the rim, outside the region: the fill grows over it
    region = np.zeros((32, 32), bool)
    region[10:16, 10:16] = True
    filled = paint_out(image, region, fill)
    assert filled.shape == image.shape and filled.dtype == np.uint8
    assert abs(int(filled[12, 12, 0]) - 90) < 10 and abs(int(filled[9, 12, 0]) - 90) < 10
    assert (filled[25:, 25:] == 90).all()  # far from the region nothing changes


def test_a_moved_region_stays_in_the_brain_and_clear_of_the_tumour():
    brain = np.zeros((64, 64), bool)
    brain[8:56, 8:56] = True
    region = np.zeros_like(brain)
    region[20:26, 30:34] = True
    moved = moved_region(region, brain, np.random.default_rng(0))
    assert moved.sum() == region.sum() and brain[moved].all() and not (moved & region).any()
    assert moved_region(region, np.zeros_like(brain), np.random.default_rng(0)) is None


@pytest.mark.parametrize("fill", [TELEA, NAVIER_STOKES])
def test_a_margin_keeps_the_moved_region_and_its_fill_off_the_tumour(fill):
    brain = np.zeros((64, 64), bool)
    brain[4:60, 4:60] = True
    region = np.zeros_like(brain)
    region[26:34, 26:34] = True
    image = np.full((64, 64, 1), 90, np.uint8)
    image[region] = 250
    for seed in range(20):
        moved = moved_region(region, brain, np.random.default_rng(seed), margin=clear_margin(fill))
        filled = paint_out(image, moved, fill)
        assert (filled[region] == 250).all()  # the tumour keeps every pixel
    touching = np.zeros_like(region)
    touching[26:34, 35:43] = True  # one pixel clear of the tumour: the grown fill takes its rim
    assert (paint_out(image, touching, fill)[region] != 250).any()

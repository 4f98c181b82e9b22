"""The ceiling of a map at a coarser resolution: what a perfect half-resolution map can score."""

import numpy as np

from experiments.map_resolution import ceiling


def test_a_perfect_coarse_map_loses_nothing_on_aligned_blocks_and_a_single_pixel_entirely():
    masks = np.zeros((2, 16, 16), bool)
    masks[0, 4:12, 4:12] = True  # whole 2 x 2 cells: a perfect half-resolution map draws it exactly
    masks[1, 7, 9] = True  # a quarter of one cell: below 0.5 wherever it is brought up
    half = ceiling(masks, 2)
    assert half[0] == 1.0 and half[1] == 0.0
    assert ceiling(masks, 4)[0] <= half[0]

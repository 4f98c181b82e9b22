"""Dice and the peak inside the tumour, for a map against expert masks."""

import numpy as np
import pytest

from brain_cnn.evaluation.map_scores import dice, map_scores


def test_dice_counts_overlap_and_an_empty_pair_as_agreement():
    truth = np.zeros((8, 8), bool)
    truth[2:6, 2:6] = True
    assert dice(truth, truth) == 1.0
    assert dice(truth, np.zeros_like(truth)) == 0.0
    half = truth.copy()
    half[2:4] = False
    assert dice(truth, half) == pytest.approx(2 * 8 / (16 + 8))
    assert dice(np.zeros_like(truth), np.zeros_like(truth)) == 1.0


def test_map_scores_upsample_the_half_resolution_map_and_skip_empty_truths():
    masks = np.zeros((3, 16, 16, 1), np.uint8)
    masks[0, 4:12, 4:12] = 255
    masks[1, 0:4, 0:4] = 255
    maps = np.zeros((3, 8, 8, 1), np.float32)
    maps[0, 2:6, 2:6] = 0.9  # right place
    maps[1, 5:8, 5:8] = 0.9  # wrong place
    scores = map_scores(maps, masks)
    assert scores["images"] == 2  # the empty truth is not averaged in
    assert scores["peak_inside"] == 0.5
    assert scores["mean_dice"] == pytest.approx(0.5, abs=0.05)  # one right (Dice about 1), one wrong (0)

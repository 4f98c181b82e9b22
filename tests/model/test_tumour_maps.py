import numpy as np
import pytest

from brain_cnn.model.tumour_maps import PROBABILITIES, TUMOUR_MAP, build_segmenter, tumour_map_loss


def test_two_outputs_from_one_pass():
    model = build_segmenter(4, image_size=64, width=8, depth=3)
    out = model(np.zeros((2, 64, 64, 1), np.float32))
    assert out[PROBABILITIES].shape == (2, 4) and out[TUMOUR_MAP].shape == (2, 32, 32, 1)
    np.testing.assert_allclose(np.asarray(out[PROBABILITIES]).sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError):
        build_segmenter(4, image_size=60, depth=3)


def test_the_map_loss_rewards_the_right_map_and_an_empty_one_for_no_tumour():
    truth = np.zeros((3, 8, 8, 1), np.float32)
    truth[0, 2:5, 2:5] = 1
    right = truth * 0.98 + 0.01
    wrong = np.roll(right, 4, axis=1)
    loss = lambda t, p: np.asarray(tumour_map_loss(t, p))  # noqa: E731
    assert (loss(truth, right)[:1] < loss(truth, wrong)[:1] - 0.5).all()
    empty = np.zeros((1, 8, 8, 1), np.float32)
    assert loss(empty, empty + 0.01)[0] < loss(empty, empty + 0.5)[0]

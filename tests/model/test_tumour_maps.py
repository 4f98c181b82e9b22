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


def test_the_call_is_made_from_the_map():
    """P(no tumour) is 1 - the map's smoothed peak: an empty map calls no tumour whatever the type head says."""
    from brain_cnn.model.layers import CallFromMap
    from brain_cnn.model.tumour_maps import NORMAL

    tumour = np.array([[0.0], [0.9]], np.float32)
    types = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    out = np.asarray(CallFromMap(NORMAL)([tumour, types]))
    np.testing.assert_allclose(out[0], [0, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(out[1], [0.09, 0.09, 0.1, 0.72], atol=1e-6)
    model = build_segmenter(4, image_size=64, width=8, depth=3)
    out = model(np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 1)).astype(np.float32))
    smoothed_peak = np.asarray(out[TUMOUR_MAP]).max(axis=(1, 2, 3))  # the 3x3 mean's peak is no higher
    assert (1 - np.asarray(out[PROBABILITIES])[:, NORMAL] <= smoothed_peak + 1e-6).all()


def test_a_map_model_saves_and_loads_in_safe_mode(tmp_path):
    import keras

    import brain_cnn.model.layers  # noqa: F401

    model = build_segmenter(4, image_size=32, width=4, depth=2)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    x = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model(x)[PROBABILITIES]), np.asarray(again(x)[PROBABILITIES]), atol=1e-6)

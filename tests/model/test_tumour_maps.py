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


def test_the_call_loss_is_cross_entropy_and_its_presence_weight_keeps_the_peak_out():
    import keras
    import tensorflow as tf

    from brain_cnn.model.layers import CallFromMap
    from brain_cnn.model.tumour_maps import NORMAL, call_loss, call_targets

    rng = np.random.default_rng(0)
    peak = tf.Variable(rng.uniform(0.05, 0.95, (6, 1)).astype(np.float32))
    types = tf.constant(rng.dirichlet(np.ones(3), 6).astype(np.float32))
    onehot = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 2, 0]]
    with tf.GradientTape(persistent=True) as tape:
        probabilities = CallFromMap(NORMAL)([peak, types])
        full = call_loss(call_targets(onehot, np.ones(6)), probabilities)
        typed = call_loss(call_targets(onehot, np.zeros(6)), probabilities)
    plain = keras.losses.categorical_crossentropy(onehot, probabilities)
    np.testing.assert_allclose(np.asarray(full), np.asarray(plain), rtol=1e-5)  # weight 1: the plain cross-entropy
    # Weight 0: only the type's loss is left; nothing reaches the peak, and normals cost nothing.
    np.testing.assert_allclose(np.asarray(tape.gradient(typed, peak)), 0, atol=1e-5)
    assert np.asarray(typed)[[2, 4]].tolist() == [0, 0] and (np.asarray(typed)[[0, 1, 3, 5]] > 0).all()
    assert np.abs(np.asarray(tape.gradient(full, peak))).min() > 0.1


def test_a_type_head_that_sees_the_tumour_region_alone_keeps_every_other_weight(tmp_path):
    import keras

    from brain_cnn.model.tumour_maps import with_type_from

    keras.utils.set_random_seed(1)
    both = build_segmenter(4, image_size=64, width=8)
    alone = with_type_from(both, "region", image_size=64, width=8)
    names = {layer.name for layer in alone.layers}
    assert "pool" not in names and "evidence" not in names  # nothing pooled over the whole slice
    image = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 1)).astype(np.float32)
    before, after = both(image, training=False), alone(image, training=False)
    np.testing.assert_allclose(np.asarray(after[TUMOUR_MAP]), np.asarray(before[TUMOUR_MAP]), atol=1e-6)
    kernel = both.get_layer("tumour_type").get_weights()[0]
    np.testing.assert_array_equal(alone.get_layer("tumour_type").get_weights()[0], kernel[kernel.shape[0] // 2:])
    back = with_type_from(alone, "slice and region", image_size=64, width=8)  # and back: the slice's rows at zero
    restored = back.get_layer("tumour_type").get_weights()[0]
    assert not restored[: kernel.shape[0] // 2].any()
    np.testing.assert_array_equal(restored[kernel.shape[0] // 2:], kernel[kernel.shape[0] // 2:])
    alone.save(tmp_path / "alone.keras")
    assert keras.saving.load_model(tmp_path / "alone.keras", safe_mode=True).get_layer("tumour_type")
    with pytest.raises(ValueError, match="type_from"):
        build_segmenter(4, image_size=64, width=8, type_from="slice")

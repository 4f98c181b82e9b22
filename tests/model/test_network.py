import pytest

from brain_cnn.model.network import LAST_CONV_LAYER, build_model


def test_output_is_a_probability_per_class():
    import numpy as np

    model = build_model(5, image_size=64, width=8, depth=3)
    assert model.output_shape == (None, 5)
    probs = np.asarray(model(np.zeros((2, 64, 64, 1), np.float32), training=False))
    assert probs.shape == (2, 5) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert model.get_layer(LAST_CONV_LAYER).output.shape[-1] == 32  # 8 doubled twice


def test_default_model_is_small():
    model = build_model(4)
    assert model.input_shape == (None, 160, 160, 1)
    assert model.count_params() * 4 < 20 * 2**20  # float32 weights under 20 MB


def test_too_deep_for_the_input_is_refused():
    with pytest.raises(ValueError, match="too small"):
        build_model(2, image_size=16, depth=4)


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="unknown pooling"):
        build_model(2, image_size=32, depth=2, pooling="median")


def test_the_two_heads_differ_only_in_pooling():
    """With the dense head's weights as a 1x1 convolution, averaging the class maps gives the average head's
    scores and taking their maximum gives the max head's: the max head is its score at the best place."""
    import numpy as np

    from brain_cnn.model.network import CLASS_MAPS_LAYER
    from brain_cnn.training.start import start_from

    average = build_model(3, image_size=48, width=4, depth=2, pooling="average")
    peak = build_model(3, image_size=48, width=4, depth=2, pooling="max")
    start_from(peak, average, same_classes=True)
    images = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1)).astype(np.float32)

    import keras

    maps = np.asarray(keras.Model(peak.inputs, peak.get_layer(CLASS_MAPS_LAYER).output)(images, training=False))
    logits = lambda p: np.log(p) - np.log(p).mean(axis=1, keepdims=True)  # noqa: E731 - softmax up to a constant
    assert np.allclose(logits(np.asarray(average(images, training=False))),
                       logits(_softmax(maps.mean(axis=(1, 2)))), atol=1e-4)
    assert np.allclose(np.asarray(peak(images, training=False)), _softmax(maps.max(axis=(1, 2))), atol=1e-5)
    back = build_model(3, image_size=48, width=4, depth=2)
    start_from(back, peak, same_classes=True)  # and back again
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), average.get_weights()))


def _softmax(x):
    import numpy as np

    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_a_dilated_last_stage_keeps_the_weights_on_a_finer_map():
    plain = build_model(3, image_size=64, width=4, depth=3)
    fine = build_model(3, image_size=64, width=4, depth=3, dilate_last_stage=True)
    assert plain.get_layer(LAST_CONV_LAYER).output.shape[1:3] == (8, 8)
    assert fine.get_layer(LAST_CONV_LAYER).output.shape[1:3] == (16, 16)
    assert [w.shape for w in plain.get_weights()] == [w.shape for w in fine.get_weights()]

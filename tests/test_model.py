import pytest

from brain_cnn.model import LAST_CONV_LAYER, build_model


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

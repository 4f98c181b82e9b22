import numpy as np
import pytest

from experiments.adaptation import adapt_batch_norm, batch_norm_layers
from brain_cnn.model.network import build_model


def _stem_input(model, images):
    """What the first batch norm normalises: the stem convolution's output."""
    import keras

    probe = keras.Model(model.input, model.get_layer("stem_conv").output)
    return np.asarray(probe(images.astype(np.float32), training=False))


def test_statistics_become_the_sites_and_nothing_else_changes():
    model = build_model(3, image_size=32, width=4, depth=2)
    rng = np.random.default_rng(1)
    site = rng.uniform(100, 250, (40, 32, 32, 1)).astype(np.float32)  # a brighter scanner
    before = [w.copy() for w in model.get_weights()]
    adapted = adapt_batch_norm(model, site)

    stem = adapted.get_layer("stem_bn")
    outputs = _stem_input(model, site)
    assert np.allclose(stem.moving_mean.numpy(), outputs.mean(axis=(0, 1, 2)), rtol=1e-3, atol=1e-4)
    assert np.allclose(stem.moving_variance.numpy(), outputs.var(axis=(0, 1, 2)), rtol=1e-2, atol=1e-4)
    assert stem.momentum == model.get_layer("stem_bn").momentum  # restored after adapting
    # The original is untouched; in the copy only running statistics moved.
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    statistics = {id(v) for layer in batch_norm_layers(adapted) for v in (layer.moving_mean, layer.moving_variance)}
    for original, variable in zip(before, adapted.weights):
        if id(variable) not in statistics:
            assert np.array_equal(original, variable.numpy()), variable.path


def test_adapting_to_a_shifted_site_undoes_the_shift():
    """A site whose scans are the training scans made brighter gets, after adaptation, the outputs the model
    gives the originals, because each layer's input is renormalised to what the network learned on."""
    model = build_model(3, image_size=32, width=4, depth=2)
    rng = np.random.default_rng(2)
    home = rng.uniform(0, 120, (64, 32, 32, 1)).astype(np.float32)
    at_home = adapt_batch_norm(model, home)  # statistics of the home site, as after training
    brighter = home * 1.8 + 20
    reference = np.asarray(at_home(home, training=False))
    unadapted = np.asarray(at_home(brighter, training=False))
    adapted = np.asarray(adapt_batch_norm(at_home, brighter)(brighter, training=False))
    assert np.abs(adapted - reference).max() < 0.2 * np.abs(unadapted - reference).max()


def test_too_few_scans_or_no_batch_norm_are_refused():
    import keras

    with pytest.raises(ValueError, match="at least two"):
        adapt_batch_norm(build_model(2, image_size=32, width=4, depth=2), np.zeros((1, 32, 32, 1)))
    plain = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no batch normalisation"):
        adapt_batch_norm(plain, np.zeros((4, 8, 8, 1)))

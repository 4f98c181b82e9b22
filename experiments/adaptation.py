"""Site adaptation: batch-normalisation statistics re-estimated on a site's own unlabelled scans.

A network normalises each convolution's output with the mean and variance it
saw in training. Another scanner or sequence shifts those statistics, and
every later layer then sees inputs it was never trained on. AdaBN (Li et al.,
2016, "Revisiting batch normalization for practical domain adaptation",
arXiv:1603.04779) replaces them with the statistics of the new site's images,
which needs no labels: only scans of that site.
"""

from __future__ import annotations

import numpy as np

__all__ = ["adapt_batch_norm", "batch_norm_layers"]


def batch_norm_layers(model) -> list:
    """Every batch-normalisation layer of ``model``, nested models included."""
    from keras import layers

    found = []
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(batch_norm_layers(layer))
    return found


def adapt_batch_norm(model, images: np.ndarray, sample: int = 512, seed: int = 0):
    """A copy of ``model`` whose batch-norm statistics are those of ``images`` (N, S, S, 1), uint8 range.

    Up to ``sample`` images, drawn at random, go through the network in one
    batch in training mode with momentum 0, so each layer's running mean and
    variance become the batch's, computed on the outputs of the layers before
    it as already adapted. Weights other than those statistics are unchanged.

    Raises:
        ValueError: fewer than two images, or a model without batch normalisation.
    """
    import keras

    if len(images) < 2:
        raise ValueError("site adaptation needs at least two scans of the site")
    if not batch_norm_layers(model):
        raise ValueError(f"{model.name} has no batch normalisation to adapt")
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    chosen = np.random.default_rng(seed).permutation(len(images))[:sample]
    norms = batch_norm_layers(copy)
    saved = [layer.momentum for layer in norms]
    try:
        for layer in norms:
            layer.momentum = 0.0
        copy(np.ascontiguousarray(images[np.sort(chosen)], dtype=np.float32), training=True)
    finally:
        for layer, momentum in zip(norms, saved):
            layer.momentum = momentum
    return copy

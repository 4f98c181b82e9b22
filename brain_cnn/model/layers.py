"""Custom Keras layers of the network, registered so that safe-mode loading finds them.

:class:`BrainOnly` keeps the brain and blacks out the rest of the slice: the
skull, the scalp and the background. Heat maps of the bundled network peak
there for a fifth of the gliomas (``brain-cnn explain-eval``: "peak off the
brain"), where no brain tumour can be; a network that cannot see them has to
find its evidence inside the brain. It is part of the network, not of the
preprocessing, so training, evaluation, the app, the CLI and an exported
model all apply it, to augmented images too.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from brain_cnn.scan.preprocess import HEAD_LEVEL, RIM

__all__ = ["AreaResize", "BrainOnly", "CallFromMap", "CombinedCall", "MaskedPooling", "StandardiseHead",
           "area_matrix"]

# Grey level (of 255) above which a pixel counts as head for StandardiseHead.
HEAD_PIXEL = 10.0
# The head's mean and spread after standardising, in [0, 1] units: a darkish grey with room for
# bright lesions above it, as most training slices look, so a network trained without the layer
# can be fine-tuned with it.
TARGET_MEAN, TARGET_STD = 0.30, 0.16


def _min_pool(mask, shape: tuple[int, int]):
    return -ops.max_pool(-mask, shape, strides=1, padding="same")


def _erode(mask, size: int):
    """Minimum over a ``size`` x ``size`` square (separable)."""
    return _min_pool(_min_pool(mask, (size, 1)), (1, size))


def _erode_disc(mask, radius: int):
    """Erode by an octagon close to a disc of ``radius``, the image edge counting as background.

    A square of half-side 0.41 r and then a diamond of 0.59 r reach r both along
    the axes and along the diagonals; a square alone would cut 1.4 r into the
    brain at the diagonals.
    """
    mask = ops.pad(mask, [[0, 0], [radius, radius], [radius, radius], [0, 0]])
    square = round(0.414 * radius)
    mask = _erode(mask, 2 * square + 1)
    for _ in range(radius - square):  # a diamond: one pixel along the axes per step
        mask = ops.minimum(_min_pool(mask, (3, 1)), _min_pool(mask, (1, 3)))
    return mask[:, radius:-radius, radius:-radius, :]


def _dilate(mask, size: int):
    mask = ops.max_pool(mask, (size, 1), strides=1, padding="same")
    return ops.max_pool(mask, (1, size), strides=1, padding="same")


def _seen_from_both_sides(mask, axis: int):
    """Places with head on both sides along ``axis`` (or on them): fills the dark holes inside the head."""
    before = ops.cumsum(mask, axis=axis) > 0
    after = ops.flip(ops.cumsum(ops.flip(mask, axis=axis), axis=axis), axis=axis) > 0
    return ops.logical_and(before, after)


@keras.saving.register_keras_serializable(package="brain_cnn")
class BrainOnly(keras.layers.Layer):
    """Multiply a (N, S, S, 1) slice in [0, 1] by its brain mask.

    The mask (also what ``explain-eval`` calls the brain): the bright part
    of the blurred slice (above a fifth of its brightest level, at most
    :data:`~brain_cnn.scan.preprocess.HEAD_LEVEL`, as the head crop finds it),
    opened to drop speckle; filled wherever head lies on both sides across
    and down (ventricles, necrosis; the sinuses beside the sella, so a
    pituitary tumour stays in); less the outer :data:`~brain_cnn.scan.preprocess.RIM`
    of the side.
    """

    def __init__(self, rim: float = RIM, **kwargs):
        super().__init__(**kwargs)
        self.rim = float(rim)

    def brain_mask(self, x):
        blurred = ops.average_pool(x, 5, strides=1, padding="same")
        level = ops.max(blurred, axis=(1, 2, 3), keepdims=True)
        head = ops.cast(blurred > ops.minimum(HEAD_LEVEL / 255.0, 0.2 * level), x.dtype)
        head = _dilate(_erode(head, 5), 5)
        filled = ops.logical_and(_seen_from_both_sides(head, 1), _seen_from_both_sides(head, 2))
        return _erode_disc(ops.cast(filled, x.dtype), max(1, round(self.rim * int(x.shape[1]))))

    def call(self, x):
        return x * self.brain_mask(x)

    def get_config(self):
        return {**super().get_config(), "rim": self.rim}


@keras.saving.register_keras_serializable(package="brain_cnn")
class StandardiseHead(keras.layers.Layer):
    """Give every slice's head pixels one mean and spread: (N, S, S, 1) in [0, 1] to the same.

    Z-score normalisation within the head, the usual first step in
    harmonising MRI across scanners: the sources differ in overall brightness
    and contrast (``experiments/intensity_matching.py`` prints how much),
    which a network can otherwise learn as a cue of the source. The
    background stays black. Part of the network, like :class:`BrainOnly`,
    so every path applies it.
    """

    def call(self, x):
        head = ops.cast(x > HEAD_PIXEL / 255.0, x.dtype)
        count = ops.maximum(ops.sum(head, axis=(1, 2, 3), keepdims=True), 1.0)
        mean = ops.sum(x * head, axis=(1, 2, 3), keepdims=True) / count
        spread = ops.sqrt(ops.sum(ops.square(x - mean) * head, axis=(1, 2, 3), keepdims=True) / count)
        standard = TARGET_MEAN + TARGET_STD * (x - mean) / ops.maximum(spread, 1e-3)
        return ops.clip(standard, 0.0, 1.0) * head


@keras.saving.register_keras_serializable(package="brain_cnn")
class MaskedPooling(keras.layers.Layer):
    """The mean of features (B, h, w, C) weighted by a map (B, h, w, 1): pooling over the predicted tumour.

    The class head of :mod:`brain_cnn.model.tumour_maps` sees this beside the
    global average, so what the map finds weighs in the call.
    """

    def call(self, inputs):
        features, weights = inputs
        total = ops.sum(weights, axis=(1, 2)) + 1e-3
        return ops.sum(features * weights, axis=(1, 2)) / total


@keras.saving.register_keras_serializable(package="brain_cnn")
class CallFromMap(keras.layers.Layer):
    """Class probabilities (B, K) from the tumour probability (B, 1) and the tumour type's (B, K-1).

    P(no tumour) = 1 - P(tumour), and P(type) = P(tumour) x P(type | tumour):
    whether there is a tumour is what the map says, so painting the tumour
    out takes the call with it. ``normal`` is the no-tumour class's index.
    """

    def __init__(self, normal: int, **kwargs):
        super().__init__(**kwargs)
        self.normal = int(normal)

    def call(self, inputs):
        tumour, types = inputs
        return ops.concatenate([tumour * types[:, : self.normal], 1.0 - tumour, tumour * types[:, self.normal :]],
                               axis=-1)

    def get_config(self):
        return {**super().get_config(), "normal": self.normal}


def area_matrix(size: int, side: int):
    """(side, size) weights of an area-average resize of ``size`` pixels to ``side``: each output pixel is the
    mean of the input it covers, partial pixels by their share (OpenCV's ``INTER_AREA`` when shrinking)."""
    import numpy as np

    scale = size / side
    weights = np.zeros((side, size), np.float32)
    for out in range(side):
        start, stop = out * scale, (out + 1) * scale
        for pixel in range(int(start), min(size, int(np.ceil(stop)))):
            weights[out, pixel] = (min(stop, pixel + 1) - max(start, pixel)) / scale
    return weights


@keras.saving.register_keras_serializable(package="brain_cnn")
class AreaResize(keras.layers.Layer):
    """Shrink a one-channel square batch (B, S, S, 1) to (B, side, side, 1) by area averaging.

    The preprocessing shrinks a head crop with ``INTER_AREA``; a network of a
    smaller input inside a larger model (:mod:`brain_cnn.model.combined`)
    should see the same kind of image, not the aliased one a bilinear resize
    gives. Two matrix products, so every engine (ONNX included) runs it.
    """

    def __init__(self, side: int, **kwargs):
        super().__init__(**kwargs)
        self.side = int(side)

    def build(self, input_shape):
        self.matrix = area_matrix(int(input_shape[1]), self.side)

    def call(self, images):
        # A constant of each traced graph (not a tensor captured from outside it, which an exported graph would
        # expect as a second input).
        matrix = ops.convert_to_tensor(self.matrix, dtype=images.dtype)
        rows = ops.matmul(matrix, images[..., 0])  # (B, side, S)
        return ops.matmul(rows, ops.transpose(matrix))[..., None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.side, self.side, 1)

    def get_config(self):
        return {**super().get_config(), "side": self.side}


@keras.saving.register_keras_serializable(package="brain_cnn")
class CombinedCall(keras.layers.Layer):
    """Class probabilities (B, K) from a classifier's and a tumour-map network's, by a fitted rule.

    Whether there is a tumour: ``sigmoid(a * logit(t_classifier) + b * logit(t_map) + c)``, where ``t`` is a
    network's probability of a tumour (1 - P(no tumour)). Which type: ``softmax(d * log p_classifier + e * log
    p_map)`` over the tumour classes, a weighted geometric mean of the two networks' type probabilities (``d = 1,
    e = 0`` is the classifier's alone). The rule's numbers come from the model card (:mod:`brain_cnn.model.combined`).

    With a ``look`` (weights (D,) and an intercept over the first classifier's pooled features, a third input),
    the slice's familiarity ``g = sigmoid(features . w + w0)`` blends two sets of those numbers: ``familiar``
    ones for the look of the classifiers' training source (``g = 1``) and the others (``g = 0``).
    """

    def __init__(self, normal: int, weights: tuple[float, float], intercept: float,
                 type_weights: tuple[float, float] = (1.0, 0.0), familiar: dict | None = None,
                 look: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.normal = int(normal)
        self.rule_weights = (float(weights[0]), float(weights[1]))
        self.intercept = float(intercept)
        self.type_weights = (float(type_weights[0]), float(type_weights[1]))
        self.familiar = None if familiar is None else {
            "weights": [float(w) for w in familiar["weights"]], "intercept": float(familiar["intercept"]),
            "type_weights": [float(w) for w in familiar["type_weights"]]}
        self.look = None if look is None else {"weights": [float(w) for w in look["weights"]],
                                               "intercept": float(look["intercept"])}
        if (self.familiar is None) != (self.look is None):
            raise ValueError("a look-dependent rule needs both its familiar numbers and its look")

    def call(self, inputs):
        eps = 1e-4  # the same clip as the fit (brain_cnn.model.combined.presence_inputs)

        def logit(probabilities):
            tumour = ops.clip(1.0 - probabilities[:, self.normal : self.normal + 1], eps, 1.0 - eps)
            return ops.log(tumour) - ops.log(1.0 - tumour)

        def log_types(probabilities):
            types = ops.concatenate([probabilities[:, : self.normal], probabilities[:, self.normal + 1 :]], axis=-1)
            return ops.log(ops.clip(types, 1e-12, 1.0))

        classifier, tumour_maps = inputs[0], inputs[1]
        weights, intercept, type_weights = self.rule_weights, self.intercept, self.type_weights
        if self.look is not None:
            look = ops.convert_to_tensor(np.asarray(self.look["weights"], np.float32)[:, None])
            g = ops.sigmoid(ops.matmul(ops.cast(inputs[2], "float32"), look) + self.look["intercept"])  # (B, 1)

            def blend(other, familiar):
                return (1.0 - g) * other + g * familiar

            weights = [blend(w, f) for w, f in zip(weights, self.familiar["weights"])]
            intercept = blend(intercept, self.familiar["intercept"])
            type_weights = [blend(w, f) for w, f in zip(type_weights, self.familiar["type_weights"])]
        score = weights[0] * logit(classifier) + weights[1] * logit(tumour_maps) + intercept
        tumour = ops.sigmoid(score)
        types = ops.softmax(type_weights[0] * log_types(classifier) + type_weights[1] * log_types(tumour_maps),
                            axis=-1)
        return ops.concatenate([tumour * types[:, : self.normal], 1.0 - tumour, tumour * types[:, self.normal :]],
                               axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "normal": self.normal, "weights": list(self.rule_weights),
                "intercept": self.intercept, "type_weights": list(self.type_weights), "familiar": self.familiar,
                "look": self.look}

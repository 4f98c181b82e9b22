"""A network that calls the class and maps the tumour in one forward pass.

The classifiers of :mod:`brain_cnn.model.network` decide from what a source
looks like: in the 4-class set nearly every normal slice comes from one
source, so "looks like that source" became "no tumour" (shortcut learning,
Geirhos et al., 2020; DeGrave et al., 2021). This network is made to find
the tumour:

* a U-Net-style decoder (Ronneberger et al., MICCAI 2015) on the same
  VGG-style encoder gives a tumour probability map at half the input's
  resolution (``tumour_map``);
* whether there is a tumour is the map's (smoothed) peak, as in
  multiple-instance learning from a segmentation (the image is positive when
  some pixel is): P(no tumour) = 1 - peak, so the call goes with the map
  (:class:`~brain_cnn.model.layers.CallFromMap`); tumour images whose mask
  is unknown still teach the map through it;
* the type head pools the encoder's last features over the whole slice
  *and* over the predicted tumour region (mask-guided pooling, in the spirit
  of GAIN, Li et al., CVPR 2018) and names the type of tumour;
* the map is trained with Dice (Milletari et al., 2016) plus binary
  cross-entropy (:func:`tumour_map_loss`) on images with a mask and on
  no-tumour images (an empty mask), never on tumour images without a mask
  (:mod:`brain_cnn.data.masks`). Training: :mod:`brain_cnn.training.tumour_maps`.
"""

from __future__ import annotations

import numpy as np

from brain_cnn.model.network import _conv_bn_relu

__all__ = ["CLASSES", "NORMAL", "PROBABILITIES", "TUMOUR_MAP", "TYPE_FROM", "build_segmenter", "with_type_from",
           "call_accuracy", "call_loss", "call_targets", "class_output", "map_output", "tumour_map_loss"]

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
NORMAL = CLASSES.index("notumor")
PROBABILITIES, TUMOUR_MAP = "probabilities", "tumour_map"


def class_output(model):
    """The class probabilities output of a network: its only output, or the one named ``probabilities``."""
    output = model.output
    return output[PROBABILITIES] if isinstance(output, dict) else output


def map_output(model):
    """The tumour map output of a network, or None for a classifier without one."""
    output = model.output
    return output.get(TUMOUR_MAP) if isinstance(output, dict) else None


# What the head naming a tumour's type sees: the encoder's features pooled over the whole slice and over the
# predicted tumour region, or over the region alone (so that nothing outside the tumour names its type).
TYPE_FROM = ("slice and region", "region")


def build_segmenter(num_classes: int = len(CLASSES), image_size: int = 128, width: int = 24, depth: int = 4,
                    dropout: float = 0.3, normal: int = NORMAL, type_from: str = TYPE_FROM[0]):
    """Build the (uncompiled) two-output network: ``{"probabilities": (B, K), "tumour_map": (B, S/2, S/2, 1)}``.

    Args:
        num_classes: classes of the softmax head.
        image_size: side of the square input; a multiple of ``2 ** (depth + 1)``.
        width: filters of the first stage, doubled at each later one.
        depth: encoder stages.
        dropout: rate before the class head.
        normal: index of the no-tumour class.
        type_from: what the type head sees (:data:`TYPE_FROM`).

    Example:
        >>> model = build_segmenter(4, image_size=64, width=8, depth=3)
        >>> [tuple(o.shape) for o in model.outputs]
        [(None, 4), (None, 32, 32, 1)]
    """
    import keras
    from keras import layers

    from brain_cnn.model.layers import CallFromMap, MaskedPooling

    if type_from not in TYPE_FROM:
        raise ValueError(f"type_from must be one of {TYPE_FROM}, not {type_from!r}")
    if image_size % 2 ** (depth + 1):
        raise ValueError(f"image size {image_size} must be a multiple of {2 ** (depth + 1)} for depth {depth}")
    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    x = _conv_bn_relu(x, width, "stem", kernel=5, strides=2)
    skips, filters = [], width
    for stage in range(depth):
        x = _conv_bn_relu(x, filters, f"stage{stage}_a")
        x = _conv_bn_relu(x, filters, "last_conv" if stage == depth - 1 else f"stage{stage}_b")
        if stage < depth - 1:
            skips.append(x)
            x = layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
            filters *= 2
    features = x
    # Decoder: up to half the input's resolution, joining the encoder's features at each scale.
    for level, skip in reversed(list(enumerate(skips))):
        filters //= 2
        x = layers.UpSampling2D(interpolation="bilinear", name=f"up{level}")(x)
        x = layers.Concatenate(name=f"join{level}")([x, skip])
        x = _conv_bn_relu(x, filters, f"decode{level}")
    tumour_map = layers.Conv2D(1, 1, activation="sigmoid", name=TUMOUR_MAP, dtype="float32")(x)
    # Whether there is a tumour is the map's smoothed peak (a lone bright pixel is not a tumour); the
    # head names its type only, from the whole slice and the predicted tumour region. The call is made
    # from the two (CallFromMap), so no tumour in the map means no tumour in the call.
    scale = (image_size // 2) // features.shape[1]
    region = layers.AveragePooling2D(pool_size=scale, name="map_to_features")(tumour_map)
    in_region = MaskedPooling(name="tumour_pool")([features, region])
    smooth = layers.AveragePooling2D(pool_size=3, strides=1, padding="same", name="map_smooth")(tumour_map)
    tumour = layers.GlobalMaxPooling2D(name="map_peak")(smooth)
    if type_from == "region":
        x = in_region
    else:
        pooled = layers.GlobalAveragePooling2D(name="pool")(features)
        x = layers.Concatenate(name="evidence")([pooled, in_region])
    x = layers.Dropout(dropout, name="dropout")(x)
    types = layers.Dense(num_classes - 1, activation="softmax", name="tumour_type", dtype="float32")(x)
    probabilities = CallFromMap(normal, name=PROBABILITIES, dtype="float32")([tumour, types])
    return keras.Model(inputs, {PROBABILITIES: probabilities, TUMOUR_MAP: tumour_map}, name="brain_cnn_tumour_maps")


def tumour_map_loss(y_true, y_pred):
    """Per image: binary cross-entropy plus soft Dice loss (1 - Dice, smoothed by 1 pixel).

    An empty truth gives a Dice loss that falls as the map empties, so
    no-tumour images teach the map to stay dark. Images without a known mask
    carry a sample weight of 0.
    """
    from keras import ops

    y_pred = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    bce = -ops.mean(y_true * ops.log(y_pred) + (1 - y_true) * ops.log(1 - y_pred), axis=(1, 2, 3))
    overlap = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    dice = (2 * overlap + 1) / (ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3)) + 1)
    return bce + (1 - dice)


def call_targets(targets, presence):
    """The call's training targets (N, K+1): the class targets (N, K) and, last, the weight of whether-a-tumour.

    ``presence`` (N,) is 1 where the call should teach the map whether there
    is a tumour (through its peak), 0 where the mask already says so
    (:func:`call_loss`).
    """
    import numpy as np

    return np.concatenate([np.asarray(targets, np.float32), np.asarray(presence, np.float32)[:, None]], axis=1)


def call_loss(y_true, y_pred, normal: int = NORMAL):
    """Cross-entropy of the call, split into whether there is a tumour and which type; y_true from :func:`call_targets`.

    With P(no tumour) = 1 - peak and P(type) = peak x P(type | tumour)
    (:class:`~brain_cnn.model.layers.CallFromMap`), -log P(class) is exactly
    the binary cross-entropy of the peak plus the cross-entropy of the type.
    The first term is weighted by the last column of ``y_true``: on a tumour
    with an expert mask the map's pixels already say where it is, and the
    call's push to raise the peak would teach the map to fire on whatever else
    marks a tumour slice of that source (the removal test's failure); training
    gives it weight 0 there (:data:`brain_cnn.training.tumour_maps.PRESENCE`).
    With weight 1 everywhere it is the plain categorical cross-entropy, as in
    validation.
    """
    from keras import ops

    eps = 1e-7
    targets, presence = y_true[:, :-1], y_true[:, -1]
    normal_true = targets[:, normal]
    tumour = ops.clip(1.0 - y_pred[:, normal], eps, 1.0)  # the map's smoothed peak
    whether = -(normal_true * ops.log(ops.clip(y_pred[:, normal], eps, 1.0)) + (1 - normal_true) * ops.log(tumour))
    # P(type | tumour) = P(type) / peak; its log loses the peak (and its gradient) exactly.
    types = ops.clip(ops.concatenate([y_pred[:, :normal], y_pred[:, normal + 1:]], axis=1), eps, 1.0)
    type_true = ops.concatenate([targets[:, :normal], targets[:, normal + 1:]], axis=1)
    which = -ops.sum(type_true * (ops.log(types) - ops.log(tumour)[:, None]), axis=1)
    return presence * whether + which


def call_accuracy(y_true, y_pred):
    """Accuracy of the call against :func:`call_targets`' class columns."""
    from keras import ops

    return ops.cast(ops.equal(ops.argmax(y_true[:, :-1], axis=1), ops.argmax(y_pred, axis=1)), "float32")


def with_type_from(model, type_from: str, image_size: int, width: int):
    """``model`` (a network of :func:`build_segmenter`) rebuilt with its type head seeing ``type_from``, every
    weight carried over; the type head keeps the rows for the region (the slice's rows, where the new head has
    them and the old one had none, start at zero).

    Lets a run go on from a shipped network with the other head (``--type-from`` of the training).
    """
    rebuilt = build_segmenter(len(CLASSES), image_size, width, type_from=type_from)
    old = {layer.name: layer for layer in model.layers}
    for layer in rebuilt.layers:
        source = old.get(layer.name)
        if source is None or not layer.weights:
            continue
        weights = source.get_weights()
        if layer.name == "tumour_type" and weights[0].shape != layer.get_weights()[0].shape:
            kernel = np.zeros_like(layer.get_weights()[0])
            rows = min(len(kernel), len(weights[0]))
            kernel[-rows:] = weights[0][-rows:]  # the region's rows come last (the concatenation)
            weights = [kernel, weights[1]]
        layer.set_weights(weights)
    return rebuilt


"""The convolutional network.

A plain VGG-style CNN sized for a 2-core CPU: a strided 5x5 stem halves the
resolution once (most of the cost of a CNN sits at full resolution), then
``depth`` stages of two 3x3 convolutions with batch normalisation, each
followed by max pooling and doubling the width; global average pooling,
dropout and a softmax head. At 160 px, width 32 and depth 4 it has 1.2 M
parameters (under 5 MB on disk).

Two heads (``pooling``):

* ``"average"``: global average pooling, then a dense softmax layer. Every
  place in the slice adds to every class score, so the network can decide
  from the anatomy around a tumour as much as from the tumour itself.
* ``"max"``: a 1x1 convolution scores every place of the last block for every
  class (class maps) and each class keeps its highest place (Oquab et al.,
  2015, "Is object localization for free?"; Durand et al., 2017, WILDCAT).
  A slice is called a tumour type because some place looks like it, which is
  how a tumour is defined.

With the same weights the two heads differ only in the pooling (the dense
layer is a 1x1 convolution applied after averaging), so a model trained with
one can be fine-tuned with the other.
"""

from __future__ import annotations

__all__ = ["build_model", "LAST_CONV_LAYER", "CLASS_MAPS_LAYER", "POOLINGS"]

# Grad-CAM explains the output of this layer (the last convolution block).
LAST_CONV_LAYER = "last_conv"
# The per-place class scores of the "max" head.
CLASS_MAPS_LAYER = "class_maps"
POOLINGS = ("average", "max")


def _conv_bn_relu(x, filters: int, name: str, kernel: int = 3, strides: int = 1, dilation: int = 1):
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=strides, dilation_rate=dilation, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    # Momentum 0.9 (Keras default 0.99): with ~160 steps an epoch the running
    # statistics otherwise lag the weights, and validation scores swing.
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=name)(x)


def build_model(
    num_classes: int,
    image_size: int = 160,
    channels: int = 1,
    width: int = 32,
    depth: int = 4,
    dropout: float = 0.3,
    pooling: str = "average",
    dilate_last_stage: bool = False,
    brain_only: bool = False,
    standardise: bool = False,
):
    """Build the (uncompiled) classifier.

    Args:
        num_classes: size of the softmax output.
        image_size: side of the square input, in pixels.
        channels: 1 for greyscale input.
        width: filters of the first stage; each later stage doubles it.
        depth: number of stages.
        dropout: rate before the softmax head.
        pooling: ``"average"`` (global average pooling and a dense head) or
            ``"max"`` (class maps, each class pooled at its highest place).
        dilate_last_stage: no pooling before the last stage, whose convolutions
            are dilated by 2 instead (Chen et al., 2017, DeepLab): the same
            weights and field of view on a map twice as fine (10x10 becomes
            20x20 at 160 px), for heat maps that can point at small tumours;
            about 1.7 times the computation.
        brain_only: black out the skull, the scalp and the background first
            (:class:`brain_cnn.model.layers.BrainOnly`), so the network can only
            use the brain.
        standardise: give every slice's head one mean and spread of grey levels
            first (:class:`brain_cnn.model.layers.StandardiseHead`), so the network
            cannot use a source's overall brightness and contrast.

    Returns:
        A ``keras.Model`` taking ``uint8``-range float input (0..255).

    Example:
        >>> build_model(4, image_size=64, width=8, depth=2).output_shape
        (None, 4)
    """
    import keras
    from keras import layers

    if depth < 1 or width < 1 or image_size < 2 ** (depth + 1):
        raise ValueError(f"image size {image_size} is too small for depth {depth}")
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    if standardise:
        from brain_cnn.model.layers import StandardiseHead

        x = StandardiseHead(name="standardise")(x)
    if brain_only:
        from brain_cnn.model.layers import BrainOnly

        x = BrainOnly(name="brain_only")(x)
    x = _conv_bn_relu(x, width, "stem", kernel=5, strides=2)
    filters = width
    for stage in range(depth):
        last = stage == depth - 1
        dilation = 2 if last and dilate_last_stage else 1
        x = _conv_bn_relu(x, filters, f"stage{stage}_a", dilation=dilation)
        x = _conv_bn_relu(x, filters, LAST_CONV_LAYER if last else f"stage{stage}_b", dilation=dilation)
        if not last:
            if not (dilate_last_stage and stage == depth - 2):
                x = layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
            filters *= 2
    if pooling == "max":
        x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Conv2D(num_classes, 1, name=CLASS_MAPS_LAYER)(x)
        x = layers.GlobalMaxPooling2D(name="class_pool")(x)
        outputs = layers.Activation("softmax", name="probabilities", dtype="float32")(x)
        return keras.Model(inputs, outputs, name="brain_cnn")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="brain_cnn")

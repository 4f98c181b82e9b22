"""A network's pooled features: what the out-of-distribution gate and a combined model's look rule read.

The globally averaged outputs of a few depths (:data:`~brain_cnn.model.ood.FEATURE_LAYERS`), concatenated:
early layers see texture and contrast, the last one content.
"""

from __future__ import annotations

from brain_cnn.model.network import LAST_CONV_LAYER
from brain_cnn.model.ood import FEATURE_LAYERS
from brain_cnn.model.tumour_maps import class_output

__all__ = ["pooled_features"]


def pooled_features(model):
    """The pooled-features tensor of a single network (classifier or tumour-map network), on its own graph; its
    class probabilities where it has none of the feature layers."""
    from keras import layers

    names = {layer.name for layer in model.layers}

    def fresh(name: str) -> str:
        # Keras's automatic names ("global_average_pooling2d") can be the loaded model's own: one name twice
        # and the graph cannot be built.
        while name in names:
            name += "_"
        names.add(name)
        return name

    def pool(name):
        if name not in names:  # the "max" head pools no features: the last block, averaged, is the same thing
            return layers.GlobalAveragePooling2D(name=fresh("gate_pool_last"))(model.get_layer(LAST_CONV_LAYER).output)
        output = model.get_layer(name).output
        return output if name == FEATURE_LAYERS[-1] else layers.GlobalAveragePooling2D(name=fresh(f"gate_pool_{name}"))(output)

    wanted = [n for n in FEATURE_LAYERS if n in names or (n == FEATURE_LAYERS[-1] and LAST_CONV_LAYER in names)]
    pooled = [pool(name) for name in wanted]
    if not pooled:
        return class_output(model)
    return layers.Concatenate(name=fresh("gate_features"))(pooled) if len(pooled) > 1 else pooled[0]

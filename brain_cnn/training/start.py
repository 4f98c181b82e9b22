"""Starting a run from another model's weights: fine-tuning, transfer learning, a shallower network."""

from __future__ import annotations

from brain_cnn.errors import DatasetError
from brain_cnn.model.network import CLASS_MAPS_LAYER, LAST_CONV_LAYER

__all__ = ["start_from", "truncates"]


def _head_weights(initial, name: str) -> list:
    """``initial``'s weights for head layer ``name``, carried across the two heads of :mod:`brain_cnn.model.network`
    (the dense layer is the 1x1 class-map convolution with its kernel flattened)."""
    names = {layer.name for layer in initial.layers}
    if name == CLASS_MAPS_LAYER and CLASS_MAPS_LAYER not in names:
        kernel, bias = initial.get_layer("probabilities").get_weights()
        return [kernel[None, None], bias]
    if name == "probabilities" and CLASS_MAPS_LAYER in names:
        kernel, bias = initial.get_layer(CLASS_MAPS_LAYER).get_weights()
        return [kernel[0, 0], bias]
    return initial.get_layer(name).get_weights()


def truncates(initial, depth: int) -> bool:
    """Whether a ``depth``-stage network starts from the first stages of the deeper ``initial``."""
    return any(layer.name == f"stage{depth - 1}_b_conv" for layer in initial.layers)


def start_from(model, initial, same_classes: bool) -> None:
    """Copy ``initial``'s weights into ``model``: all of them for the same classes (fine-tuning),
    else every layer but the softmax head (transfer learning, e.g. to a small binary set).

    A shallower network takes the first ``depth`` stages of a deeper one (its last block is that
    network's ``stage{depth-1}_b``) and a new head, which reads other features. Fewer stages see a
    smaller part of the slice at each place of the last block (67 px instead of 139 px at depth 3),
    so with the max head a class must be found in one region of the slice.
    """
    depth = sum(layer.name.startswith("stage") and layer.name.endswith("_a_conv") for layer in model.layers)
    truncated = truncates(initial, depth)
    for layer in model.layers:
        head = layer.name in ("probabilities", CLASS_MAPS_LAYER)
        if not layer.weights or (head and (truncated or not same_classes)):
            continue
        source = layer.name
        if truncated and source.startswith(LAST_CONV_LAYER):
            source = f"stage{depth - 1}_b" + source[len(LAST_CONV_LAYER):]
        try:
            layer.set_weights(_head_weights(initial, source))
        except ValueError as error:  # a missing layer or another shape: not the same architecture
            raise DatasetError(f"the model to start from does not have this run's architecture "
                               f"(layer {layer.name}: {error}); give the same --width and --depth, "
                               f"or a smaller --depth to start from its first stages") from None

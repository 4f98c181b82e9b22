"""The combined model: classifiers and a tumour-map network deciding together, as one graph.

The 4-class classifiers type tumours best in the look of their training
source, and call most tumours of other scanners and sequences "no tumour";
the tumour-map network (:mod:`brain_cnn.model.tumour_maps`) finds far more
of those, and outlines them. A combined folder holds no weights of its own:
its card names the member folders (as an ensemble's does,
:mod:`brain_cnn.model.ensemble`) and the rule that joins them, fitted on
validation images no member trained on (:mod:`brain_cnn.training.combined`):

* **whether there is a tumour**: a logistic fit on the two networks' tumour
  log-odds, ``sigmoid(a * logit(t_classifiers) + b * logit(t_map) + c)``
  (two weights and an intercept: few enough to fit on a few thousand
  validation slices; Platt-style, so the result is a calibrated probability);
* **which type**: a weighted geometric mean of the two networks' type
  probabilities, ``softmax(d * log p_classifiers + e * log p_map)`` over the
  tumour classes, fitted on the validation tumours (the classifiers type the
  look of their training source best, the map network the others; ``e = 0``
  is the classifiers' alone);
* **where**: the tumour map, from the map network.

One graph (:class:`~brain_cnn.model.layers.CombinedCall`): the input at the
classifiers' size; the map network sees it shrunk to its own size by area
averaging (:class:`~brain_cnn.model.layers.AreaResize`), as the
preprocessing would have shrunk the head crop. The outputs are a tumour-map
network's: ``{"probabilities", "tumour_map"}``, so the Predictor, the
engines, the outline, the evaluation and the app take it as they take the
map network, with the combined call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brain_cnn.errors import ModelFolderError

__all__ = ["MAP_MEMBER", "EPS", "combined_network", "is_combined", "map_member",
           "classifier_members", "combined_features_model", "presence_inputs", "combine", "type_probabilities",
           "check_rule"]

MAP_MEMBER = "tumour_maps"  # the map network's name inside the combined graph
EPS = 1e-4  # tumour probabilities are clipped to [EPS, 1 - EPS] before their log-odds (as in CombinedCall)
NAME = "combined"


def check_rule(rule: Any, where: str = "the card") -> dict[str, Any]:
    """``rule`` if it is a usable combination rule (the card's ``training["combination"]``).

    Raises:
        ModelFolderError: a rule without its two weights, intercept or type source.
    """
    try:
        weights = [float(w) for w in list(rule["weights"]) + list(rule["type_weights"])]
        ok = len(weights) == 4 and np.isfinite(weights + [float(rule["intercept"])]).all()
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelFolderError(f"{where}: the combination rule must give two weights and an intercept for whether "
                               f"there is a tumour and two type weights, not {rule!r}")
    return rule


def _map_on_input(tumour_maps, shape: tuple):
    """The map network rebuilt on an input of ``shape`` (shrunk to its own input size first), its layers flat
    and named as before, so the gate's and the explanations' layers are found by name."""
    import keras

    from brain_cnn.model.layers import AreaResize

    image = keras.Input(shape=shape, name="image")
    side = int(tumour_maps.input_shape[1])
    small = AreaResize(side, name="map_input")(image) if int(image.shape[1]) != side else image
    # Fresh copies of the network's layers, applied in its order on the shrunk input: a flat graph (a nested
    # model would hide its layers from get_layer) whose layers' first use, the one `layer.output` names, is here.
    fresh = {layer.name: layer.__class__.from_config(layer.get_config()) for layer in tumour_maps.layers}
    outputs = tumour_maps._run_through_graph(small, operation_fn=lambda layer: fresh[layer.name])
    member = keras.Model(image, outputs, name=MAP_MEMBER)
    for layer in tumour_maps.layers:
        if layer.weights:
            fresh[layer.name].set_weights(layer.get_weights())
    return member


def combined_network(classifiers: list, tumour_maps, rule: dict[str, Any], normal: int) -> Any:
    """One Keras model: ``{"probabilities": the combined call (B, K), "tumour_map": the map (B, s, s, 1)}``."""
    import keras
    from keras import layers

    from brain_cnn.model.layers import CombinedCall
    from brain_cnn.model.tumour_maps import PROBABILITIES, TUMOUR_MAP

    check_rule(rule)
    image = keras.Input(shape=tuple(classifiers[0].input_shape[1:]), name="image")
    outputs = [keras.Model(m.input, m.output, name=f"member{i}")(image) for i, m in enumerate(classifiers)]
    classified = layers.Average(name="classifiers")(outputs) if len(outputs) > 1 else outputs[0]
    found = _map_on_input(tumour_maps, tuple(image.shape[1:]))(image)
    call = CombinedCall(normal, rule["weights"], rule["intercept"], rule["type_weights"], name=PROBABILITIES,
                        dtype="float32")
    return keras.Model(image, {PROBABILITIES: call([classified, found[PROBABILITIES]]),
                               TUMOUR_MAP: found[TUMOUR_MAP]}, name=NAME)


def is_combined(model) -> bool:
    return getattr(model, "name", None) == NAME


def map_member(model):
    """The map network inside a combined model (on the combined model's input)."""
    return model.get_layer(MAP_MEMBER)


def classifier_members(model) -> list:
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name != MAP_MEMBER]


def combined_features_model(model, features_model):
    """The engines' model for a combined network: the gate's features (the map network's, then the first
    classifier's: :func:`brain_cnn.model.engines.gate_split`), the combined probabilities, the map (``features_model`` builds a member's)."""
    import keras
    from keras import layers

    from brain_cnn.model.tumour_maps import PROBABILITIES

    image = keras.Input(shape=tuple(model.input_shape[1:]), name="image")
    features, found, tumour_map = features_model(map_member(model))(image)
    members = classifier_members(model)
    first_features, first = features_model(members[0])(image)
    outputs = [first] + [member(image) for member in members[1:]]
    classified = layers.Average()(outputs) if len(outputs) > 1 else outputs[0]
    # The map network's features alone cannot tell some grey photographs from a slice (it never saw one in
    # training); the classifier's can. The gate has a part for each (brain_cnn.model.ood.Gate).
    both = layers.Concatenate()([features, first_features])
    return keras.Model(image, [both, model.get_layer(PROBABILITIES)([classified, found]), tumour_map])


def presence_inputs(classifiers: np.ndarray, tumour_maps: np.ndarray, normal: int) -> np.ndarray:
    """(N, 2): the two networks' tumour log-odds, from their probabilities (N, K) (what the rule weighs)."""
    tumour = np.clip(1.0 - np.stack([classifiers[:, normal], tumour_maps[:, normal]], axis=1), EPS, 1 - EPS)
    return np.log(tumour) - np.log1p(-tumour)


def combine(classifiers: np.ndarray, tumour_maps: np.ndarray, rule: dict[str, Any], normal: int) -> np.ndarray:
    """The combined probabilities (N, K) from the members' (N, K), as :class:`CombinedCall` computes them."""
    check_rule(rule)
    score = presence_inputs(classifiers, tumour_maps, normal) @ np.asarray(rule["weights"], float) + rule["intercept"]
    tumour = 1.0 / (1.0 + np.exp(-score))
    return np.insert(tumour[:, None] * type_probabilities(classifiers, tumour_maps, rule["type_weights"], normal),
                     normal, 1.0 - tumour, axis=1)


def type_probabilities(classifiers: np.ndarray, tumour_maps: np.ndarray, type_weights, normal: int) -> np.ndarray:
    """(N, K-1): the tumour type's probabilities, ``softmax(d * log p_classifiers + e * log p_map)``."""
    def log_types(probabilities):
        return np.log(np.clip(np.delete(probabilities, normal, axis=1), 1e-12, 1.0))

    score = type_weights[0] * log_types(classifiers) + type_weights[1] * log_types(tumour_maps)
    score -= score.max(axis=1, keepdims=True)
    return np.exp(score) / np.exp(score).sum(axis=1, keepdims=True)

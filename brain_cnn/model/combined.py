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

A rule may depend on the slice's look (feature-weighted stacking, Sill et
al. 2009): a logistic ``look`` over the first classifier's pooled features
(:mod:`brain_cnn.model.features`) gives how much a slice looks like the
classifiers' training source, ``g``, and the five numbers above are
``(1 - g) * others + g * familiar``: the classifiers can decide where they
know the look and the map network elsewhere.

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
from brain_cnn.model.features import pooled_features

__all__ = ["MAP_MEMBER", "EPS", "combined_network", "is_combined", "map_member",
           "classifier_members", "combined_features_model", "presence_inputs", "combine", "type_probabilities",
           "check_rule", "familiarity", "blended", "LOOK_FEATURES"]

MAP_MEMBER = "tumour_maps"  # the map network's name inside the combined graph
LOOK_FEATURES = "look_features"  # the first classifier's pooled features, for a look-dependent rule
EPS = 1e-4  # tumour probabilities are clipped to [EPS, 1 - EPS] before their log-odds (as in CombinedCall)
NAME = "combined"


def check_rule(rule: Any, where: str = "the card", look: bool = True) -> dict[str, Any]:
    """``rule`` if it is a usable combination rule (the card's ``training["combination"]``); ``look=False``: its
    familiar numbers may come without their look (the familiarities given instead).

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
    if "look" in rule or "familiar" in rule:
        try:
            check_rule(rule["familiar"], where)
            numbers = [float(w) for w in list(rule["look"]["weights"]) + [float(rule["look"]["intercept"])]] \
                if look or "look" in rule else [0.0, 0.0]
            ok = len(numbers) > 1 and np.isfinite(numbers).all()
        except (KeyError, TypeError, ValueError, ModelFolderError):
            ok = False
        if not ok:
            raise ModelFolderError(f"{where}: a look-dependent combination rule needs its familiar numbers and a "
                                   f"look (weights and an intercept)")
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
    wrapped = [keras.Model(m.input, m.output, name=f"member{i}") for i, m in enumerate(classifiers)]
    look = rule.get("look")
    if look:  # the first classifier also gives its pooled features, for the look (one pass, not two)
        first = classifiers[0]
        wrapped[0] = keras.Model(first.input, {PROBABILITIES: first.output, LOOK_FEATURES: pooled_features(first)},
                                 name="member0")
        if int(wrapped[0].output[LOOK_FEATURES].shape[-1]) != len(look["weights"]):
            raise ModelFolderError(f"the rule's look weighs {len(look['weights'])} features; the first classifier "
                                   f"gives {int(wrapped[0].output[LOOK_FEATURES].shape[-1])}")
    outputs = [member(image) for member in wrapped]
    probabilities = [out[PROBABILITIES] if isinstance(out, dict) else out for out in outputs]
    classified = layers.Average(name="classifiers")(probabilities) if len(outputs) > 1 else probabilities[0]
    found = _map_on_input(tumour_maps, tuple(image.shape[1:]))(image)
    call = CombinedCall(normal, rule["weights"], rule["intercept"], rule["type_weights"], rule.get("familiar"), look,
                        name=PROBABILITIES, dtype="float32")
    inputs = [classified, found[PROBABILITIES]] + ([outputs[0][LOOK_FEATURES]] if look else [])
    return keras.Model(image, {PROBABILITIES: call(inputs), TUMOUR_MAP: found[TUMOUR_MAP]}, name=NAME)


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
    call = model.get_layer(PROBABILITIES)
    # A look-dependent rule reads the same pooled features of the first classifier as its part of the gate.
    inputs = [classified, found] + ([first_features] if call.look is not None else [])
    return keras.Model(image, [both, call(inputs), tumour_map])


def presence_inputs(classifiers: np.ndarray, tumour_maps: np.ndarray, normal: int) -> np.ndarray:
    """(N, 2): the two networks' tumour log-odds, from their probabilities (N, K) (what the rule weighs)."""
    tumour = np.clip(1.0 - np.stack([classifiers[:, normal], tumour_maps[:, normal]], axis=1), EPS, 1 - EPS)
    return np.log(tumour) - np.log1p(-tumour)


def familiarity(features: np.ndarray, look: dict[str, Any]) -> np.ndarray:
    """(N,): how much each slice looks like the classifiers' training source, from the first classifier's pooled
    features (N, D), as :class:`CombinedCall` computes it."""
    score = np.asarray(features, float) @ np.asarray(look["weights"], float) + float(look["intercept"])
    return 1.0 / (1.0 + np.exp(-score))


def blended(rule: dict[str, Any], g: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rule's presence weights (N, 2) or (2,), intercept and type weights at familiarity ``g`` (None: a rule
    without a look)."""
    own = (np.asarray(rule["weights"], float), np.asarray(float(rule["intercept"])),
           np.asarray(rule["type_weights"], float))
    if g is None or not rule.get("familiar"):
        return own
    familiar = rule["familiar"]
    g = np.asarray(g, float)[:, None]
    other = (np.asarray(familiar["weights"], float), np.asarray([float(familiar["intercept"])]),
             np.asarray(familiar["type_weights"], float))
    weights, intercept, types = ((1 - g) * o + g * f for o, f in zip(own, other))
    return weights, intercept[:, 0], types


def combine(classifiers: np.ndarray, tumour_maps: np.ndarray, rule: dict[str, Any], normal: int,
            features: np.ndarray | None = None, g: np.ndarray | None = None) -> np.ndarray:
    """The combined probabilities (N, K) from the members' (N, K), as :class:`CombinedCall` computes them. A
    look-dependent rule also needs the first classifier's pooled features (N, D), or the familiarities ``g`` (N,)
    themselves."""
    check_rule(rule, look=g is None)
    if rule.get("familiar") and g is None:
        if features is None:
            raise ValueError("a look-dependent rule needs the first classifier's pooled features")
        g = familiarity(features, rule["look"])
    weights, intercept, type_weights = blended(rule, g)
    score = (presence_inputs(classifiers, tumour_maps, normal) * weights).sum(axis=1) + intercept
    tumour = 1.0 / (1.0 + np.exp(-score))
    return np.insert(tumour[:, None] * type_probabilities(classifiers, tumour_maps, type_weights, normal),
                     normal, 1.0 - tumour, axis=1)


def type_probabilities(classifiers: np.ndarray, tumour_maps: np.ndarray, type_weights, normal: int) -> np.ndarray:
    """(N, K-1): the tumour type's probabilities, ``softmax(d * log p_classifiers + e * log p_map)`` (type weights
    (2,), or (N, 2): one pair per slice)."""
    def log_types(probabilities):
        return np.log(np.clip(np.delete(probabilities, normal, axis=1), 1e-12, 1.0))

    type_weights = np.asarray(type_weights, float)
    if type_weights.ndim == 2:
        d, e = type_weights[:, :1], type_weights[:, 1:]
    else:
        d, e = type_weights[0], type_weights[1]
    score = d * log_types(classifiers) + e * log_types(tumour_maps)
    score -= score.max(axis=1, keepdims=True)
    return np.exp(score) / np.exp(score).sum(axis=1, keepdims=True)

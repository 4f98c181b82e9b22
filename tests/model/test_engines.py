import numpy as np
import pytest

from brain_cnn.model.engines import ENGINE_ENV, engine_name, forward


def test_a_cpu_uses_onnxruntime_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    assert engine_name() == "onnxruntime"
    monkeypatch.setenv(ENGINE_ENV, "tensorflow")
    assert engine_name() == "tensorflow"
    monkeypatch.setenv(ENGINE_ENV, "nonsense")  # an unknown name is ignored
    assert engine_name() == "onnxruntime"


def test_each_engine_is_built_once_per_model(tiny_model):
    from brain_cnn.model.folder import load_model

    model = load_model(tiny_model).model
    run = forward(model, "onnxruntime")
    assert forward(model, "onnxruntime") is run
    features, probs = run(np.zeros((2, 48, 48, 1), np.float32))
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5) and len(features) == 2


def test_a_failed_conversion_falls_back_to_tensorflow(tiny_model, monkeypatch):
    import brain_cnn.model.engines as engines
    from brain_cnn.model.folder import load_model

    def broken(*args):
        raise RuntimeError("no converter")

    monkeypatch.setattr(engines, "_onnxruntime", broken)
    model = load_model(tiny_model).model
    with pytest.warns(UserWarning, match="no converter"):
        run = forward(model, "onnxruntime")
    assert run(np.zeros((1, 48, 48, 1), np.float32))[1].shape == (1, 2)


def test_half_precision_copy_computes_the_same_calls(tiny_model):
    from brain_cnn.model.engines import mixed_precision_copy
    from brain_cnn.model.folder import load_model

    from conftest import phantom

    model = load_model(tiny_model).model
    images = np.stack([phantom(48, lesion=i % 2 == 1, seed=i)[..., None] for i in range(6)]).astype(np.float32)
    # bfloat16 runs on a CPU; on a GPU the engine uses float16 the same way.
    half = mixed_precision_copy(model, "mixed_bfloat16")
    assert half.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert half.get_layer("probabilities").compute_dtype == "float32"
    full, low = np.asarray(model(images)), np.asarray(half(images))
    assert np.abs(full - low).max() < 0.05


def test_a_card_allows_half_precision_only_for_a_model_trained_in_it():
    from brain_cnn.model.card import ModelCard

    card = ModelCard(name="m", classes=["a", "b"], image_size=48)
    assert not card.mixed_precision
    card.training = {"distribution": {"precision": "mixed_float16"}}
    assert card.mixed_precision


@pytest.mark.parametrize("engine", ["onnxruntime", "tensorflow"])
def test_the_max_head_gives_the_gate_the_same_features_as_the_average_head(engine):
    from brain_cnn.model.network import build_model
    from brain_cnn.training.start import start_from

    from conftest import phantom

    average = build_model(2, image_size=48, width=4, depth=2)
    peak = build_model(2, image_size=48, width=4, depth=2, pooling="max")
    start_from(peak, average, same_classes=True)
    images = np.stack([phantom(48, lesion=i % 2 == 1, seed=i)[..., None] for i in range(3)]).astype(np.float32)
    (features_a, _), (features_m, probs_m) = forward(average, engine)(images), forward(peak, engine)(images)
    assert features_m.shape == features_a.shape and np.allclose(features_m, features_a, atol=1e-4)
    assert np.allclose(probs_m, np.asarray(peak(images)), atol=1e-4)


def test_a_model_with_keras_default_layer_names_gets_its_gate_features():
    import keras
    from keras import layers

    from brain_cnn.model.engines import features_model

    # A model built elsewhere, its pooling left with Keras's automatic name: the gate's own pooling must not
    # take the same name ("name used 2 times").
    inputs = keras.Input((32, 32, 1))
    x = layers.Conv2D(4, 3, name="stage1_b")(inputs)
    x = layers.Conv2D(4, 3, name="last_conv")(x)
    pooled = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    foreign = keras.Model(inputs, layers.Dense(2, activation="softmax", name="gate_pool_stage1_b")(pooled))
    features, probabilities = features_model(foreign)(np.zeros((1, 32, 32, 1), np.float32))
    assert features.shape == (1, 8) and probabilities.shape == (1, 2)

import numpy as np
import pytest

from brain_cnn.engines import ENGINE_ENV, engine_name, forward


def test_a_cpu_uses_onnxruntime_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    assert engine_name() == "onnxruntime"
    monkeypatch.setenv(ENGINE_ENV, "tensorflow")
    assert engine_name() == "tensorflow"
    monkeypatch.setenv(ENGINE_ENV, "nonsense")  # an unknown name is ignored
    assert engine_name() == "onnxruntime"


def test_each_engine_is_built_once_per_model(tiny_model):
    from brain_cnn.model_folder import load_model

    model = load_model(tiny_model).model
    run = forward(model, "onnxruntime")
    assert forward(model, "onnxruntime") is run
    features, probs = run(np.zeros((2, 48, 48, 1), np.float32))
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5) and len(features) == 2


def test_a_failed_conversion_falls_back_to_tensorflow(tiny_model, monkeypatch):
    import brain_cnn.engines as engines
    from brain_cnn.model_folder import load_model

    def broken(*args):
        raise RuntimeError("no converter")

    monkeypatch.setattr(engines, "_onnxruntime", broken)
    model = load_model(tiny_model).model
    with pytest.warns(UserWarning, match="no converter"):
        run = forward(model, "onnxruntime")
    assert run(np.zeros((1, 48, 48, 1), np.float32))[1].shape == (1, 2)

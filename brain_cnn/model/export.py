"""Export a model folder for deployment elsewhere: ONNX or TensorFlow SavedModel.

The exported graph takes the same input as the Keras model (N, S, S, 1)
float32 in 0..255, after :func:`brain_cnn.scan.preprocess.prepare`, and returns the
raw softmax probabilities; apply the card's temperature for calibrated ones.
Every export is checked against the Keras model on probe inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brain_cnn.errors import BrainCnnError
from brain_cnn.model.folder import load_model
from brain_cnn.model.tumour_maps import PROBABILITIES, TUMOUR_MAP

__all__ = ["FORMATS", "export_model"]

FORMATS = ("onnx", "saved_model")


def _probe_inputs(size: int, count: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    r = ((yy - size / 2) / (0.4 * size)) ** 2 + ((xx - size / 2) / (0.33 * size)) ** 2
    head = np.where(r <= 1, 100.0, 0.0)
    return np.stack([np.clip(head + rng.normal(0, 25, head.shape), 0, 255) for _ in range(count)])[..., None].astype(
        np.float32)


def _named(outputs, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """A network's outputs by name: a tumour-map network's dict as it is, a classifier's one output as
    "probabilities"."""
    if isinstance(outputs, dict):
        return {name: np.asarray(value) for name, value in outputs.items()}
    if isinstance(outputs, (list, tuple)) and names and len(outputs) > 1:
        return {name: np.asarray(value) for name, value in zip(names, outputs)}
    return {PROBABILITIES: np.asarray(outputs[0] if isinstance(outputs, (list, tuple)) else outputs)}


def _run_onnx(path: Path, inputs: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return _named(session.run(None, {session.get_inputs()[0].name: inputs}), [o.name for o in session.get_outputs()])


def _run_saved_model(path: Path, inputs: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    restored = tf.saved_model.load(str(path))  # keep a reference: serve() needs its variables alive
    return _named(restored.serve(tf.constant(inputs)))


def export_model(model_folder: str | Path, fmt: str, out: str | Path | None = None) -> dict:
    """Export and verify; returns what was written and the largest probability difference found.

    Raises:
        ModelFolderError: the folder is unusable.
        BrainCnnError: unknown format, or the exported model disagrees with the Keras one.
    """
    if fmt not in FORMATS:
        raise BrainCnnError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    loaded = load_model(model_folder)
    size = loaded.card.image_size
    out = Path(out) if out else loaded.folder / "export" / ("model.onnx" if fmt == "onnx" else "saved_model")
    out.parent.mkdir(parents=True, exist_ok=True)
    probe = _probe_inputs(size)
    expected = _named(loaded.model(probe, training=False))  # also builds the model, as export requires
    loaded.model.export(str(out), format="onnx" if fmt == "onnx" else "tf_saved_model", verbose=False)
    got = _run_onnx(out, probe) if fmt == "onnx" else _run_saved_model(out, probe)
    if set(got) != set(expected):
        raise BrainCnnError(f"the exported {fmt} model has outputs {sorted(got)}, not {sorted(expected)}")
    difference = max(float(np.abs(got[name] - expected[name]).max()) for name in expected)
    if difference > 1e-4:
        raise BrainCnnError(f"the exported {fmt} model disagrees with the Keras model (max difference {difference:.2g})")
    info = {"format": fmt, "path": str(out), "input": f"(N, {size}, {size}, 1) float32 in 0..255, head-cropped",
            "output": f"softmax probabilities over {loaded.card.classes}" + (
                f"; {TUMOUR_MAP!r}: the tumour probability map (N, {expected[TUMOUR_MAP].shape[1]}, "
                f"{expected[TUMOUR_MAP].shape[2]}, 1) over the input" if TUMOUR_MAP in expected else ""),
            "temperature": loaded.card.temperature, "max_abs_difference": difference,
            "source_sha256": loaded.card.sha256}
    Path(str(out) + ".json").write_text(json.dumps(info, indent=2))
    return info

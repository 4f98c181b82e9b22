import json
import shutil

import pytest

from brain_cnn.cli import main
from brain_cnn.errors import BrainCnnError
from brain_cnn.model.export import export_model

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fmt", ["onnx", "saved_model"])
def test_export_gives_the_same_probabilities(tiny_model, tmp_path, fmt):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    info = export_model(folder, fmt)
    assert info["max_abs_difference"] < 1e-4
    assert json.loads(open(info["path"] + ".json").read())["format"] == fmt


def test_export_command_and_unknown_format(tiny_model, tmp_path, capsys):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    assert main(["export", "--model", str(folder), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 0
    assert "match the Keras model" in capsys.readouterr().out
    with pytest.raises(BrainCnnError, match="unknown export format"):
        export_model(folder, "tflite")


@pytest.mark.parametrize("fmt", ["onnx", "saved_model"])
def test_a_map_model_exports_both_outputs(tiny_map_model, tmp_path, fmt):
    folder = tmp_path / "m"
    shutil.copytree(tiny_map_model, folder)
    info = export_model(folder, fmt)
    assert info["max_abs_difference"] < 1e-4 and "tumour_map" in info["output"]

"""The distributed training path, on a CPU split into two logical devices."""

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import PROJECT

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path[:0] = [{project!r}, {tests!r}]
    from conftest import write_class_folder
    from brain_cnn.training.run import TrainConfig, train
    root = {root!r}
    write_class_folder(__import__("pathlib").Path(root) / "Training", {{"notumor": 40, "tumor": 40}}, size=64)
    write_class_folder(__import__("pathlib").Path(root) / "Testing", {{"notumor": 10, "tumor": 10}}, size=64, start_seed=900)
    results = {{}}
    for strategy in ("default", "mirrored"):
        out = train(TrainConfig(data=root, out=root + "-" + strategy, epochs=10, image_size=48, width=8, depth=2,
                                batch_size=8, learning_rate=3e-3, seed=3, augmentation=None, strategy=strategy))
        card = json.load(open(out / "card.json"))
        history = json.load(open(out / "history.json"))
        results[strategy] = {{"distribution": card["training"]["distribution"],
                              "loss": [e["loss"] for e in history["epochs"]],
                              "val_accuracy": [e["val_accuracy"] for e in history["epochs"]]}}
    print("RESULTS" + json.dumps(results))
""")


def test_mirrored_run_learns_as_a_single_device_run_does(tmp_path):
    script = SCRIPT.format(project=str(PROJECT), tests=str(PROJECT / "tests"), root=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=400,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    line = next((row for row in done.stdout.splitlines() if row.startswith("RESULTS")), None)
    assert line, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads(line[len("RESULTS"):])
    single, mirrored = results["default"], results["mirrored"]
    assert single["distribution"]["replicas"] == 1
    assert mirrored["distribution"] == {"strategy": "mirrored", "replicas": 2, "global_batch": 16,
                                        "peak_learning_rate": 0.006, "precision": "float32"}
    for run in (single, mirrored):  # both learn to tell lesion from no lesion (chance is 0.5)
        assert run["loss"][-1] < run["loss"][0] and run["val_accuracy"][-1] >= 0.9
    assert abs(mirrored["loss"][-1] - single["loss"][-1]) < 0.15

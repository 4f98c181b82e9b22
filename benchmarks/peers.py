"""Side by side, in one run and on the same images: our model and the VGG16 ONNX model of `detect-tumor`.

Each model runs through its own package's public API, from the image file to
class probabilities: ours through ``Predictor`` (decode, head crop, resize,
network, temperature, gate), theirs through ``detect_tumor.TumorDetector``
(decode, resize to 240x240, ONNX Runtime). Prints per-image latency (p50/p95
over ``--latency-images`` files, each run ``--repeats`` times after a warm-up),
throughput over the whole folder (ours in batches of 32, theirs one image at a
time as its API works) and accuracy on every image, with our/their ratios.

`detect-tumor` is installed only in the benchmark environment:

    make bench-env
    .venv-bench/bin/python benchmarks/peers.py --images ../shared/data/brain-tumor-mri/Testing

Accuracy for ours counts an image the gate refuses ("cannot assess") by its
top class, so both models answer every image; the refusals are printed too.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from machine import describe  # noqa: E402  (benchmarks/machine.py, beside this script)

import numpy as np


def labelled_images(root: Path) -> list[tuple[Path, str]]:
    from brain_cnn.data.dataset import discover

    found = discover(root)
    return [(found.root / s.path, s.label) for samples in found.splits.values() for s in samples]


def per_image_latency(predict, files: list[Path], repeats: int) -> list[float]:
    """Milliseconds per call from file bytes, median of ``repeats`` per file, over the files."""
    predict(files[0].read_bytes())  # warm up
    times = []
    for path in files:
        data = path.read_bytes()
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            predict(data)
            runs.append((time.perf_counter() - started) * 1000)
        times.append(statistics.median(runs))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/brain-tumor-mri")
    parser.add_argument("--images", required=True, help="folder-per-class test images (e.g. the official Testing)")
    parser.add_argument("--latency-images", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    try:
        import detect_tumor
        import onnxruntime
    except ImportError:
        sys.exit("detect-tumor is not installed here: run `make bench-env` and use .venv-bench/bin/python")
    import keras
    import tensorflow as tf

    from brain_cnn.inference.predictor import Predictor

    images = labelled_images(Path(args.images))
    rng = np.random.default_rng(0)
    sample = [images[i][0] for i in rng.choice(len(images), min(args.latency_images, len(images)), replace=False)]
    print(f"machine: {describe()}; python "
          f"{platform.python_version()}, tensorflow {tf.__version__}, keras {keras.__version__}, onnxruntime "
          f"{onnxruntime.__version__}, detect-tumor {importlib.metadata.version('detect-tumor')}")
    print(f"images: {len(images)} from {args.images}; latency over {len(sample)} of them x {args.repeats} runs")

    ours = Predictor(args.model)
    theirs = detect_tumor.TumorDetector()
    rows = {}
    for name, predict_one in (("brain-cnn", ours.predict_bytes), ("detect-tumor VGG16", theirs.predict)):
        latency = per_image_latency(predict_one, sample, args.repeats)
        started = time.perf_counter()
        if name == "brain-cnn":
            results = list(ours.predict_files([p for p, _ in images]))
            refused = sum(r.get("label") is None for r in results)
            predicted = [_our_label(ours, r) for r in results]
        else:
            predicted = [theirs.predict(p.read_bytes()).predicted_class for p, _ in images]
            refused = 0
        seconds = time.perf_counter() - started
        accuracy = float(np.mean([p == truth for p, (_, truth) in zip(predicted, images)]))
        rows[name] = {"p50": np.percentile(latency, 50), "p95": np.percentile(latency, 95),
                      "throughput": len(images) / seconds, "accuracy": accuracy, "refused": refused}
        r = rows[name]
        print(f"{name:<20} latency p50 {r['p50']:7.1f} ms  p95 {r['p95']:7.1f} ms  throughput "
              f"{r['throughput']:6.1f} images/s  accuracy {r['accuracy']:.2%} ({len(images)} images)"
              + (f"  gate refused {refused}" if name == "brain-cnn" else ""))
    a, b = rows["brain-cnn"], rows["detect-tumor VGG16"]
    print(f"ratio (ours vs theirs): {b['p50'] / a['p50']:.1f}x faster per image (p50), "
          f"{a['throughput'] / b['throughput']:.1f}x the throughput, accuracy "
          f"{(a['accuracy'] - b['accuracy']) * 100:+.1f} points")


def _our_label(predictor, result: dict) -> str:
    """Our call for accuracy: the label, or for a refused image the call (by the card's rule) of a second,
    gate-free look."""
    if result.get("label") or "error" in result:
        return result.get("label")
    from brain_cnn.inference.decision import decide
    from brain_cnn.scan.preprocess import load_scan

    probs = predictor.predict_inputs(load_scan(result["file"], predictor.image_size)[None])
    return predictor.classes[int(decide(probs, predictor.classes, predictor.card.decision)[0])]


if __name__ == "__main__":
    main()

"""Single-image latency and batch throughput of a model folder, from file bytes to probabilities
(for a tumour-map network: to the call, its map back on the slice, the outline and the area).

Prints the machine, the library versions and medians over repeated runs. Not a
test: figures depend on the machine and on what else it is doing.

    python benchmarks/latency.py [--model models/brain-tumor-mri-ensemble] [--images DIR] [--repeats 200]

Without --images it times synthetic phantom JPEGs of 512x512 (decode, head crop,
resize and the network all included).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from machine import describe  # noqa: E402  (benchmarks/machine.py, beside this script)

import numpy as np
from PIL import Image


def synthetic_jpegs(count: int, size: int = 512) -> list[bytes]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    files = []
    for _ in range(count):
        r = ((yy - size / 2) / (size * 0.4)) ** 2 + ((xx - size / 2) / (size * 0.33)) ** 2
        image = np.where(r <= 1, 90 + rng.normal(0, 20, (size, size)), 0)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
        files.append(buffer.getvalue())
    return files


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/brain-tumor-mri-ensemble", help="default: the bundled default")
    parser.add_argument("--images", help="folder of real images to time (default: synthetic JPEGs)")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    import tensorflow as tf

    from brain_cnn.data.dataset import list_images
    from brain_cnn.explain.explainer import Explainer, METHODS, OCCLUSION
    from brain_cnn.inference.assessment import assess
    from brain_cnn.inference.outline import outline
    from brain_cnn.inference.predictor import Predictor
    from brain_cnn.scan.preprocess import load_scan

    if args.images:
        files = [p.read_bytes() for p in list_images(Path(args.images))[:256]]
        source = f"{len(files)} files from {args.images}"
    else:
        files = synthetic_jpegs(64)
        source = "64 synthetic 512x512 JPEGs"
    predictor = Predictor(args.model)
    print(f"machine: {describe()}")
    print(f"python {platform.python_version()}, tensorflow {tf.__version__}, numpy {np.__version__}")
    print(f"model: {args.model} ({predictor.image_size} px, {predictor.model.count_params():,} parameters)")
    print(f"inputs: {source}")

    def answer(data: bytes) -> None:
        if not predictor.has_map:
            predictor.predict_bytes(data)
            return
        # What the app shows first for a tumour-map network: the call, the outline and the area.
        shown = assess(predictor, data, "upload.jpg").slices[0]
        outline(shown.map_on_display())
        shown.tumour_area  # noqa: B018 - computed for its cost

    for data in files[:10]:  # warm-up: graph tracing, allocator, caches
        answer(data)

    timings = []
    for i in range(args.repeats):
        started = time.perf_counter()
        answer(files[i % len(files)])
        timings.append((time.perf_counter() - started) * 1000)
    prep = []
    for i in range(args.repeats):
        started = time.perf_counter()
        load_scan(files[i % len(files)], predictor.image_size)
        prep.append((time.perf_counter() - started) * 1000)
    what = "the call, outline and area" if predictor.has_map else "probabilities"
    print(f"single image, bytes to {what}: p50 {percentile(timings, 50):.1f} ms, "
          f"p95 {percentile(timings, 95):.1f} ms  (of which decode+crop+resize p50 {percentile(prep, 50):.1f} ms)")

    inputs = np.stack([load_scan(files[i % len(files)], predictor.image_size) for i in range(128)])
    for batch in (1, 8, 32, 128):
        rates = []
        for _ in range(5):
            started = time.perf_counter()
            predictor.predict_inputs(inputs[:batch], batch_size=batch)
            rates.append(batch / (time.perf_counter() - started))
        print(f"throughput, batch {batch:3d} (prepared inputs): {statistics.median(rates):7.1f} images/s")

    explainer = Explainer(predictor.model)
    image = inputs[0]
    for method in METHODS:
        explainer.heatmap(image, 0, method)  # builds the method's graph
        times = []
        for _ in range(20 if method != OCCLUSION else 5):
            started = time.perf_counter()
            explainer.heatmap(image, 0, method)
            times.append((time.perf_counter() - started) * 1000)
        print(f"{method} heat map, one image: p50 {percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms")


if __name__ == "__main__":
    main()

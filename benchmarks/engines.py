"""The network alone on each inference engine: milliseconds per call at batch sizes 1, 2, 32 and 128.

Batch 2 is what one slice costs with flip averaging (the slice and its mirror
image in one batch). Also times the TensorFlow graph XLA-compiled, to show
whether XLA helps here. Prints the machine, the versions and medians.

    python benchmarks/engines.py --model models/brain-tumor-mri [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from machine import describe  # noqa: E402  (benchmarks/machine.py, beside this script)

import numpy as np


def median_ms(run, batch: np.ndarray, repeats: int) -> float:
    for _ in range(3):
        run(batch)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/brain-tumor-mri")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    import keras
    import onnxruntime
    import tensorflow as tf

    from brain_cnn.model.engines import features_model, forward
    from brain_cnn.model.folder import load_model

    model = load_model(args.model).model
    size = model.input_shape[1]
    both = features_model(model)
    xla = tf.function(lambda x: both(x, training=False), jit_compile=True)
    engines = {
        "onnxruntime": forward(model, "onnxruntime"),
        "tensorflow graph": forward(model, "tensorflow"),
        "tensorflow XLA": lambda x: tuple(t.numpy() for t in xla(x)),
    }
    print(f"machine: {describe()}, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}; tensorflow {tf.__version__}, keras {keras.__version__}, "
          f"onnxruntime {onnxruntime.__version__}; model {args.model} ({size} px)")
    rng = np.random.default_rng(0)
    for name, run in engines.items():
        cells = []
        for batch in (1, 2, 32, 128):
            inputs = rng.integers(0, 255, (batch, size, size, 1)).astype(np.float32)
            ms = median_ms(run, inputs, max(5, args.repeats // max(1, batch // 8)))
            cells.append(f"batch {batch}: {ms:6.1f} ms ({batch / ms * 1000:5.0f} img/s)")
        print(f"{name:<17} " + "  ".join(cells))


if __name__ == "__main__":
    main()

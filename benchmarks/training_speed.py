"""Training throughput: images per second through the real input pipeline and model.

    python benchmarks/training_speed.py [--image-size 160] [--steps 30]

Runs the training step (augmentation on) on synthetic uint8 images and prints
the median images/s over repeated runs, and the same without augmentation to
show what the input pipeline costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from machine import describe  # noqa: E402  (benchmarks/machine.py, beside this script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from brain_cnn.model.network import build_model
    from brain_cnn.data.pipeline import DecodedSplit, make_dataset

    n = args.batch_size * args.steps
    rng = np.random.default_rng(0)
    split = DecodedSplit(rng.integers(0, 255, (n, args.image_size, args.image_size, 1), dtype=np.uint8),
                         rng.integers(0, 4, n).astype(np.int32), [""] * n, [])
    print(f"machine: {describe()}, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}; tensorflow {tf.__version__}, keras {keras.__version__}")
    for augment in ("scanner", "standard", None):
        model = build_model(4, args.image_size)
        model.compile(keras.optimizers.AdamW(1e-3), "categorical_crossentropy")
        data = make_dataset(split, ["glioma", "meningioma", "notumor", "pituitary"], args.batch_size,
                            training=True, seed=0, augmentation=augment)
        model.fit(data.take(3), epochs=1, verbose=0)  # trace and warm up
        rates = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            model.fit(data, epochs=1, verbose=0)
            rates.append(n / (time.perf_counter() - started))
        print(f"training, {args.image_size} px, batch {args.batch_size}, augmentation {augment or 'off'}: "
              f"{statistics.median(rates):.0f} images/s (median of {args.repeats} x {n} images)")


if __name__ == "__main__":
    main()

"""Training throughput: images per second through the real input pipeline and model.

    python benchmarks/training_speed.py [--image-size 160] [--steps 30]
    python benchmarks/training_speed.py --tumour-maps [--steps 30]

Runs the training step (augmentation on) on synthetic uint8 images and prints
the median images/s over repeated runs, and the same without augmentation to
show what the input pipeline costs.

``--tumour-maps``: the tumour-map network (128 px, width 24) through its own
pipeline, one pass over the data weighted by cell (recipes 1-7) against
batches drawn by the balance (recipe 8, ``--steps-per-epoch``), and the
minutes an epoch of each takes at the measured rate: recipe 7's epoch was
26,844 images (LGG's slices once per sequence, the twins), recipe 8's is
250 batches of 32.
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
    parser.add_argument("--tumour-maps", action="store_true", help="the tumour-map network's two pipelines")
    args = parser.parse_args()
    if args.tumour_maps:
        tumour_maps(args)
        return

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


def tumour_maps(args) -> None:
    """Images/s and minutes per epoch of the tumour-map network, one weighted pass against drawn batches."""
    import keras
    import numpy as np
    import tensorflow as tf

    from brain_cnn.model.tumour_maps import CLASSES, build_segmenter
    from brain_cnn.training.tumour_maps import (DecodedPairs, _compile, draw_weights, epoch_draws,
                                                make_pair_dataset)

    size, n = 128, args.batch_size * args.steps
    rng = np.random.default_rng(0)
    masks = np.zeros((n, size, size, 1), np.uint8)
    masks[::2, 40:70, 50:80] = 255
    pairs = DecodedPairs(rng.integers(0, 255, (n, size, size, 1), dtype=np.uint8), masks,
                         rng.integers(0, len(CLASSES), n).astype(np.int32), np.ones(n, bool),
                         [f"s{i % 3}" for i in range(n)], [str(i) for i in range(n)], [])
    print(f"machine: {describe()}, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}; tensorflow {tf.__version__}, keras {keras.__version__}")
    draws = epoch_draws(draw_weights(pairs), args.steps, args.batch_size, 0, 0, args.repeats + 1)
    for name, data, epoch_images in (
            ("one pass, weighted (recipes 1-7)", make_pair_dataset(pairs, args.batch_size, True, 0), 26_844),
            ("drawn by the balance (recipe 8)", make_pair_dataset(pairs, args.batch_size, True, 0, draws=draws),
             250 * 32)):
        model = build_segmenter(len(CLASSES), size, 24)
        _compile(model, 1e-3)
        repeated = data.repeat()  # each fit starts the pipeline again: its start-up is part of the measured time
        model.fit(repeated, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
        rates = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            model.fit(repeated, steps_per_epoch=args.steps, epochs=1, verbose=0)
            rates.append(n / (time.perf_counter() - started))
        rate = statistics.median(rates)
        print(f"tumour maps, {name}: {rate:.0f} images/s (median of {args.repeats} x {n} images); an epoch of "
              f"{epoch_images:,} images: {epoch_images / rate / 60:.1f} min of training")


if __name__ == "__main__":
    main()

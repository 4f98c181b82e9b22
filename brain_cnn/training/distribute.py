"""Pick a ``tf.distribute`` strategy for training: one device, several GPUs, or several machines.

* ``TF_CONFIG`` set (a cluster spec): ``MultiWorkerMirroredStrategy`` across machines;
* more than one GPU: ``MirroredStrategy`` across them;
* one GPU or none: the default strategy on that device.

``strategy="mirrored"`` forces ``MirroredStrategy`` over the GPUs, or over all
logical CPU devices when there is no GPU (which is how the tests exercise the
distributed path on a CPU split into two logical devices). The global batch
is the per-replica batch times the number of replicas, and the learning rate
scales with it (the linear scaling rule, Goyal et al., 2017, arXiv:1706.02677);
the schedule's warm-up epoch keeps the large early steps stable. Mixed
precision (float16 compute, float32 weights) is used on GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["Distribution", "choose_strategy", "STRATEGIES"]

STRATEGIES = ("auto", "default", "mirrored", "multi-worker")


@dataclass
class Distribution:
    strategy: Any  # tf.distribute.Strategy
    name: str
    replicas: int
    mixed_precision: bool


def choose_strategy(requested: str = "auto") -> Distribution:
    """The strategy to train under; see the module docstring."""
    import tensorflow as tf

    if requested not in STRATEGIES:
        raise ValueError(f"unknown strategy {requested!r}; choose one of {', '.join(STRATEGIES)}")
    gpus = tf.config.list_logical_devices("GPU")
    if requested == "multi-worker" or (requested == "auto" and os.environ.get("TF_CONFIG")):
        strategy, name = tf.distribute.MultiWorkerMirroredStrategy(), "multi-worker mirrored"
    elif requested == "mirrored" or (requested == "auto" and len(gpus) > 1):
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy, name = tf.distribute.MirroredStrategy(devices), "mirrored"
    else:
        strategy, name = tf.distribute.get_strategy(), "one device (GPU)" if gpus else "one device (CPU)"
    return Distribution(strategy, name, strategy.num_replicas_in_sync, mixed_precision=bool(gpus))

"""The loss weight of each training image: balanced over classes, or over (data set, class) cells."""

from __future__ import annotations

from collections import Counter

import numpy as np

from brain_cnn.errors import DatasetError
from brain_cnn.training.config import TrainConfig

__all__ = ["sample_weights", "check_balance", "training_weights"]


def sample_weights(labels: np.ndarray, sources: list[str] | None = None) -> np.ndarray:
    """Balanced weights per sample: each class (and the unstated-type tumours, label -1) weighs the same in total;
    with ``sources`` (each sample's data set), each (data set, class) cell does.

    Balancing the cells rather than the classes is the group balancing of Idrissi et al. (2022) against
    shortcuts: when one set brings most normals and another most tumours, the source predicts the label
    under class weights, and no longer under cell weights.
    """
    from sklearn.utils.class_weight import compute_class_weight

    groups = labels.astype(str) if sources is None else np.char.add(np.asarray(sources, dtype=str),
                                                                  "\0" + labels.astype(str))
    present, index = np.unique(groups, return_inverse=True)
    weights = compute_class_weight("balanced", classes=present, y=groups)
    return weights[index].astype(np.float32)


def check_balance(balance: str) -> None:
    if balance not in ("class", "source"):
        raise DatasetError(f"unknown balance {balance!r}: 'class' or 'source'")


def training_weights(config: TrainConfig, split, origins: dict[str, str], main: str) -> np.ndarray:
    """The loss weight of each training image, per ``config.balance`` (checked when the run starts)."""
    if config.balance == "class":
        return sample_weights(split.labels)
    sources = [origins.get(path, main) for path in split.files]
    counts = Counter(sources)
    print("balanced over data set and class: " + ", ".join(f"{n} {s}" for s, n in counts.items()), flush=True)
    return sample_weights(split.labels, sources)

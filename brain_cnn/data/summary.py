"""What a data folder holds: class counts per split, example files, image sizes and modes."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from brain_cnn.data.dataset import DataFolder, discover

__all__ = ["DataSummary", "summarise"]


@dataclass
class DataSummary:
    folder: DataFolder
    examples: dict[str, list[Path]]  # class -> a few files, for a sample grid
    formats: Counter  # (format, mode) -> count over the files inspected
    sizes: Counter  # (width, height) -> count over the files inspected
    inspected: int
    unreadable: int

    def counts(self) -> dict[str, dict[str, int]]:
        return self.folder.counts()


def summarise(root: str | Path, examples_per_class: int = 6, inspect: int = 500, seed: int = 0) -> DataSummary:
    """Summarise ``root``; image headers are read for a random ``inspect`` files (fast on large sets).

    Raises:
        DatasetError: the folder is missing or holds no class folders.
    """
    folder = discover(root)
    rng = random.Random(seed)
    by_class: dict[str, list[Path]] = {}
    everything = []
    for samples in folder.splits.values():
        for sample in samples:
            path = folder.root / sample.path
            by_class.setdefault(sample.label, []).append(path)
            everything.append(path)
    examples = {c: rng.sample(paths, min(examples_per_class, len(paths))) for c, paths in sorted(by_class.items())}
    formats, sizes, unreadable = Counter(), Counter(), 0
    chosen = rng.sample(everything, min(inspect, len(everything)))
    for path in chosen:
        try:
            with Image.open(path) as image:  # reads the header only
                formats[(image.format or "?", image.mode)] += 1
                sizes[image.size] += 1
        except Exception:  # noqa: BLE001 - any unreadable file is just counted here
            unreadable += 1
    return DataSummary(folder, examples, formats, sizes, len(chosen), unreadable)

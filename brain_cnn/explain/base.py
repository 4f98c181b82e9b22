"""The small base every explanation method stands on: what a method is, and how a map is scaled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Progress", "ExplanationMethod", "peak_one"]

Progress = Callable[[float], None]  # told the fraction done, 0 to 1


@dataclass(frozen=True)
class ExplanationMethod:
    """One explanation method: its tf-keras-vis class and extra call arguments."""

    name: str
    module: str | None  # the tf-keras-vis module and class; None for occlusion, computed here
    class_name: str | None
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    costly: bool = False  # many forward passes: computed on request, in the background

    def visualizer_class(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.class_name)


def peak_one(heat: np.ndarray) -> np.ndarray:
    """A heat map scaled so its peak is 1 (an all-zero map stays zero)."""
    top = float(heat.max())
    return heat / top if top > 0 else heat

"""Screening figures of several variants of a model's probabilities on the same images, side by side.

Used by the site-adaptation and intensity-matching experiments
(docs/experiments.md); neither change was kept.
"""

from __future__ import annotations

import numpy as np

from brain_cnn.evaluation.screening import group_screening

__all__ = ["side_by_side"]


def side_by_side(name: str, keep: np.ndarray, kinds: np.ndarray, sequences: np.ndarray, negative: np.ndarray,
                 variants: list[np.ndarray]) -> list[str]:
    """Text lines comparing several probability arrays (N, K) of the same images, for benchmarks.

    One line for the ``keep`` images and one per named sequence among them, each with
    "sensitivity / specificity / ROC AUC" of the top-class call under every variant.
    """
    def pct(v):
        return "  n/a" if v is None else f"{v:5.1%}"

    rows = [(name, keep)] + [(f"  {s}", keep & (sequences == s)) for s in sorted(set(sequences)) if s != "unstated"]
    lines = []
    for label, mask in rows:
        line = f"{label[-30:]:30}"
        for p in variants:
            r = group_screening(kinds[mask], ~negative[p[mask].argmax(1)], 1 - p[mask][:, negative].sum(1))
            auc = "  n/a" if r["roc_auc"] is None else f"{r['roc_auc']:.3f}"
            line += f" {pct(r['sensitivity']):>14} / {pct(r['specificity'])} / {auc}"
        lines.append(f"{line} ({int(mask.sum())} images)")
    return lines

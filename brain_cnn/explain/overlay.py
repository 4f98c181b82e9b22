"""Heat maps and boxes drawn over a slice, for the app and the PDF."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["overlay_heatmap", "draw_box"]


def overlay_heatmap(grey: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4) -> np.ndarray:
    """Lay a heat map (any size, values in [0, 1]) over a greyscale slice; returns RGB ``uint8``."""
    grey = grey[..., 0] if grey.ndim == 3 else grey
    height, width = grey.shape
    resized = cv2.resize(heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(np.clip(resized, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    base = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    blended = (1 - opacity) * base + opacity * colour.astype(np.float32)
    return np.clip(blended, 0, 255).astype(np.uint8)


def draw_box(rgb: np.ndarray, box: list[int] | tuple[int, int, int, int], colour=(0, 255, 0)) -> np.ndarray:
    """A copy of an RGB image with the box outlined."""
    out = rgb.copy()
    x0, y0, x1, y1 = box
    cv2.rectangle(out, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), colour, 1)
    return out

"""Images that are not brain MRI slices, for checking the out-of-distribution gate.

Real photographs and documents that ship inside scikit-image, plus images
drawn here (a chest X-ray-like radiograph, a text page, noise, a blank frame,
a gradient, a checkerboard). Nothing here comes from a brain MRI data set.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SKIMAGE_IMAGES = ["astronaut", "brick", "camera", "cat", "checkerboard", "clock", "coffee", "coins", "colorwheel",
                  "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms",
                  "moon", "page", "text", "retina", "rocket", "cell"]


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def chest_radiograph(size: int = 512, seed: int = 0) -> np.ndarray:
    """A frontal chest X-ray-like drawing: bright body, dark lungs, spine, ribs, clavicles."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (size, size), 10)
    draw = ImageDraw.Draw(image)
    s = size
    draw.rounded_rectangle([0.08 * s, 0.05 * s, 0.92 * s, 1.05 * s], radius=int(0.2 * s), fill=170)  # torso
    draw.ellipse([0.16 * s, 0.15 * s, 0.47 * s, 0.85 * s], fill=45)  # right lung
    draw.ellipse([0.53 * s, 0.15 * s, 0.84 * s, 0.85 * s], fill=45)  # left lung
    draw.ellipse([0.42 * s, 0.45 * s, 0.72 * s, 0.82 * s], fill=150)  # heart
    draw.rectangle([0.47 * s, 0.05 * s, 0.53 * s, 1.0 * s], fill=200)  # spine
    for k in range(9):  # ribs
        y = (0.2 + 0.075 * k) * s
        draw.arc([0.14 * s, y - 0.08 * s, 0.5 * s, y + 0.1 * s], 180, 350, fill=205, width=max(2, s // 90))
        draw.arc([0.5 * s, y - 0.08 * s, 0.86 * s, y + 0.1 * s], 190, 360, fill=205, width=max(2, s // 90))
    draw.line([0.15 * s, 0.14 * s, 0.46 * s, 0.2 * s], fill=215, width=max(3, s // 60))  # clavicles
    draw.line([0.54 * s, 0.2 * s, 0.85 * s, 0.14 * s], fill=215, width=max(3, s // 60))
    image = image.filter(ImageFilter.GaussianBlur(s / 200))
    noisy = np.asarray(image, np.float32) + rng.normal(0, 6, (s, s))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def text_page(size: int = 512) -> np.ndarray:
    image = Image.new("L", (size, int(size * 1.3)), 250)
    draw = ImageDraw.Draw(image)
    for row in range(40):
        draw.text((20, 15 + row * 16), "Discharge summary: the patient was seen in clinic and is well. " * 2, fill=20)
    return np.asarray(image)


def drawn_images() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    gradient = np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1))
    checker = ((np.indices((256, 256)) // 32).sum(axis=0) % 2 * 255).astype(np.uint8)
    return {
        "chest X-ray (drawn)": _png(chest_radiograph(512, 0)),
        "chest X-ray, small (drawn)": _png(chest_radiograph(256, 1)),
        "text page (drawn)": _png(text_page()),
        "uniform noise": _png(rng.integers(0, 256, (256, 256), dtype=np.uint8)),
        "gaussian noise": _png(np.clip(rng.normal(128, 40, (256, 256)), 0, 255).astype(np.uint8)),
        "blank black": _png(np.zeros((256, 256), np.uint8)),
        "blank white": _png(np.full((256, 256), 255, np.uint8)),
        "gradient": _png(gradient),
        "checkerboard (drawn)": _png(checker),
        "colour noise": _png(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)),
    }


def skimage_images() -> dict[str, bytes]:
    """scikit-image's bundled sample images (empty if scikit-image is absent)."""
    try:
        from skimage import data
    except ImportError:
        return {}
    images = {}
    for name in SKIMAGE_IMAGES:
        try:
            array = np.asarray(getattr(data, name)())
        except Exception:  # noqa: BLE001 - a sample that needs a download is left out
            continue
        if array.dtype != np.uint8:
            array = (255 * (array.astype(np.float64) / max(1e-9, float(array.max())))).astype(np.uint8)
        images[f"skimage {name}"] = _png(array)
    return images


def non_brain_images() -> dict[str, bytes]:
    return {**skimage_images(), **drawn_images()}

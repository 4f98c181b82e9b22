"""Turn the bytes of an image file into one greyscale 8-bit slice.

This is the first half of the single path from a file to a model input (the
second half is :mod:`brain_cnn.scan.preprocess`). Everything a user can upload ends
up here, so every way it can fail maps to one clear message.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from brain_cnn.errors import UnreadableImageError

__all__ = ["decode_image", "decode_image_with_colour", "colourfulness", "MAX_PIXELS", "MAX_BYTES"]

# An MRI slice is rarely above 1024x1024; 40 MP still admits photographs and
# scanned films while refusing 20000x20000 images and decompression bombs
# before any pixel is decoded.
MAX_PIXELS = 40_000_000
MAX_BYTES = 200 * 1024 * 1024

# Signatures of files people rename to .jpg/.png by mistake.
_FOREIGN_SIGNATURES = {
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (or Office document)",
    b"\x1f\x8b": "a gzip archive",
    b"<!DOCTYPE": "an HTML page",
    b"<html": "an HTML page",
    b"{": "a JSON/text file",
}


def _foreign_kind(data: bytes) -> str | None:
    head = data[:16].lstrip()
    for signature, kind in _FOREIGN_SIGNATURES.items():
        if head.startswith(signature):
            return kind
    if len(data) > 132 and data[128:132] == b"DICM":
        return "a DICOM file"
    return None


_IMAGE_SIGNATURES = {
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"RIFF": "WebP",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"GIF8": "GIF",
}


def _claimed_image_format(data: bytes) -> str | None:
    return next((fmt for sig, fmt in _IMAGE_SIGNATURES.items() if data.startswith(sig)), None)


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk (2003) colourfulness of an RGB array: 0 for grey, ~30-150 for photographs."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _to_grey(image: Image.Image) -> tuple[np.ndarray, float]:
    """Convert any Pillow mode to a 2-D uint8 array, and measure its colourfulness."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # High bit depth (16-bit PNG/TIFF, float TIFF): stretch the used range
        # to 8 bits, as a viewer's default window would.
        arr = np.asarray(image, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        if finite.size == 0:
            raise UnreadableImageError("the image holds no finite pixel values")
        lo, hi = np.percentile(finite, [0.0, 99.9])
        if hi <= lo:
            hi = lo + 1.0
        arr = np.clip((np.nan_to_num(arr, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
        return (arr * 255.0 + 0.5).astype(np.uint8), 0.0
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Screenshots with transparency: composite onto black, the background
        # of an MRI slice, so transparent margins do not become white frames.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode in ("L", "1"):
        return np.asarray(image.convert("L"), dtype=np.uint8), 0.0
    rgb = image.convert("RGB")
    return np.asarray(rgb.convert("L"), dtype=np.uint8), colourfulness(np.asarray(rgb))


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode image file bytes to a greyscale ``uint8`` array; see :func:`decode_image_with_colour`."""
    return decode_image_with_colour(data, name)[0]


def decode_image_with_colour(data: bytes, name: str = "image") -> tuple[np.ndarray, float]:
    """Decode image file bytes to a greyscale ``uint8`` array of shape (H, W).

    Accepts JPEG, PNG, WebP, BMP, TIFF and GIF in 1-, 8- and 16-bit, greyscale,
    RGB, RGBA, CMYK and palette modes. Multi-frame files give their first frame.

    Args:
        data: the whole file content.
        name: shown in error messages.

    Returns:
        A C-contiguous ``uint8`` array of shape (height, width), and the
        colourfulness of the original (0 for greyscale files).

    Raises:
        UnreadableImageError: with a specific reason (empty, not an image,
            truncated, too large, ...).

    Example:
        >>> import io; from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (8, 4)).save(buf, "PNG")
        >>> grey, colour = decode_image_with_colour(buf.getvalue())
        >>> grey.shape, colour
        ((4, 8), 0.0)
    """
    if not data:
        raise UnreadableImageError(f"{name}: the file is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise UnreadableImageError(
            f"{name}: the file is {len(data) / 2**20:.0f} MB, over the {MAX_BYTES // 2**20} MB limit"
        )
    foreign = _foreign_kind(data)
    if foreign:
        raise UnreadableImageError(f"{name}: this is {foreign}, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on odd EXIF or TIFF tags
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise UnreadableImageError(
                    f"{name}: the image is {width}x{height} pixels, over the "
                    f"{MAX_PIXELS // 1_000_000} megapixel limit; export the slice at a smaller size"
                )
            if width < 16 or height < 16:
                raise UnreadableImageError(
                    f"{name}: the image is only {width}x{height} pixels, too small to assess"
                )
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
            grey, colour = _to_grey(image)
            return np.ascontiguousarray(grey), colour
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadableImageError(f"{name}: the image is too large to decode safely") from None
    except UnidentifiedImageError:
        claimed = _claimed_image_format(data)
        if claimed:
            raise UnreadableImageError(f"{name}: starts like a {claimed} file but its data is corrupt") from None
        raise UnreadableImageError(
            f"{name}: not an image format this tool reads (JPEG, PNG, WebP, BMP, TIFF, GIF)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        text = str(error).lower()
        if "truncated" in text or "premature" in text or "broken" in text:
            reason = "the image data is truncated (the file was cut off)"
        else:
            reason = f"the image data is corrupt ({error})"
        raise UnreadableImageError(f"{name}: {reason}") from None

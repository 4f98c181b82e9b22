import io

import numpy as np
import pytest
from PIL import Image

from brain_cnn.scan.decode import decode_image
from brain_cnn.errors import UnreadableImageError

from conftest import encode, phantom


@pytest.fixture(scope="module")
def slice_():
    return phantom(80, lesion=True)


@pytest.mark.parametrize(
    "fmt,mode",
    [
        ("PNG", "L"), ("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "P"), ("PNG", "LA"), ("PNG", "1"),
        ("JPEG", "L"), ("JPEG", "RGB"), ("JPEG", "CMYK"), ("WEBP", "RGB"), ("BMP", "RGB"),
        ("TIFF", "L"), ("TIFF", "RGB"), ("GIF", "P"),
    ],
)
def test_every_mode_and_format_gives_a_grey_slice(slice_, fmt, mode):
    grey = decode_image(encode(slice_, fmt, mode), f"x.{fmt.lower()}")
    assert grey.shape == slice_.shape and grey.dtype == np.uint8
    if mode != "1":  # 1-bit keeps only the brightest structures
        # Lossy formats and palettes change values a little, never the picture.
        assert np.corrcoef(grey.ravel(), slice_.ravel())[0, 1] > 0.95


def test_sixteen_bit_png_is_stretched_to_full_range():
    ramp = (np.linspace(1000, 4000, 64 * 64).reshape(64, 64)).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I")
    grey = decode_image(buffer.getvalue())
    assert grey.min() == 0 and grey.max() >= 254
    assert np.all(np.diff(grey.ravel().astype(int)) >= 0)  # order of intensities kept


def test_transparent_margin_becomes_black_not_white():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 10:30] = (200, 200, 200, 255)
    grey = decode_image(encode(rgba, "PNG"))
    assert grey[0, 0] == 0 and grey[20, 20] == 200


def test_animated_gif_gives_first_frame():
    frames = [Image.fromarray(np.full((32, 32), v, np.uint8)) for v in (50, 200)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    assert abs(int(decode_image(buffer.getvalue()).mean()) - 50) <= 2


def test_exif_orientation_is_applied():
    wide = np.zeros((20, 40), np.uint8)
    image = Image.fromarray(wide)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    assert decode_image(buffer.getvalue()).shape == (40, 20)


def _truncated_jpeg():
    data = encode(phantom(128), "JPEG")
    return data[: len(data) // 2]


def _huge_png():
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"%PDF-1.7\n%binary\n1 0 obj", "PDF"),
        (b"PK\x03\x04" + b"\0" * 64, "ZIP"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "corrupt"),
        (b"hello, this is text and not an image at all", "not an image format"),
        (_truncated_jpeg(), "truncated"),
        (_huge_png(), "too large"),
        (encode(np.zeros((8, 8), np.uint8)), "too small"),
    ],
    ids=["empty", "pdf", "zip", "broken-png", "text", "truncated-jpeg", "20000x20000", "tiny"],
)
def test_bad_input_gets_a_specific_message(data, message):
    with pytest.raises(UnreadableImageError, match=message) as caught:
        decode_image(data, "upload.jpg")
    assert str(caught.value).startswith("upload.jpg: ")

"""The bad-input corpus through `predict --json` and the app: each file gets its own clear answer."""

import io
import json
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from brain_cnn.cli import main

from conftest import encode, make_dicom, make_nifti, phantom

pytestmark = pytest.mark.slow


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb() -> bytes:
    """A 300-byte PNG that claims 100000 x 100000 pixels."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 100_001 * 2)) + png_chunk(b"IEND", b""))


def corpus() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, what the answer must contain); '' means a normal answer (a call or a refusal)."""
    scan = phantom(160, lesion=True)
    big = io.BytesIO()
    Image.new("1", (20000, 20000)).save(big, "PNG")
    sixteen = io.BytesIO()
    Image.fromarray(scan.astype(np.uint16) * 200).save(sixteen, "PNG")
    gif = io.BytesIO()
    frames = [Image.fromarray(scan), Image.fromarray(255 - scan)]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    screenshot = np.dstack([scan, scan, scan, np.full_like(scan, 255)])
    screenshot[:20] = 0  # transparent band
    jpeg = encode(scan, "JPEG")
    return {
        "zero-byte.jpg": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 3], "truncated"),
        "renamed-pdf.png": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\nendobj\n", "PDF"),
        "bomb.png": (decompression_bomb(), "too large"),
        "huge-20000.png": (big.getvalue(), "too large"),
        "sixteen-bit.png": (sixteen.getvalue(), ""),
        "cmyk.jpg": (encode(scan, "JPEG", mode="CMYK"), ""),
        "animated.gif": (gif.getvalue(), ""),
        "screenshot-rgba.png": (encode(screenshot, "PNG"), ""),
        "no-pixels.dcm": (make_dicom(np.zeros((4, 4), np.uint16), pixel_data=False), "holds no image"),
        "corrupt.dcm": (make_dicom(scan.astype(np.uint16))[:-5000], "cannot be decoded"),
        "four-d.nii": (make_nifti(np.zeros((8, 8, 8, 2))), "4-D NIfTI"),
    }


def test_predict_json_answers_every_file_of_the_corpus(tiny_model, tmp_path, capsys):
    files = corpus()
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    capsys.readouterr()
    assert main(["predict", "--model", str(tiny_model), "--json", *[str(tmp_path / n) for n in files]]) == 0
    answers = {json.loads(line)["file"].split("/")[-1]: json.loads(line) for line in capsys.readouterr().out.splitlines()}
    assert set(answers) == set(files)
    for name, (_, expected) in files.items():
        answer = answers[name]
        if expected:
            assert expected in answer.get("error", ""), (name, answer)
        else:
            assert "error" not in answer and ("probabilities" in answer or "cannot_assess" in answer), (name, answer)


def test_a_dicom_of_another_modality_or_body_part_is_refused_by_its_header(tiny_model, tmp_path, capsys):
    """The feature gate knows brain MRI, not other anatomy; a header that says CT or abdomen decides."""
    scan = phantom(160, lesion=True).astype(np.uint16)
    files = {"head-ct.dcm": make_dicom(scan, Modality="CT", BodyPartExamined="HEAD"),
             "abdomen-mr.dcm": make_dicom(scan, BodyPartExamined="ABDOMEN"),
             "brain-mr.dcm": make_dicom(scan, BodyPartExamined="BRAIN")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    capsys.readouterr()
    assert main(["predict", "--model", str(tiny_model), "--json", *[str(tmp_path / n) for n in files]]) == 0
    answers = {json.loads(line)["file"].split("/")[-1]: json.loads(line) for line in capsys.readouterr().out.splitlines()}
    assert "a CT image (DICOM modality CT)" in answers["head-ct.dcm"]["cannot_assess"]
    assert "scan of the abdomen" in answers["abdomen-mr.dcm"]["cannot_assess"]
    assert "DICOM" not in answers["brain-mr.dcm"].get("cannot_assess", "")


def test_the_app_answers_every_file_of_the_corpus(tiny_model, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from conftest import PROJECT

    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / tiny_model.name)
    monkeypatch.setenv("BRAIN_CNN_MODELS", str(models))
    monkeypatch.setenv("BRAIN_CNN_AUDIT", str(tmp_path / "audit.jsonl"))
    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=180).run()
    files = corpus()
    at.file_uploader[0].set_value([(n, d, "application/octet-stream") for n, (d, _) in files.items()])
    at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    for name, (_, expected) in files.items():
        if expected:
            assert name in errors and expected in errors
    # Every readable file is answered in the worklist (the page details one case at a time).
    assert sum(1 for name in at.dataframe[0].value["file"] if name in files) == sum(1 for _, e in files.values() if not e)

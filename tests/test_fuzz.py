"""Property-based fuzzing of bytes -> model input: any bytes give an input or a clear error, nothing else."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brain_cnn.errors import UnreadableImageError
from brain_cnn.scan.preprocess import load_slices

from conftest import encode, make_dicom, make_nifti, phantom

SEEDS = {
    "scan.png": encode(phantom(48), "PNG"),
    "scan.jpg": encode(phantom(48), "JPEG"),
    "scan.gif": encode(phantom(48), "GIF"),
    "scan.tif": encode(phantom(48), "TIFF"),
    "scan.webp": encode(phantom(48), "WEBP"),
    "scan.dcm": make_dicom(phantom(32).astype(np.uint16)),
    "scan.nii": make_nifti(np.zeros((8, 8, 4), np.float32) + np.arange(4)),
}


@st.composite
def mutated_file(draw):
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    if draw(st.booleans()):
        data = data[:cut]
    return name, bytes(data)


def check(name: str, data: bytes) -> None:
    try:
        inputs, scan = load_slices(data, 32, name)
    except UnreadableImageError as error:
        assert str(error).strip()
        return
    assert inputs.dtype == np.uint8 and inputs.shape[1:] == (32, 32, 1) and len(inputs) == len(scan.slices) >= 1


FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@FUZZ
@given(mutated_file())
def test_mutated_files_never_escape_as_other_errors(case):
    check(*case)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from(["x.png", "x.jpg", "x.dcm", "x.nii", "x.nii.gz", "x.zip", "x"]))
def test_random_bytes_never_escape_as_other_errors(data, name):
    check(name, data)

"""Uploads that unpack to far more than they weigh are refused before they are unpacked."""

import io
import tracemalloc
import zlib

import pytest

from brain_cnn.errors import UnreadableImageError
from brain_cnn.scan.decode import MAX_BYTES
from brain_cnn.scan.read import read_scan


def deflated_dicom(inflated_bytes: int) -> bytes:
    """A DICOM file in the Deflated Explicit VR Little Endian syntax whose data set inflates to ``inflated_bytes``
    of zeros, made a megabyte at a time (the test never holds the inflated data)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, MRImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    header = io.BytesIO()
    write_file_meta_info(header, meta)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk, parts = bytes(2**20), []
    for _ in range(inflated_bytes // 2**20):
        parts.append(compressor.compress(chunk))
    parts.append(compressor.flush())
    return b"\0" * 128 + b"DICM" + header.getvalue() + b"".join(parts)


def test_a_deflated_dicom_that_inflates_past_the_limit_is_refused_with_little_memory():
    bomb = deflated_dicom(MAX_BYTES + 64 * 2**20)
    assert len(bomb) < MAX_BYTES // 500  # about a thousand to one
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableImageError, match="unpacks to over"):
            read_scan(bomb, "bomb.dcm")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_a_truncated_deflated_dicom_is_a_clear_message():
    with pytest.raises(UnreadableImageError):
        read_scan(deflated_dicom(4 * 2**20)[:-200], "cut.dcm")

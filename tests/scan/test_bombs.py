"""Uploads that unpack to far more than they weigh are refused before they are unpacked."""

import io
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np

import pytest

from brain_cnn.errors import UnreadableImageError
from brain_cnn.scan.decode import MAX_BYTES
from brain_cnn.scan.read import MAX_ZIP_MEMBERS, read_scan

from conftest import make_dicom


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


def peak_while_refused(data: bytes, name: str, match: str) -> int:
    """Peak bytes Python allocated while ``read_scan`` refused ``data`` with a message matching ``match``."""
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableImageError, match=match):
            read_scan(data, name)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def zipped(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def lying_about_its_size(archive: bytes, declared: int) -> bytes:
    """The archive with its one member's declared uncompressed size rewritten, in the local header and the
    central directory, as a hostile archive would write it."""
    data = bytearray(archive)
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[local + 22:local + 26] = struct.pack("<I", declared)
    data[central + 24:central + 28] = struct.pack("<I", declared)
    return bytes(data)


def test_a_bzip2_member_that_lies_about_its_size_is_refused_unopened():
    # bzip2 turns a few KB into hundreds of MB within one of zipfile's 4 KB reads: not opened at all.
    bomb = lying_about_its_size(zipped({"IM1.dcm": bytes(64 * 2**20)}, zipfile.ZIP_BZIP2), 100)
    assert len(bomb) < 4096
    peak = peak_while_refused(bomb, "bomb.zip", "compression method")
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_a_deflate_member_that_lies_about_its_size_is_a_clear_message_with_little_memory():
    bomb = lying_about_its_size(zipped({"IM1.dcm": bytes(64 * 2**20)}), 100)
    peak = peak_while_refused(bomb, "bomb.zip", "corrupt|no DICOM")
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_an_archive_over_the_budget_or_of_too_many_files_is_refused_before_it_is_read():
    big = zipped({f"IM{i}.dcm": bytes(2**20) for i in range(2)})
    honest_but_large = lying_about_its_size(big, 2 * MAX_BYTES + 1)  # as an honest 400 MB member declares itself
    peak_while_refused(honest_but_large, "big.zip", "unpacks to over")
    many = zipped({f"IM{i}.dcm": b"" for i in range(MAX_ZIP_MEMBERS + 1)}, zipfile.ZIP_STORED)
    peak_while_refused(many, "many.zip", f"over the {MAX_ZIP_MEMBERS}-file limit")


def test_a_series_of_small_compressed_files_of_large_flat_frames_is_refused_before_decoding():
    # 10 RLE files of one flat 4096 x 4096 frame each: a few KB apiece, 168 million pixels together (the
    # limit is 120 million); decoded one by one to float32 they would take 640 MiB before any check.
    flat = np.full((4096, 4096), 7, np.uint16)
    first = make_dicom(flat, compress="1.2.840.10008.1.2.5", position=0.0)
    assert len(first) < 2**20
    files = {f"IM{z}.dcm": make_dicom(flat, compress="1.2.840.10008.1.2.5", position=float(z), instance=z)
             for z in range(10)}
    peak = peak_while_refused(zipped(files), "flat.zip", "million pixels")
    assert peak < 128 * 2**20, f"peak {peak / 2**20:.0f} MiB"

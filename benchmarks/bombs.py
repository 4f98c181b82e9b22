"""Peak memory of `brain-cnn predict --json` on uploads that unpack to far more than they weigh.

Each upload is made here (nothing is downloaded) and run in its own process;
the figure is that process's peak resident memory (``ru_maxrss``), beside a
normal one-slice run with the same model. A refusal should print a clear
message and peak within a few hundred MiB of the normal run.

    python benchmarks/bombs.py --model models/brain-tumor-mri-ensemble
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

GIB = 2**30


def _zeros_deflated(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = bytes(2**24)
    parts = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join(parts) + compressor.flush()


def normal_slice() -> bytes:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    head = (((yy - 128) / 110) ** 2 + ((xx - 128) / 90) ** 2 < 1) * 120 + rng.normal(0, 5, (256, 256))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(head, 0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def bzip2_zip(size: int) -> bytes:
    """A ZIP whose one bzip2 member holds ``size`` zeros and declares 100 bytes."""
    import bz2

    compressor, chunk = bz2.BZ2Compressor(9), bytes(2**24)
    body = b"".join(compressor.compress(chunk) for _ in range(size // len(chunk))) + compressor.flush()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("IM1.dcm", b"")
    data = bytearray(buffer.getvalue())
    # Put the body in place of the empty member's, then fix the offsets and sizes by hand.
    local = data.index(b"PK\x03\x04")
    name_len, extra_len = int.from_bytes(data[local + 26:local + 28], "little"), \
        int.from_bytes(data[local + 28:local + 30], "little")
    start = local + 30 + name_len + extra_len
    central = data.index(b"PK\x01\x02")
    old_body = data[start:central]
    rebuilt = bytearray(data[:start]) + body + data[central:]
    shift = len(body) - len(old_body)
    central += shift
    end = rebuilt.index(b"PK\x05\x06")
    for offset, value in ((local + 18, len(body)), (local + 22, 100), (central + 20, len(body)), (central + 24, 100)):
        rebuilt[offset:offset + 4] = value.to_bytes(4, "little")
    cd_offset = int.from_bytes(rebuilt[end + 16:end + 20], "little") + shift
    rebuilt[end + 16:end + 20] = cd_offset.to_bytes(4, "little")
    return bytes(rebuilt)


def deflated_dicom(size: int) -> bytes:
    """A deflated DICOM whose data set is one private element of ``size`` zeros."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, MRImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    header = io.BytesIO()
    write_file_meta_info(header, meta)
    # (0009,0010) OB with a 4-byte length: a private element holding the zeros.
    size = min(size, 2**32 - 2) // 2 * 2  # a 4-byte, even length
    element = b"\x09\x00\x10\x00OB\x00\x00" + size.to_bytes(4, "little")
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk, parts = bytes(2**24), [compressor.compress(element)]
    parts += [compressor.compress(chunk) for _ in range(size // len(chunk))]
    parts.append(compressor.flush())
    return b"\0" * 128 + b"DICM" + header.getvalue() + b"".join(parts)


def flat_series(files: int = 40, side: int = 4096) -> bytes:
    """A ZIP of RLE-compressed DICOM files, each one flat frame of ``side`` x ``side``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, RLELossless

    buffer = io.BytesIO()
    frame = np.full((side, side), 7, np.uint16)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for z in range(files):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, f"1.2.3.{z + 1}"
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, meta.MediaStorageSOPInstanceUID, "MR"
            ds.SeriesInstanceUID, ds.InstanceNumber = "1.2.3", z + 1
            ds.Rows = ds.Columns = side
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = frame.tobytes()
            ds.compress(RLELossless)
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
            archive.writestr(f"IM{z}.dcm", out.getvalue())
    return buffer.getvalue()


def peak_of(command: list[str]) -> tuple[float, float, str]:
    """(peak RSS in MiB, seconds, the last line it printed) of ``command`` run in a fresh process."""
    probe = ("import resource, subprocess, sys, time; t = time.time(); "
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.time() - t); "
             "print((r.stdout.strip().splitlines() or r.stderr.strip().splitlines() or [''])[-1])")
    done = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True)
    figures, said = done.stdout.splitlines()[:2]
    peak, seconds = map(float, figures.split())
    return peak, seconds, said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/brain-tumor-mri-ensemble")
    parser.add_argument("--size-gib", type=float, default=4.0, help="what the bzip2 and deflate bombs unpack to")
    args = parser.parse_args()
    size = int(args.size_gib * GIB)
    cases = {
        "normal slice (PNG)": ("slice.png", normal_slice),
        f"ZIP, one bzip2 member of {args.size_gib:g} GiB of zeros declaring 100 bytes": ("bomb.zip",
                                                                                        lambda: bzip2_zip(size)),
        f"deflated DICOM, a private element of {args.size_gib:g} GiB": ("bomb.dcm", lambda: deflated_dicom(size)),
        "ZIP of 40 RLE DICOM files, one flat 4096x4096 frame each": ("flat.zip", flat_series),
    }
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, (name, make) in cases.items():
            started = time.time()
            path = Path(folder) / name
            path.write_bytes(make())
            made = time.time() - started
            peak, seconds, said = peak_of([sys.executable, "-m", "brain_cnn", "predict", "--model", args.model,
                                           "--json", str(path)])
            try:
                line = json.loads(said)
                said = line.get("error") or line.get("cannot_assess") or line.get("label") or said
            except (json.JSONDecodeError, AttributeError):
                pass
            rows.append((label, path.stat().st_size, peak, seconds, said))
            print(f"{label}: {path.stat().st_size / 1024:,.0f} KiB (made in {made:.0f} s), peak {peak:,.0f} MiB, "
                  f"{seconds:.1f} s: {said}", flush=True)
    print("\n| upload | size | peak RSS | time | what it said |\n|---|---|---|---|---|")
    for label, size_bytes, peak, seconds, said in rows:
        print(f"| {label} | {size_bytes / 1024:,.0f} KiB | {peak:,.0f} MiB | {seconds:.1f} s | {said} |")


if __name__ == "__main__":
    main()

"""Read what a radiologist uploads: images, DICOM (files, multi-frame, series, ZIPs) and NIfTI.

Every reader ends in the same place: a :class:`Scan`, an ordered stack of
8-bit greyscale slices with a de-identified header summary. Each slice then
takes the one preprocessing path (:func:`brain_cnn.scan.preprocess.prepare`), so a
DICOM slice and a JPEG of it reach the network the same way.

DICOM: rescale slope/intercept (modality LUT), then the file's VOI LUT or
window centre/width (else a 0.5-99.5 percentile window over the whole
series), MONOCHROME1 inverted. Compressed transfer syntaxes are decoded by
pydicom's plugins (Pillow, pylibjpeg with libjpeg and OpenJPEG).
Patient name, ID, birth date and every other identifying element are never
copied out of the dataset.

NIfTI (nibabel): reoriented to the closest canonical (RAS+) orientation,
then sliced along the chosen axis and shown in radiological convention.
"""

from __future__ import annotations

import hmac
import io
import os
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brain_cnn.errors import UnreadableImageError
from brain_cnn.scan.decode import MAX_BYTES, MAX_PIXELS, decode_image_with_colour
from brain_cnn.scan.sequences import SEQUENCE_TAGS, HeaderSequence, sequence_from_header

__all__ = ["Scan", "read_scan", "read_study", "group_series", "is_dicom", "is_nifti", "AXES"]

AXES = {"axial": 2, "coronal": 1, "sagittal": 0}
MAX_SLICES = 2000
# Voxels of one volume: 2000 slices of 224x224 fit; a header that claims more
# (a corrupt or hostile file) is refused before any memory is allocated.
MAX_VOXELS = 120_000_000
# Header elements safe to show: coded values and numbers only. Nothing that identifies a patient, and no
# free text (SeriesDescription, ProtocolName, ContrastBolusAgent: typed by a person, they can name one; the
# basic profile of PS3.15 Annex E removes them). The sequence derived from them is shown instead.
_SAFE_HEADER = {
    "Modality": "modality",
    "BodyPartExamined": "body part",
    "SliceThickness": "slice thickness (mm)",
    "PixelSpacing": "pixel spacing (mm)",
    "MagneticFieldStrength": "field strength (T)",
    "RepetitionTime": "TR (ms)",
    "EchoTime": "TE (ms)",
}


@dataclass
class Scan:
    """Ordered 8-bit greyscale slices of one upload, ready for :func:`prepare`."""

    name: str
    kind: str  # "image", "dicom" or "nifti"
    slices: np.ndarray  # (N, H, W) uint8
    slice_labels: list[str]  # one per slice, e.g. "frame 3", "z = -12.5 mm"
    header: dict[str, str] = field(default_factory=dict)  # de-identified summary
    notes: list[str] = field(default_factory=list)  # what the reader decided, for the user
    colourfulness: float = 0.0  # of the original file; greyscale formats are 0
    sequence: HeaderSequence | None = None  # the MRI sequence, where a DICOM header tells it
    pixel_spacing: tuple[float, float] | None = None  # (row, column) mm, where the file tells it
    # Every file name the upload carried (the file, a series' files, a ZIP's members): a name can name a
    # patient, so what leaves the session is written without them (:mod:`brain_cnn.reports.deidentify`).
    file_names: list[str] = field(default_factory=list)
    # mm from one slice to the next, where the file tells it and the slices are evenly spaced; None otherwise,
    # with ``spacing_note`` saying why (a study's volume then counts voxels, not mL).
    slice_spacing: float | None = None
    spacing_note: str | None = None
    # A keyed hash of the DICOM PatientID, to tell two studies of different patients apart without keeping
    # or showing the ID: the key is this process's own, so the hash means nothing outside it.
    patient_key: str | None = None

    @property
    def is_volume(self) -> bool:
        return len(self.slices) > 1


def is_dicom(data: bytes, name: str = "") -> bool:
    return (len(data) > 132 and data[128:132] == b"DICM") or name.lower().endswith((".dcm", ".dicom"))


def is_nifti(data: bytes, name: str = "") -> bool:
    lower = name.lower()
    if lower.endswith((".nii", ".nii.gz")):
        return True
    return len(data) > 348 and data[344:348] in (b"n+1\0", b"ni1\0", b"n+2\0")


# --- DICOM -----------------------------------------------------------------


_DEFLATED_UID = b"1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian
_CHUNK = 2**20  # inflate ZIP members and deflated DICOM in 1 MB steps, each step counted


def _inflated_size(stream: memoryview, limit: int, name: str) -> int:
    """Bytes a raw deflate stream inflates to, counted in 1 MB steps that are dropped; refused past ``limit``."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    size = 0
    try:
        while not inflater.eof:
            step = inflater.decompress(stream, _CHUNK)
            if not step:  # all input used and no end of stream
                raise UnreadableImageError(f"{name}: the deflated DICOM data is truncated (the file was cut off)")
            size += len(step)
            if size > limit:
                raise UnreadableImageError(f"{name}: the deflated DICOM data unpacks to over {limit // 2**20} MB, "
                                           "over the size limit")
            stream = inflater.unconsumed_tail
    except zlib.error:
        raise UnreadableImageError(f"{name}: the deflated DICOM data is corrupt") from None
    return size


def _inflate_dicom(data: bytes, name: str, limit: int = MAX_BYTES) -> bytes:
    """A DICOM file in the Deflated Explicit VR Little Endian transfer syntax, inflated against ``limit`` and
    rewritten as Explicit VR Little Endian; any other file as is.

    pydicom 3 inflates a deflated data set whole with ``zlib.decompress`` and no limit
    (``filereader.read_partial``): 32 KB can become gigabytes before any size check. Here the stream is first
    inflated in counted 1 MB steps that are dropped, so a bomb is refused with almost no memory; one within
    ``limit`` (the limit of an uncompressed upload) is then inflated once, and pydicom gets plain bytes.
    """
    if _DEFLATED_UID not in data:  # pydicom compares the UID's bytes: without them it sees no deflated file
        return data
    try:  # the File Meta Information reader dcmread itself uses, so both read the same transfer syntax
        from pydicom.filereader import _read_file_meta_info, read_preamble
        from pydicom.filewriter import write_file_meta_info
        from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
    except ImportError:  # another pydicom: refuse rather than let it inflate without a limit
        raise UnreadableImageError(f"{name}: a deflated DICOM file cannot be read safely by this version; "
                                   "export it uncompressed") from None

    def meta_of(raw: bytes):
        fp = io.BytesIO(raw)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                read_preamble(fp, True)
                meta = _read_file_meta_info(fp)
                return meta, meta.get("TransferSyntaxUID"), fp.tell()
        except Exception:  # noqa: BLE001 - dcmread would fail on the same bytes
            raise UnreadableImageError(f"{name}: not a readable DICOM file (its file meta information is corrupt)") \
                from None

    meta, syntax, start = meta_of(data)
    if syntax != DeflatedExplicitVRLittleEndian:
        return data
    stream = memoryview(data)[start:]
    size = _inflated_size(stream, limit, name)
    dataset = zlib.decompressobj(-zlib.MAX_WBITS).decompress(stream, max(size, 1))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    header = io.BytesIO()
    try:
        write_file_meta_info(header, meta, enforce_standard=False)
    except Exception:  # noqa: BLE001 - a file meta pydicom cannot write back
        raise UnreadableImageError(f"{name}: not a readable DICOM file (its file meta information is corrupt)") \
            from None
    preamble = data[:132] if data[128:132] == b"DICM" else b""
    rebuilt = b"".join([preamble, header.getvalue(), dataset])
    if meta_of(rebuilt)[1] == DeflatedExplicitVRLittleEndian:  # never hand pydicom a stream it would inflate
        raise UnreadableImageError(f"{name}: not a readable DICOM file (its file meta information is corrupt)")
    return rebuilt


def _dcmread(data: bytes, name: str):
    import pydicom
    from pydicom.errors import InvalidDicomError

    data = _inflate_dicom(data, name)
    try:
        with warnings.catch_warnings():  # pydicom warns about every oddity of a forced read
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=not data[128:132] == b"DICM")
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, OSError) as error:
        raise UnreadableImageError(f"{name}: not a readable DICOM file ({error})") from None
    if not any(keyword in ds for keyword in ("SOPClassUID", "Modality", "PixelData", "Rows")):
        raise UnreadableImageError(f"{name}: not a readable DICOM file (no DICOM data elements found)")
    return ds


def _first(value) -> float:
    """First value of a possibly multi-valued DICOM number."""
    if isinstance(value, (str, bytes)):
        return float(value)
    try:
        return float(value[0])
    except TypeError:
        return float(value)


# The defined terms shown as they are (PS3.3 C.7.3.1.1.1 modalities, PS3.16 Annex L body parts, the ones a
# scan uploaded here is likely to carry); a code string can hold any text, so any other value is "other".
_CODES = {
    "Modality": {"MR", "CT", "PT", "NM", "CR", "DX", "MG", "US", "XA", "RF", "OT", "SC", "SR", "SEG", "PR", "RTSTRUCT"},
    "BodyPartExamined": {"BRAIN", "HEAD", "HEADNECK", "SKULL", "NECK", "CSPINE", "TSPINE", "LSPINE", "SPINE",
                         "WHOLEBODY", "CHEST", "THORAX", "ABDOMEN", "PELVIS", "BREAST", "KNEE", "HAND", "FOOT",
                         "SHOULDER", "HIP", "EXTREMITY", "HEART", "LUNG", "LIVER", "KIDNEY", "PROSTATE"},
}


def _header(ds) -> dict[str, str]:
    """The de-identified header summary: coded values as codes, numbers as numbers, anything else left out;
    with the sequence derived from the header (not the descriptions it was derived from)."""
    summary = {}
    for keyword, label in _SAFE_HEADER.items():
        value = ds.get(keyword)
        if value in (None, ""):
            continue
        try:
            if keyword == "PixelSpacing":
                summary[label] = ", ".join(f"{float(v):g}" for v in value)
            elif keyword in _CODES:
                summary[label] = str(value) if str(value).strip().upper() in _CODES[keyword] else "other"
            else:
                summary[label] = f"{_first(value):g}"  # "4000", not pydicom's "4000.0"
        except (TypeError, ValueError):
            continue  # a malformed number is not shown rather than shown as the text it holds
    sequence = _sequence(ds)
    if sequence is not None:
        summary["sequence"] = sequence.name
    return summary


# PS3.3 C.7.6.1.1.7: YES when text such as the patient's name is burned into the pixels themselves.
BURNED_IN = ("The file says that text is burned into the image (BurnedInAnnotation YES): the image itself may "
             "show the patient's name or other identifiers, and so may the report made from it.")


def _burned_in(ds) -> list[str]:
    return [BURNED_IN] if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES" else []


def _pixel_spacing(ds) -> tuple[float, float] | None:
    """(row, column) spacing in mm from PixelSpacing (or ImagerPixelSpacing); None when absent or not positive."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            rows, cols = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if rows > 0 and cols > 0 and np.isfinite(rows) and np.isfinite(cols):
            return rows, cols
    return None


def _sequence(ds) -> HeaderSequence | None:
    return sequence_from_header({keyword: ds.get(keyword) for keyword in SEQUENCE_TAGS})


def _image_size(ds, name: str) -> tuple[int, int, int]:
    """(frames, rows, columns) from the header, refused when there is no image or it is over the size limits;
    nothing of the pixel data is decoded."""
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        kind = str(ds.get("Modality", "")) or "this object"
        raise UnreadableImageError(
            f"{name}: the DICOM file holds no image ({kind}; e.g. a report, structure set or presentation state)"
        )
    rows, cols, frames = int(ds.get("Rows", 0)), int(ds.get("Columns", 0)), int(ds.get("NumberOfFrames", 1) or 1)
    if rows * cols > MAX_PIXELS or frames > MAX_SLICES or rows * cols * frames > MAX_VOXELS:
        raise UnreadableImageError(f"{name}: {frames} frames of {cols}x{rows} pixels is over the size limit")
    if rows < 1 or cols < 1 or frames < 1:
        raise UnreadableImageError(f"{name}: the DICOM header gives no image size")
    samples, bits = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.get("BitsAllocated", 16) or 16)
    if samples not in (1, 3, 4) or bits not in (1, 8, 16, 32, 64):
        raise UnreadableImageError(f"{name}: the DICOM header is corrupt ({samples} samples of {bits} bits per pixel)")
    if rows * cols * frames * samples * max(1, bits // 8) > 2 * MAX_BYTES:
        raise UnreadableImageError(f"{name}: {frames} frames of {cols}x{rows} pixels is over the size limit")
    return frames, rows, cols


def _dicom_values(ds, name: str) -> np.ndarray:
    """Pixel values after the modality LUT: (frames, rows, cols) float32."""
    from pydicom.pixels import apply_modality_lut

    frames, rows, cols = _image_size(ds, name)
    try:
        pixels = ds.pixel_array
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for bad pixel data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        reason = f" ({syntax.name})" if syntax is not None else ""
        raise UnreadableImageError(
            f"{name}: the pixel data{reason} cannot be decoded: {str(error).splitlines()[0]}"
        ) from None
    if str(ds.get("PhotometricInterpretation", "")).startswith(("RGB", "YBR")) or pixels.shape[-1:] == (3,):
        pixels = pixels @ np.array([0.299, 0.587, 0.114])  # colour (secondary capture) to grey
    if frames == 1:
        pixels = pixels[None]
    return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32).reshape(-1, rows, cols)


def _window(ds) -> tuple[float, float] | None:
    if "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            centre, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        except (TypeError, ValueError):
            return None
        if width > 1:
            return centre, width
    return None


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if not high > low:
        high = low + 1.0
    scaled = (np.clip(np.nan_to_num(values, nan=low, posinf=high, neginf=low), low, high) - low) / (high - low)
    return (scaled * 255.0 + 0.5).astype(np.uint8)


def _percentile_window(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise UnreadableImageError("the image holds no finite pixel values")
    sample = finite[:: max(1, finite.size // 2_000_000)]  # a few million values are plenty
    low, high = np.percentile(sample, [0.5, 99.5])
    return float(low), float(high)


def _dicom_display(ds, values: np.ndarray) -> np.ndarray:
    """Apply the VOI LUT or window, else a percentile window; invert MONOCHROME1."""
    from pydicom.pixels import apply_voi_lut

    window = _window(ds)
    if "VOILUTSequence" in ds:
        values = np.asarray(apply_voi_lut(values, ds), dtype=np.float32)
        grey = _to_uint8(values, float(values.min()), float(values.max()))
    elif window:
        centre, width = window
        grey = _to_uint8(values, centre - width / 2, centre + width / 2)
    else:
        grey = _to_uint8(values, *_percentile_window(values))
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        grey = 255 - grey
    return grey


def _slice_position(ds) -> float | None:
    """Distance along the slice normal, from ImagePositionPatient and ImageOrientationPatient."""
    try:
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
        position = np.array([float(v) for v in ds.ImagePositionPatient])
    except (AttributeError, TypeError, ValueError):
        return None
    return float(np.dot(np.cross(orientation[:3], orientation[3:]), position))


_PATIENT_KEY = os.urandom(32)


def _patient_key(ds) -> str | None:
    patient = str(ds.get("PatientID", "") or "").strip()
    return hmac.new(_PATIENT_KEY, patient.encode(), "sha256").hexdigest() if patient else None


def _positional_spacing(positions: list[float | None], name: str) -> tuple[float | None, str | None]:
    """The spacing of sorted slice positions (mm), or None and why: missing positions, or uneven gaps."""
    if len(positions) < 2:
        return None, None
    if any(p is None for p in positions):
        return None, f"{name}: some slices have no position, so the distance between slices is not known"
    gaps = np.diff(np.asarray(positions, float))
    if np.any(gaps <= 0):
        return None, f"{name}: two slices lie at the same position, so the distance between slices is not known"
    # Rounding in the headers makes gaps differ by hundredths of a mm; more than 10 % is a gap or another stack.
    if gaps.max() - gaps.min() > 0.1 * float(np.median(gaps)):
        return None, (f"{name}: the slices are unevenly spaced ({gaps.min():.2f} to {gaps.max():.2f} mm apart), "
                      "so a volume cannot be measured from them")
    return float(np.mean(gaps)), None


def _header_spacing(ds) -> float | None:
    """SpacingBetweenSlices (else SliceThickness) of a multi-frame file, in mm; None when absent."""
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = abs(_first(ds.get(keyword)))
        except (TypeError, ValueError):
            continue
        if value > 0 and np.isfinite(value):
            return value
    return None


def _guarded(kind: str):
    """Turn any error a third-party reader raises on malformed data into a clear UnreadableImageError."""
    import functools

    def wrap(reader):
        @functools.wraps(reader)
        def guarded(data, name, *args):
            try:
                return reader(data, name, *args)
            except UnreadableImageError:
                raise
            except MemoryError:
                raise UnreadableImageError(f"{name}: the {kind} data is too large to read") from None
            except Exception as error:  # noqa: BLE001 - malformed files make parsers raise anything
                first_line = (str(error).splitlines() or [type(error).__name__])[0]
                raise UnreadableImageError(f"{name}: the {kind} file is corrupt ({first_line})") from None

        return guarded

    return wrap


@_guarded("DICOM")
def _read_dicom(data: bytes, name: str) -> Scan:
    ds = _dcmread(data, name)
    values = _dicom_values(ds, name)
    slices = _dicom_display(ds, values)
    labels = [f"frame {i + 1}" for i in range(len(slices))] if len(slices) > 1 else [name]
    spacing = _header_spacing(ds) if len(slices) > 1 else None
    return Scan(name, "dicom", slices, labels, _header(ds), _burned_in(ds), sequence=_sequence(ds),
                pixel_spacing=_pixel_spacing(ds), slice_spacing=spacing,
                spacing_note=None if spacing or len(slices) == 1 else
                f"{name}: the file gives no distance between its frames",
                patient_key=_patient_key(ds))


def read_study(files: list[tuple[str, bytes]]) -> Scan:
    """Several DICOM files of one series as one volume; see :func:`_read_study`."""
    try:
        return _read_study(files)
    except UnreadableImageError:
        raise
    except Exception as error:  # noqa: BLE001 - malformed files make pydicom raise anything
        raise UnreadableImageError(f"the DICOM series cannot be read ({str(error).splitlines()[0]})") from None


def _read_study(files: list[tuple[str, bytes]]) -> Scan:
    datasets, notes, unpacked = [], [], 0
    for name, data in files:
        try:
            data = _inflate_dicom(data, name)
        except UnreadableImageError as error:
            notes.append(f"skipped {error}")
            continue
        unpacked += len(data)  # what pydicom holds of the whole series, deflated files inflated
        if unpacked > 2 * MAX_BYTES:
            raise UnreadableImageError(f"the series holds over {2 * MAX_BYTES // 2**20} MB of DICOM data once "
                                       "unpacked; upload fewer files at a time")
        try:
            datasets.append((name, _dcmread(data, name)))
        except UnreadableImageError as error:
            notes.append(f"skipped {error}")
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in datasets if "PixelData" in ds}
    if len(series) > 1:
        raise UnreadableImageError(
            f"the files belong to {len(series)} different series; upload one series at a time"
        )
    # The whole series' size from the headers, before any pixel is decoded: small compressed files of large
    # flat frames would otherwise each become a float32 array first.
    sized = []
    for name, ds in datasets:
        try:
            sized.append((name, ds, _image_size(ds, name)))
        except UnreadableImageError as error:  # one bad slice does not sink the series
            notes.append(f"skipped {error}")
    slice_count = sum(frames for _, _, (frames, _, _) in sized)
    voxels = sum(frames * rows * cols for _, _, (frames, rows, cols) in sized)
    if slice_count > MAX_SLICES:
        raise UnreadableImageError(f"{slice_count} slices is over the {MAX_SLICES}-slice limit")
    if voxels > MAX_VOXELS:
        raise UnreadableImageError(f"the series' {slice_count} slices hold {voxels / 1e6:.0f} million pixels, over "
                                   f"the {MAX_VOXELS // 1_000_000} million limit; upload fewer slices at a time")
    frames = []
    for name, ds, _ in sized:
        try:
            frames.append((name, ds, _dicom_values(ds, name)))
        except UnreadableImageError as error:  # one bad slice does not sink the series
            notes.append(f"skipped {error}")
    if not frames:
        raise UnreadableImageError("the series holds no readable DICOM image" + (f" ({'; '.join(notes)})" if notes else ""))

    def order(item):
        name, ds, _ = item
        position = _slice_position(ds)
        return (0, position, name) if position is not None else (1, float(ds.get("InstanceNumber", 0) or 0), name)

    frames.sort(key=order)
    shapes = {v.shape[1:] for _, _, v in frames}
    if len(shapes) > 1:
        raise UnreadableImageError(f"the slices have different sizes ({', '.join(map(str, shapes))})")
    values = np.concatenate([v for _, _, v in frames])
    first = frames[0][1]
    # One window for the whole series, so slices are comparable.
    slices = _dicom_display(first, values)
    labels = []
    for name, ds, v in frames:
        position = _slice_position(ds)
        base = f"{position:.1f} mm" if position is not None else f"#{ds.get('InstanceNumber', '?')}"
        labels += [base] if len(v) == 1 else [f"{base} frame {i + 1}" for i in range(len(v))]
    if any(_burned_in(ds) for _, ds, _ in frames):
        notes.append(BURNED_IN)
    title = f"{len(frames)}-file series"
    if all(len(v) == 1 for _, _, v in frames):
        spacing, spacing_note = _positional_spacing([_slice_position(ds) for _, ds, _ in frames], title)
    else:
        spacing, spacing_note = None, f"{title}: a series of multi-frame files has no single distance between slices"
    patients = {_patient_key(ds) for _, ds, _ in frames}
    return Scan(title, "dicom", slices, labels, _header(first), notes, sequence=_sequence(first),
                pixel_spacing=_pixel_spacing(first), file_names=[name for name, _ in files],
                slice_spacing=spacing, spacing_note=spacing_note,
                patient_key=patients.pop() if len(patients) == 1 else None)


def group_series(files: list[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
    """DICOM files grouped by series (SeriesInstanceUID), in upload order; unreadable files stand alone."""
    import pydicom

    groups: dict[str, list[tuple[str, bytes]]] = {}
    alone = []
    for name, data in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                readable = _inflate_dicom(data, name)  # never let pydicom inflate a deflated file unbounded
                header = pydicom.dcmread(io.BytesIO(readable), stop_before_pixels=True, force=True)
            uid = str(header.get("SeriesInstanceUID", "")) or None
        except Exception:  # noqa: BLE001 - its own reading will say what is wrong
            uid = None
        if uid is None:
            alone.append([(name, data)])
        else:
            groups.setdefault(uid, []).append((name, data))
    return list(groups.values()) + alone


# ZIP methods read with a bounded output per step: zipfile's deflate reader passes its read size to zlib
# as the output limit, while its bzip2 and LZMA readers inflate each 4 KB of input whole (bzip2 runs turn a
# few KB into hundreds of MB); a DICOM export uses stored or deflate.
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
MAX_ZIP_MEMBERS = MAX_SLICES


def _unzip(data: bytes, name: str, budget: int = 2 * MAX_BYTES) -> list[tuple[str, bytes]]:
    """The files of a ZIP archive, each read in counted 1 MB steps against one running ``budget`` of
    bytes; refused at the first step past it (what the members declare is checked first, but not trusted)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
        raise UnreadableImageError(f"{name}: the ZIP archive is corrupt") from None
    members = [m for m in archive.infolist() if not m.is_dir() and not Path(m.filename).name.startswith(".")
               and "__MACOSX" not in m.filename]
    if len(members) > MAX_ZIP_MEMBERS:
        raise UnreadableImageError(f"{name}: the archive holds {len(members)} files, over the "
                                   f"{MAX_ZIP_MEMBERS}-file limit; upload one series at a time")
    odd = sorted({m.compress_type for m in members} - set(_ZIP_METHODS))
    if odd:
        raise UnreadableImageError(f"{name}: the archive uses a compression method this reader does not open "
                                   f"(method {', '.join(map(str, odd))}); make the ZIP with ordinary (deflate) "
                                   "compression")
    if sum(m.file_size for m in members) > budget:  # an honest archive too large is refused before reading
        raise UnreadableImageError(f"{name}: the archive unpacks to over {budget // 2**20} MB")
    files, used = [], 0
    for member in members:
        steps = []
        with archive.open(member) as stream:
            while step := stream.read(_CHUNK):
                used += len(step)
                if used > budget:
                    raise UnreadableImageError(f"{name}: the archive unpacks to over {budget // 2**20} MB")
                steps.append(step)
        files.append((member.filename, b"".join(steps)))
    return files


@_guarded("ZIP")
def _read_zip(data: bytes, name: str) -> Scan:
    dicoms = [(n, d) for n, d in _unzip(data, name) if is_dicom(d, n)]
    if not dicoms:
        raise UnreadableImageError(f"{name}: the ZIP archive holds no DICOM files")
    scan = read_study(dicoms)
    scan.name = name
    scan.file_names = [name, *scan.file_names]
    return scan


# --- NIfTI -----------------------------------------------------------------


def _gunzip(data: bytes, name: str) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, MAX_BYTES * 4)
    except zlib.error:
        raise UnreadableImageError(f"{name}: the .gz data is corrupt") from None
    if decompressor.unconsumed_tail:
        raise UnreadableImageError(f"{name}: the volume unpacks to over {MAX_BYTES * 4 // 2**20} MB")
    return out


def _orient(plane: np.ndarray) -> np.ndarray:
    """A RAS+ plane shown with the anterior/superior side up and patient right on image left."""
    return np.fliplr(np.rot90(plane))


@_guarded("NIfTI")
def _read_nifti(data: bytes, name: str, axis: int) -> Scan:
    import nibabel as nib

    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, name)
    try:
        image = nib.Nifti1Image.from_bytes(data)
    except Exception as error:  # noqa: BLE001 - nibabel raises many types for a bad header
        try:
            image = nib.Nifti2Image.from_bytes(data)
        except Exception:  # noqa: BLE001
            raise UnreadableImageError(f"{name}: not a readable NIfTI volume ({error})") from None
    if len(image.shape) == 4 and image.shape[3] == 1:
        image = image.slicer[..., 0]
    if int(np.prod(image.shape, dtype=np.int64)) > MAX_VOXELS:
        raise UnreadableImageError(f"{name}: a volume of {' x '.join(map(str, image.shape))} voxels is over the size limit")
    if len(image.shape) != 3:
        raise UnreadableImageError(
            f"{name}: a {len(image.shape)}-D NIfTI image (shape {image.shape}); "
            "this tool reads one 3-D volume (split a 4-D series into volumes first)"
        )
    image = nib.as_closest_canonical(image)
    try:
        volume = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as error:  # noqa: BLE001
        raise UnreadableImageError(f"{name}: the NIfTI voxel data cannot be read ({error})") from None
    grey = _to_uint8(volume, *_percentile_window(volume))
    planes = np.moveaxis(grey, axis, 0)
    slices = np.stack([_orient(p) for p in planes])
    zooms = image.header.get_zooms()
    header = {"voxel size (mm)": " x ".join(f"{z:.2f}" for z in zooms[:3]), "shape": " x ".join(map(str, image.shape))}
    plane_name = {v: k for k, v in AXES.items()}[axis]
    # _orient transposes each plane: its rows run along the second remaining axis.
    across, down = (float(z) for i, z in enumerate(zooms[:3]) if i != axis)
    spacing = (down, across) if down > 0 and across > 0 else None
    between = float(zooms[axis])
    return Scan(name, "nifti", slices, [f"{plane_name} {i + 1}" for i in range(len(slices))], header,
                pixel_spacing=spacing, slice_spacing=between if between > 0 and spacing else None,
                spacing_note=None if between > 0 and spacing else f"{name}: the header gives no voxel size")


# --- any file --------------------------------------------------------------


def read_scan(data: bytes, name: str = "upload", axis: int = AXES["axial"]) -> Scan:
    """Read any supported upload: image, DICOM, ZIP of a DICOM series, or NIfTI volume.

    Args:
        data: the whole file.
        name: file name, used to recognise the format and in messages.
        axis: for NIfTI volumes, the axis to slice along (see :data:`AXES`).

    Raises:
        UnreadableImageError: with a reason specific to the format.
    """
    if not data:
        raise UnreadableImageError(f"{name}: the file is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise UnreadableImageError(f"{name}: the file is {len(data) / 2**20:.0f} MB, over the "
                                   f"{MAX_BYTES // 2**20} MB limit")
    if is_nifti(data, name):
        scan = _read_nifti(data, name, axis)
    elif is_dicom(data, name):
        scan = _read_dicom(data, name)
    elif data[:4] == b"PK\x03\x04" and name.lower().endswith(".zip"):
        scan = _read_zip(data, name)
    else:
        grey, colour = decode_image_with_colour(data, name)
        scan = Scan(name, "image", grey[None], [name], colourfulness=colour)
    scan.file_names = list(dict.fromkeys([name, *scan.file_names]))
    return scan

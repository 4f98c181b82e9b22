import io
import zipfile

import numpy as np
import pytest

from brain_cnn.errors import UnreadableImageError
from brain_cnn.scan.read import AXES, read_scan, read_study

from conftest import encode, make_dicom, make_nifti, phantom


def ramp(rows=64, cols=64, low=0, high=1000):
    return np.linspace(low, high, rows * cols).reshape(rows, cols).astype(np.uint16)


def test_image_file_is_a_one_slice_scan():
    scan = read_scan(encode(phantom(64)), "a.png")
    assert scan.kind == "image" and scan.slices.shape == (1, 64, 64) and not scan.is_volume


def test_dicom_window_and_rescale_are_applied():
    # Stored 0..1000, rescaled to -1000..0 (slope 1, intercept -1000); window centre -500, width 200.
    scan = read_scan(make_dicom(ramp(), intercept=-1000, window=(-500, 200)), "w.dcm")
    values = scan.slices[0]
    assert values.min() == 0 and values.max() == 255
    share_inside = np.mean((values > 0) & (values < 255))
    assert share_inside == pytest.approx(0.2, abs=0.02)  # 200 of the 1000 range is inside the window


def test_dicom_without_window_uses_a_percentile_window_and_monochrome1_is_inverted():
    normal = read_scan(make_dicom(ramp()), "n.dcm").slices[0]
    inverted = read_scan(make_dicom(ramp(), photometric="MONOCHROME1"), "i.dcm").slices[0]
    assert normal[0, 0] == 0 and normal[-1, -1] == 255
    assert np.array_equal(inverted, 255 - normal)


def test_header_summary_is_de_identified():
    scan = read_scan(make_dicom(ramp()), "h.dcm")
    assert scan.header["modality"] == "MR" and scan.header["body part"] == "BRAIN"
    assert scan.header["pixel spacing (mm)"] == "0.5, 0.5" and float(scan.header["slice thickness (mm)"]) == 5
    text = repr(scan)
    for secret in ("Doe", "PID-0042", "19700101"):
        assert secret not in text


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"], ids=["RLE", "JPEG2000-lossless"])
def test_compressed_transfer_syntaxes(syntax):
    pixels = (phantom(64).astype(np.uint16) * 4)
    plain = read_scan(make_dicom(pixels), "p.dcm").slices[0]
    compressed = read_scan(make_dicom(pixels, compress=syntax), "c.dcm").slices[0]
    assert np.array_equal(plain, compressed)  # lossless


def test_multi_frame_dicom_is_a_volume():
    frames = np.stack([ramp() * (i + 1) // 3 for i in range(3)])
    scan = read_scan(make_dicom(frames), "mf.dcm")
    assert scan.slices.shape == (3, 64, 64) and scan.slice_labels == ["frame 1", "frame 2", "frame 3"]
    assert scan.slices[0].mean() < scan.slices[2].mean()  # one window for all frames


def test_series_is_sorted_by_position_not_by_upload_order():
    files = [(f"s{i}.dcm", make_dicom(np.full((32, 32), 100 * (z + 1), np.uint16), position=z * 5.0, instance=9 - z))
             for i, z in enumerate([2, 0, 1])]
    scan = read_study(files)
    assert scan.slice_labels == ["0.0 mm", "5.0 mm", "10.0 mm"]
    means = scan.slices.reshape(3, -1).mean(axis=1)
    assert means[0] < means[1] < means[2]


def test_zip_of_a_series_and_mixed_series_message():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for z in range(4):
            archive.writestr(f"series/IM{z}", make_dicom(ramp(32, 32), position=float(z)))
        archive.writestr("__MACOSX/._IM0", b"junk")
    assert read_scan(buffer.getvalue(), "study.zip").slices.shape == (4, 32, 32)
    mixed = [("a.dcm", make_dicom(ramp(), series="1.1")), ("b.dcm", make_dicom(ramp(), series="1.2"))]
    with pytest.raises(UnreadableImageError, match="2 different series"):
        read_study(mixed)


@pytest.mark.parametrize("gz", [False, True])
def test_nifti_axes_and_orientation(gz):
    volume = np.zeros((20, 30, 40), np.float32)  # x (left-right), y (posterior-anterior), z (inferior-superior)
    volume[:, 25:, :] = 100  # anterior band
    volume[15:, :, :] += 50  # right side brighter
    name = "head.nii.gz" if gz else "head.nii"
    axial = read_scan(make_nifti(volume, gz), name, AXES["axial"])
    assert axial.kind == "nifti" and axial.slices.shape == (40, 30, 20)
    plane = axial.slices[len(axial.slices) // 2]
    assert plane[:5].mean() > plane[-5:].mean()  # anterior at the top
    assert plane[:, :5].mean() > plane[:, -5:].mean()  # patient right on image left (radiological)
    assert read_scan(make_nifti(volume, gz), name, AXES["sagittal"]).slices.shape == (20, 40, 30)


@pytest.mark.parametrize("make,message", [
    (lambda: make_dicom(ramp(), pixel_data=False), "holds no image"),
    (lambda: b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 4, "not a readable DICOM"),
    (lambda: make_dicom(ramp())[:-3000], "pixel data .* cannot be decoded"),
    (lambda: make_nifti(np.zeros((4, 4, 4, 3))), "4-D NIfTI"),
    (lambda: make_nifti(np.zeros((8, 8, 8)))[:200], "not a readable NIfTI"),
    (lambda: b"", "empty"),
], ids=["dicom-no-pixels", "dicom-corrupt", "dicom-truncated", "nifti-4d", "nifti-truncated", "empty"])
def test_bad_clinical_files_get_their_own_message(make, message):
    name = "x.nii" if "nifti" in message.lower() else "x.dcm"
    with pytest.raises(UnreadableImageError, match=message):
        read_scan(make(), name)


def test_the_mri_sequence_is_read_from_the_header():
    assert read_scan(make_dicom(ramp()), "t1c.dcm").sequence.name == "T1C+"  # "AX T1 POST"
    scan = read_scan(make_dicom(ramp(), SeriesDescription="", RepetitionTime=4000, EchoTime=100), "t2.dcm")
    assert scan.sequence.name == "T2" and scan.sequence.evidence == "TR 4000 ms, TE 100 ms"
    assert scan.header["TR (ms)"] == "4000" and scan.header["TE (ms)"] == "100"
    assert read_scan(make_dicom(ramp(), SeriesDescription="survey"), "s.dcm").sequence is None
    assert read_scan(encode(phantom(64)), "x.png").sequence is None  # an image has no header


def test_pixel_spacing_from_dicom_and_nifti():
    scan = read_scan(make_dicom(phantom(64), PixelSpacing=[0.5, 0.75]), "a.dcm")
    assert scan.pixel_spacing == (0.5, 0.75)
    assert read_scan(encode(phantom(64)), "c.png").pixel_spacing is None
    nifti = read_scan(make_nifti(np.stack([phantom(32)] * 4, axis=-1)), "d.nii", AXES["axial"])
    assert nifti.pixel_spacing == (1.0, 1.0)


def test_a_series_knows_its_slice_spacing_and_says_why_when_it_cannot():
    even = [(f"{z}.dcm", make_dicom(ramp(32, 32), position=2.5 * z, instance=z)) for z in range(4)]
    scan = read_study(even)
    assert scan.slice_spacing == pytest.approx(2.5) and scan.spacing_note is None
    uneven = [(f"{z}.dcm", make_dicom(ramp(32, 32), position=p, instance=z)) for z, p in enumerate((0, 2.5, 5, 10))]
    scan = read_study(uneven)
    assert scan.slice_spacing is None and "unevenly spaced (2.50 to 5.00 mm apart)" in scan.spacing_note
    unplaced = [(f"{z}.dcm", make_dicom(ramp(32, 32), instance=z)) for z in range(3)]
    assert "no position" in read_study(unplaced).spacing_note
    volume = read_scan(make_nifti(np.zeros((8, 8, 5))), "v.nii")
    assert volume.slice_spacing == 1.0

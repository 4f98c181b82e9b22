"""Nothing that can name a patient leaves the session: a DICOM with a canary in every identifying field,
its file names and its free-text descriptions goes through the reader, the PDF, the worklist CSV and the
audit trail, and no canary comes out."""

import io
import json
import shutil
import subprocess
import zipfile

import numpy as np
import pytest

from brain_cnn.inference.assessment import assess, assess_series
from brain_cnn.inference.predictor import Predictor
from brain_cnn.reports import audit
from brain_cnn.reports.deidentify import case_label, clean_label, redact
from brain_cnn.reports.pdf import case_report_pdf
from brain_cnn.reports.worklist import audit_entry, worklist_csv, worklist_row
from brain_cnn.scan.read import BURNED_IN, read_scan

from conftest import make_dicom, phantom

CANARY = "CANARYQX"
# The identifying elements of PS3.15 Annex E's basic profile that a header is likely to hold, plus the
# free-text descriptions its clean-descriptors option is about.
IDENTIFYING = {
    "PatientName": f"{CANARY}^NAME", "PatientID": f"{CANARY}-ID", "PatientBirthDate": "19700101",
    "OtherPatientIDs": f"{CANARY}-OTHER", "PatientAddress": f"{CANARY} STREET", "AccessionNumber": f"{CANARY}ACC",
    "InstitutionName": f"{CANARY} HOSPITAL", "InstitutionAddress": f"{CANARY} ROAD",
    "ReferringPhysicianName": f"{CANARY}^REF", "PerformingPhysicianName": f"{CANARY}^PERF",
    "OperatorsName": f"{CANARY}^OP", "StationName": f"{CANARY}ST", "StudyDescription": f"{CANARY} STUDY",
    "SeriesDescription": f"AX T2 FSE {CANARY}", "ProtocolName": f"T2 {CANARY} PROTOCOL",
    "ContrastBolusAgent": f"{CANARY} GADO", "PatientComments": f"{CANARY} COMMENT",
    "ImageComments": f"{CANARY} IMAGE", "StudyID": f"{CANARY}S", "DeviceSerialNumber": f"{CANARY}SN",
    "BodyPartExamined": f"BRAIN {CANARY}",  # a code string holding text: not shown
}
FILE_NAME = f"{CANARY}_DOE_JANE_1970.dcm"


def canary_dicom(z: float = 0.0, **extra) -> bytes:
    pixels = (phantom(64, lesion=True, seed=int(z)).astype(np.uint16) * 4)
    return make_dicom(pixels, position=z, instance=int(z) + 1, **{**IDENTIFYING, **extra})


def no_canary(text: str, where: str) -> None:
    assert CANARY.lower() not in text.lower(), f"the canary left the session in {where}: {text[:2000]}"


def pdf_text(pdf: bytes, tmp_path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed to read the PDF back")
    (tmp_path / "r.pdf").write_bytes(pdf)
    return subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout


def test_the_reader_keeps_no_identifying_text_and_shows_the_derived_sequence():
    scan = read_scan(canary_dicom(), FILE_NAME)
    no_canary(json.dumps(scan.header), "the header summary")
    assert scan.header["sequence"] == "T2" and scan.header["modality"] == "MR"
    assert scan.header["body part"] == "other"  # its value was not one of the defined terms
    assert scan.sequence.evidence == "the series description"


def test_no_canary_in_the_pdf_worklist_or_audit_trail_of_a_file_or_a_zipped_series(tiny_model, tmp_path):
    predictor = Predictor(tiny_model)
    single = assess(predictor, canary_dicom(), FILE_NAME)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for z in range(3):
            archive.writestr(f"{CANARY}_STUDY/{CANARY}_IM{z}.dcm", canary_dicom(float(z)))
        archive.writestr(f"{CANARY}_STUDY/{CANARY}_BROKEN.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00" * 9)
    zipped = assess(predictor, buffer.getvalue(), f"{CANARY}_SERIES.zip")
    assert any(f"{CANARY}_BROKEN" in note for note in zipped.notes)  # the reader names the file on screen ...
    series = assess_series(predictor, [(f"{CANARY}_{z}.dcm", canary_dicom(float(z))) for z in range(3)])
    trail = tmp_path / "audit.jsonl"
    for case in (single, zipped, series):
        chosen = case.overall()
        overlay = np.dstack([chosen.display] * 3)
        pdf = case_report_pdf(case, chosen, overlay, "Grad-CAM", predictor.card.name, "f" * 64)
        text = pdf_text(pdf, tmp_path)
        no_canary(text, f"the PDF of {case.name}")  # ... and nothing that leaves the session does
        assert f"Case {case_label(case)}" in " ".join(text.split())
        no_canary(worklist_csv([worklist_row(case)]), "the worklist CSV")
        audit.record(audit_entry(case, predictor.card.name, "f" * 64), trail, user="dr.who", address="10.0.0.1",
                     session="s1")
    no_canary(trail.read_text(), "the audit trail")


def test_a_typed_label_names_the_case_and_an_unsafe_one_is_not_used(tiny_model):
    case = assess(Predictor(tiny_model), canary_dicom(), FILE_NAME)
    assert case_label(case) == case.sha256[:12]
    case.label = "ACC 2024-113"
    assert case_label(case) == "ACC 2024-113"
    assert worklist_row(case)["case"] == "ACC 2024-113"
    for unsafe in ("=HYPERLINK(\"http://x\")", "a/../b", "x" * 41, "", "  "):
        assert clean_label(unsafe) is None
    assert redact(f"skipped {FILE_NAME}: corrupt", case) == "skipped [case ACC 2024-113]: corrupt"
    case.file_names = ["scan.dcm", "a.png"]
    note = "T2 scan (the series description); a.png: unreadable; data.png kept"
    assert redact(note, case) == "T2 scan (the series description); [case ACC 2024-113]: unreadable; data.png kept"


def test_burned_in_annotation_is_a_warning(tiny_model):
    scan = read_scan(canary_dicom(BurnedInAnnotation="YES"), "b.dcm")
    assert BURNED_IN in scan.notes
    assert BURNED_IN not in read_scan(canary_dicom(BurnedInAnnotation="NO"), "n.dcm").notes

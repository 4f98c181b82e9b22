import subprocess
import shutil

import numpy as np
import pytest

from brain_cnn.inference.assessment import CaseAssessment, SliceAssessment
from brain_cnn.inference.predictor import SliceCall
from brain_cnn.reports.pdf import case_report_pdf

from conftest import phantom


def case(name="DOE_JANE_0042.dcm"):
    grey = phantom(128, lesion=True)
    slice_ = SliceAssessment("slice 3", grey, grey[:48, :48, None],
                             SliceCall({"glioma": 0.55, "meningioma": 0.40, "notumor": 0.05}))
    return CaseAssessment(name, "dicom", "ab" * 32, [slice_, slice_], {"modality": "MR", "body part": "BRAIN"},
                          ["T2 scan (TR 4000 ms, TE 100 ms). A 'no tumour' call on this scan does not rule a tumour out."])


def test_pdf_holds_the_call_and_the_model_but_no_identifiers(tmp_path):
    c = case()
    overlay = np.dstack([c.slices[0].display] * 3)
    pdf = case_report_pdf(c, c.slices[0], overlay, "Grad-CAM", "brain-tumor-mri", "f" * 64,
                          heat_map_note="Against expert tumour boxes, the peak of Grad-CAM fell inside the tumour for 22%.")
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed to read the text back")
    (tmp_path / "r.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True).stdout
    assert "Tumour suspected: most likely glioma (55%)" in text
    assert "not a diagnosis" in text and "f" * 64 in text and "Grad-CAM" in text
    assert "Close call" in text and "modality: MR" in text
    assert "Note: T2 scan (TR 4000 ms, TE 100 ms)." in text
    assert "the peak of Grad-CAM fell inside the tumour for 22%" in text
    assert "DOE" not in text and "JANE" not in text


def test_pdf_says_why_a_tumour_first_call_is_not_the_largest_class(tmp_path):
    grey = phantom(128, lesion=True)
    slice_ = SliceAssessment("x", grey, grey[:48, :48, None],
                             SliceCall({"glioma": 0.3, "meningioma": 0.3, "notumor": 0.4}, decision="tumour first"))
    pdf = case_report_pdf(CaseAssessment("a.png", "image", "ab" * 32, [slice_]), slice_, None, None, "m", "f" * 64)
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed to read the text back")
    (tmp_path / "r.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True).stdout
    assert "Called glioma: the tumour classes together hold 60%, more than no tumour (40%)." in " ".join(text.split())


def test_the_longest_notes_still_fit_on_one_page():
    import re

    from brain_cnn.reports.sentences import trust_note

    by_class = {label: {"Occlusion": {"pointing_game": 0.44, "peak_off_brain": 0.18}}
                for label in ("glioma", "meningioma", "pituitary")}
    note = trust_note({"methods": {"Occlusion": {"images": 161, "pointing_game": 0.34, "peak_off_brain": 0.09}},
                       "by_class": by_class}, "Occlusion")
    c = case()
    c.notes.extend(["On T2 slices of brain-tumor-44c (a source it was not trained on) this model found 33% of 1041 "
                    "tumour slices and kept 98% of 267 normal slices normal. A 'no tumour' call on this scan does not "
                    "rule a tumour out."] * 2)
    pdf = case_report_pdf(c, c.slices[0], np.dstack([c.slices[0].display] * 3), "Occlusion", "brain-tumor-mri",
                          "f" * 64, heat_map_note=note)
    assert "skull" in note and len(re.findall(rb"/Type /Page\b(?!s)", pdf)) == 1


def pdf_text(pdf: bytes, tmp_path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed to read the text back")
    (tmp_path / "r.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True).stdout
    return " ".join(text.split())  # a caption under a narrow image wraps


def test_a_tumour_map_models_pdf_carries_the_outline_and_its_area(tiny_map_model, tmp_path):
    import re

    from conftest import make_dicom

    from brain_cnn.inference.assessment import assess
    from brain_cnn.inference.predictor import Predictor

    c = assess(Predictor(tiny_map_model), make_dicom(phantom(128, lesion=True).astype(np.uint16) * 4), "scan.dcm")
    chosen = c.slices[0]
    area = chosen.outline_text()
    assert area.startswith("Tumour outline: ") and area.endswith(" mm²")
    shown = case_report_pdf(c, chosen, None, None, "tiny-maps", "f" * 64)  # the outline view: no heat map
    with_heat = case_report_pdf(c, chosen, np.dstack([chosen.display] * 3), "Grad-CAM", "tiny-maps", "f" * 64,
                                heat_map_note="Grad-CAM has not been measured against expert tumour boxes.")
    assert len(re.findall(rb"/Type /Page\b(?!s)", with_heat)) == 1
    text = pdf_text(shown, tmp_path)
    assert area + "." in text and "where the tumour map reaches 50%" in text and "heat map" not in text
    text = pdf_text(with_heat, tmp_path)
    assert area + "." in text and "where the tumour map reaches 50%" in text
    assert "Grad-CAM heat map for 'glioma'" in text and "has not been measured" in text

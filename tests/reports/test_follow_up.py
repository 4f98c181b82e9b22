"""The follow-up's pictures, table and PDF, on hand-made tumour maps whose sizes are known."""

import shutil
import subprocess

import numpy as np
import pytest

from brain_cnn.inference.assessment import CaseAssessment
from brain_cnn.inference.study import compare, measure_case
from brain_cnn.reports.follow_up import LONGEST, OUTLINE, follow_up_pdf, largest_slice_image, measure_rows

from conftest import mapped_slice


def study(sides, name="DOE_JANE_PRIOR.nii", spacing=(1.0, 1.0)) -> CaseAssessment:
    return CaseAssessment(name, "nifti", "cd" * 32, [mapped_slice(side, spacing=spacing) for side in sides],
                          slice_spacing=2.0, file_names=[name])


def test_the_largest_slice_is_drawn_with_its_outline_and_diameters():
    case = study([0, 6, 8, 6])
    measure = measure_case(case)
    assert measure.largest_slice == 2 and measure.regions == 1
    image = largest_slice_image(case, measure)
    assert image.shape == (48, 48, 3)
    pixels = image.reshape(-1, 3).astype(int)
    for colour in (OUTLINE, LONGEST):  # drawn anti-aliased: some pixels near the colour itself
        assert (np.abs(pixels - colour).max(axis=1) < 40).sum() >= 4, colour
    assert largest_slice_image(study([0, 0]), measure_case(study([0, 0]))) is None


def test_the_table_and_the_pdf_carry_the_change_and_no_file_name(tmp_path):
    prior, current = study([0, 8, 8, 0]), study([0, 4, 4, 0], name="DOE_JANE_NOW.nii")
    before, now = measure_case(prior), measure_case(current)
    change = compare(now, before)
    assert change.category == "partial response"  # (2x4)² against (2x8)²: a quarter of the product
    rows = measure_rows(now, before, change)
    assert [r["measure"] for r in rows][0] == "tumour volume" and rows[0]["change"] == "-75.0 %"
    pdf = follow_up_pdf((current, now), (prior, before), change, "tiny-maps", "f" * 64)
    assert pdf.startswith(b"%PDF")
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed to read the PDF back")
    (tmp_path / "f.pdf").write_bytes(pdf)
    text = " ".join(subprocess.run(["pdftotext", str(tmp_path / "f.pdf"), "-"], capture_output=True,
                                   text=True).stdout.split())
    assert "Partial response (product -75.0 %, volume -75.0 %) by RANO's thresholds." in text
    assert "not the RANO assessment" in text and "DOE" not in text


def test_the_trust_sentence_reads_the_models_study_figures():
    import json
    from pathlib import Path

    from brain_cnn.reports.follow_up import trust_sentence

    assert "has not been measured" in trust_sentence(None)
    report = json.loads((Path(__file__).parents[2] / "models" / "brain-tumor-maps" / "follow_up.json").read_text())
    said = trust_sentence(report)
    assert said.startswith("Against expert masks on 14 LGG test patients")
    assert "FLAIR -24 % (worst 88 % off)" in said and "complete response in 3 of 42" in said

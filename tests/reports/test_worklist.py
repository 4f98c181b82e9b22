from brain_cnn.inference.assessment import CaseAssessment
from brain_cnn.reports.worklist import audit_entry, worklist_csv, worklist_row

from conftest import mapped_slice as mapped
from test_pdf import case


def test_a_tumour_map_models_row_has_the_area_of_its_headline_slice():
    study = CaseAssessment("v.dcm", "dicom", "ab" * 32, [mapped(4, 0.6, (0.5, 0.5)), mapped(10, 0.95, (0.5, 0.5))])
    row = worklist_row(study)
    assert row["slice"] == "x" and row["tumour probability"] == 0.95
    assert row["tumour area (mm²)"] == 100.0 and row["tumour area (pixels)"] == 400
    image = worklist_row(CaseAssessment("a.png", "image", "cd" * 32, [mapped(10)]))
    assert image["tumour area (mm²)"] is None and image["tumour area (pixels)"] == 400  # no pixel spacing in a PNG
    assert "tumour area (mm²)" in worklist_csv([row, image]).splitlines()[0]
    audited = audit_entry(study, "m", "c" * 64)  # the trail keeps the area shown, as numbers
    assert audited["tumour_area_mm2"] == 100.0 and audited["tumour_area_pixels"] == 400


def test_a_classifiers_row_has_no_area_columns():
    assert not any(key.startswith("tumour area") for key in worklist_row(case("x.dcm")))
    assert not any(key.startswith("tumour_area") for key in audit_entry(case("x.dcm"), "m", "c" * 64))

"""The Diagnose page over a tumour-map network: the outline first, with the area beside the call."""


import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from brain_cnn.app_support import OUTLINE_VIEW, where_views
from brain_cnn.explain.explainer import METHODS
from brain_cnn.inference.assessment import OUTLINE_CAPTION

from conftest import app_test, models_dir_holding, encode, make_dicom, make_nifti, phantom

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def map_models_dir(tiny_map_model, tmp_path_factory):
    return models_dir_holding(tiny_map_model, tmp_path_factory.mktemp("app-map-models"))


@pytest.fixture
def app(map_models_dir, monkeypatch, tmp_path):
    return app_test(map_models_dir, monkeypatch, tmp_path)


def upload(at: AppTest, files):
    at.file_uploader[0].set_value(files)
    return at.run()


def calls(at: AppTest) -> list[str]:
    return [e.value for kind in ("success", "warning", "error") for e in getattr(at, kind)]


def image_captions(at: AppTest) -> list[str]:
    return [shown.caption for element in at.get("image") for shown in element.proto.imgs]


def test_the_outline_comes_first_only_for_a_tumour_map_model():
    assert where_views(True) == [OUTLINE_VIEW, *METHODS]
    assert where_views(False) == list(METHODS)


def test_an_upload_gets_its_outline_and_area_with_the_call(app):
    at = app.run()
    assert at.sidebar.selectbox[0].value == "tiny-maps"
    assert at.selectbox[0].value == OUTLINE_VIEW and at.slider[0].disabled  # no heat map: no opacity
    at = upload(at, [("scan.png", encode(phantom(128, lesion=True)), "image/png")])
    assert not at.exception
    said = next(t for t in calls(at) if "Tumour suspected" in t)
    assert "\nTumour outline: " in said and said.endswith(" pixels")  # a PNG gives no pixel spacing
    assert OUTLINE_CAPTION in image_captions(at)
    assert not any("Grad-CAM" in c for c in image_captions(at))
    # Grad-CAM is still there to choose, and explains the call of the map network.
    at.selectbox[0].set_value("Grad-CAM").run()
    assert not at.exception and not at.slider[0].disabled
    assert any(c.startswith("Grad-CAM for 'glioma'") for c in image_captions(at))
    assert any(c.value.startswith("Grad-CAM has not been measured") for c in at.caption)
    assert any("\nTumour outline: " in t for t in calls(at))  # the area stays with the call


def test_a_dicom_with_its_pixel_spacing_gets_the_area_in_mm2_and_a_normal_scan_no_outline(app):
    at = upload(app.run(), [("scan.dcm", make_dicom(phantom(128, lesion=True).astype(np.uint16) * 4),
                             "application/dicom")])
    assert not at.exception
    assert any(t.endswith(" mm²") and "\nTumour outline: " in t for t in calls(at))
    at = upload(at, [("normal.png", encode(phantom(128, seed=1)), "image/png")])
    assert not at.exception
    assert any(t.startswith("No tumour seen") and t.endswith("\nNo tumour outlined") for t in calls(at))


def test_a_volumes_slices_rank_by_probability_or_tumour_area_and_the_worklist_has_the_area(app):
    volume = np.stack([phantom(96, lesion=i in (2, 5), seed=i) for i in range(8)], axis=-1).astype(np.float32)
    at = upload(app.run(), [("head.nii", make_nifti(volume), "application/octet-stream"),
                            ("a.png", encode(phantom(96)), "image/png")])
    assert not at.exception
    assert {"tumour area (mm²)", "tumour area (pixels)"} <= set(at.dataframe[0].value.columns)
    at.selectbox(key="case-shown").set_value(0).run()
    ranking = next(r for r in at.radio if r.label == "Rank slices by")
    assert ranking.value == "probability" and ranking.options == ["probability", "tumour area"]
    assert any(m.value == "**Most suspicious slices**" for m in at.markdown)
    ranking.set_value("tumour area").run()
    assert not at.exception
    assert any(m.value == "**Largest tumour outlines**" for m in at.markdown)
    jumps = [b.label for b in at.button if b.label.startswith("slice ")]
    assert jumps and all(label.endswith(" mm²)") or label.endswith(" pixels)") for label in jumps)
    assert {int(label.split()[1]) for label in jumps[:2]} == {3, 6}  # the slices with a lesion come first


def test_follow_up_measures_both_studies_and_refuses_another_patient_until_confirmed(app):
    def series(patient: str):
        return [(f"{patient}{z}.dcm", make_dicom(phantom(64, lesion=True, seed=z).astype(np.uint16) * 4,
                                                 position=2.0 * z, instance=z + 1, series=f"1.2.{ord(patient)}",
                                                 PatientID=f"P-{patient}"), "application/dicom") for z in range(4)]

    at = app.run()
    at.switch_page("app_pages/follow_up.py")
    at = at.run()
    assert not at.exception and at.title[0].value == "Follow-up"
    at.file_uploader(key="current-study").set_value(series("A"))
    at = at.run()
    assert not at.exception
    assert list(at.dataframe[0].value["measure"])[0] == "tumour volume"
    at.file_uploader(key="prior-study").set_value(series("A"))
    at = at.run()
    assert not at.exception
    assert any(s.value.startswith(("Stable", "No tumour outlined in either study")) for s in at.success)
    assert set(at.dataframe[0].value.columns) == {"measure", "prior", "current", "change"}
    at.file_uploader(key="prior-study").set_value(series("B"))
    at = at.run()
    assert any("different patients" in e.value for e in at.error)
    at.checkbox(key="same-patient").check().run()
    assert any("user confirmed" in w.value for w in at.warning)
    assert at.get("download_button")

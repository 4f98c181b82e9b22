import numpy as np
import pytest

from brain_cnn.inference.assessment import SliceAssessment, assess, assess_series
from brain_cnn.errors import UnreadableImageError
from brain_cnn.inference.predictor import SliceCall

from conftest import encode, make_dicom, make_nifti, phantom
from conftest import mapped_slice as mapped


def make(probabilities, refusal=None, decision="top class"):
    return SliceAssessment("x", np.zeros((4, 4), np.uint8), np.zeros((4, 4, 1), np.uint8),
                           SliceCall(probabilities, refusal, decision=decision))


def test_summary_says_tumour_no_tumour_or_cannot_assess():
    tumour = make({"glioma": 0.9, "meningioma": 0.05, "notumor": 0.03, "pituitary": 0.02})
    assert tumour.summary().startswith("Tumour suspected: most likely glioma (90%)")
    assert "no tumour 3%" in tumour.summary()
    clear = make({"glioma": 0.01, "meningioma": 0.01, "notumor": 0.97, "pituitary": 0.01})
    assert clear.summary().startswith("No tumour seen")
    assert make({"a": 0.6, "b": 0.4}).summary() == "Most likely a (60%)."
    refused = make({"notumor": 0.9, "glioma": 0.1}, "cannot assess: a colour image")
    assert refused.summary() == "Cannot assess: a colour image." and refused.label is None
    assert refused.flags == ["cannot assess"] and refused.tumour_probability is None


def test_tumour_first_calls_and_explains_the_tumour_and_says_why():
    example = {"glioma": 0.30, "meningioma": 0.25, "notumor": 0.40, "pituitary": 0.05}
    top, first = make(example), make(example, decision="tumour first")
    assert (top.label, top.class_index, top.decision_note()) == ("notumor", 2, None)
    assert (first.label, first.class_index) == ("glioma", 0)
    assert first.decision_note() == "Called glioma: the tumour classes together hold 60%, more than no tumour (40%)."
    assert first.summary().startswith("Tumour suspected: most likely glioma (30%)")
    # Several normal classes outweighing the largest class, a tumour: the call and the note say no tumour.
    normals = make({"Astrocitoma T1": 0.40, "_NORMAL T1": 0.35, "_NORMAL T2": 0.25}, decision="tumour first")
    assert normals.label == "_NORMAL T1" and normals.decision_note() == (
        "Called _NORMAL T1: no tumour holds 60%, more than the tumour classes together (40%).")
    # Where both rules agree there is nothing to say; a refused slice explains its top class.
    assert make({"glioma": 0.7, "notumor": 0.3}, decision="tumour first").decision_note() is None
    refused = make(example, "cannot assess: a colour image", "tumour first")
    assert refused.decision_note() is None and refused.class_index == 2


@pytest.mark.parametrize("probs,expected", [
    ([0.02, 0.98], []),
    ([0.35, 0.65], ["low confidence"]),
    ([0.25, 0.75], []),
    ([0.41, 0.59], ["low confidence", "close call"]),
    ([0.28, 0.72], []),
    ([0.39, 0.61], ["low confidence"]),
])
def test_uncertain_calls_are_flagged(probs, expected):
    assert make(dict(zip(["notumor", "tumor"], probs))).flags == expected


def test_a_file_and_a_volume_are_assessed_through_the_predictor(tiny_model):
    from brain_cnn.inference.predictor import Predictor

    predictor = Predictor(tiny_model)
    predictor.gate = None  # this test is about the slices, not about what the tiny model's gate refuses
    case = assess(predictor, encode(phantom(64)), "scan.png")
    assert not case.is_volume and case.slices[0].model_input.shape == (48, 48, 1)
    volume = np.stack([phantom(64, lesion=i % 2 == 0, seed=i) for i in range(6)], axis=-1)
    nifti = assess(predictor, make_nifti(volume.astype(np.float32)), "v.nii")
    assert nifti.kind == "nifti" and len(nifti.slices) == 6 and nifti.start_index() == 3
    top = nifti.most_suspicious(2)
    scores = [s.tumour_probability for s in nifti.slices]
    assert scores[top[0]] == max(s for s in scores if s is not None)
    series = assess_series(predictor, [(f"{z}.dcm", make_dicom(phantom(64, seed=int(z)).astype(np.uint16), position=z))
                                       for z in (3.0, 1.0, 2.0)])
    assert [s.label_text for s in series.slices] == ["1.0 mm", "2.0 mm", "3.0 mm"]
    assert len(series.sha256) == 64
    assert series.sequence == "T1C+" and case.sequence is None  # an image file has no header
    # The series says it is a contrast-enhanced T1; the tiny model was screened on no other source.
    assert series.notes == ["T1C+ scan (the series description). This model has not been screened on T1C+ "
                            "slices of another source, so how well it finds tumours on them is not known."]


def test_unreadable_bytes_raise_the_readers_message(tiny_model):
    from brain_cnn.inference.predictor import Predictor

    with pytest.raises(UnreadableImageError, match="empty"):
        assess(Predictor(tiny_model), b"", "empty.png")


def test_the_outline_is_said_with_its_area_in_mm2_or_pixels():
    # The map's 10 x 10 square is 20 x 20 on the 48-pixel crop: 400 slice pixels, 100 mm² at 0.5 mm.
    assert mapped(10, spacing=(0.5, 0.5)).outline_text() == "Tumour outline: 100 mm²"
    assert mapped(10).outline_text() == "Tumour outline: 400 pixels"
    assert mapped(20).outline_text() == "Tumour outline: 1,600 pixels"
    assert mapped(0, tumour=0.1).outline_text() == "No tumour outlined"
    refused = mapped(10, refusal="cannot assess: a colour image")
    assert refused.tumour_area is None and refused.outline_text().startswith("No tumour outline")
    assert make({"notumor": 0.9, "glioma": 0.1}).outline_text() is None  # a network without maps says nothing


def test_the_outline_is_drawn_on_the_head_crop_and_not_on_a_refused_slice():
    image = mapped(10).outline_image()
    assert image.shape == (48, 48, 3) and image.any()
    assert not mapped(10, refusal="cannot assess: a colour image").outline_image().any()
    assert make({"notumor": 0.9, "glioma": 0.1}).outline_image() is None


def test_a_study_ranks_its_slices_by_probability_or_by_tumour_area():
    from brain_cnn.inference.assessment import RANKINGS, CaseAssessment

    slices = [mapped(0, 0.2), mapped(4, 0.99), mapped(12, 0.7), mapped(8, 0.95),
              mapped(12, 0.8, refusal="cannot assess: a colour image"), mapped(12, 0.9)]
    case = CaseAssessment("v.nii", "nifti", "ab" * 32, slices)
    assert case.has_map and RANKINGS == ("probability", "tumour area")
    assert case.top_slices("probability", 3) == case.most_suspicious(3) == [1, 3, 5]
    # Largest outline first; equal areas by probability; refused and empty slices never.
    assert case.largest_tumours(10) == case.top_slices("tumour area", 10) == [5, 2, 3, 1]
    assert case.slice_button_text(5) == "slice 6 (tumour 90%, 576 pixels)"
    assert case.slice_button_text(0) == "slice 1 (tumour 20%, nothing outlined)"
    with pytest.raises(ValueError, match="unknown ranking"):
        case.top_slices("size")


def test_a_study_without_maps_ranks_by_probability_as_before():
    from brain_cnn.inference.assessment import CaseAssessment

    case = CaseAssessment("v.nii", "nifti", "ab" * 32,
                          [make({"notumor": 0.9, "glioma": 0.1}), make({"notumor": 0.3, "glioma": 0.7})])
    assert not case.has_map and case.largest_tumours() == []
    assert case.slice_button_text(1) == "slice 2 (tumour 70%)"


def test_a_tumour_map_model_outlines_a_lesion_with_its_call(tiny_map_model):
    from brain_cnn.inference.predictor import Predictor

    predictor = Predictor(tiny_map_model)
    lesion = assess(predictor, encode(phantom(128, lesion=True)), "scan.png").slices[0]
    assert lesion.label == "glioma" and lesion.outline_text().endswith(" pixels")
    assert lesion.tumour_area.pixels > 100 and lesion.outline_image().shape == (*lesion.display.shape, 3)
    dicom = assess(predictor, make_dicom(phantom(128, lesion=True).astype(np.uint16) * 4), "scan.dcm").slices[0]
    assert dicom.pixel_spacing == (0.5, 0.5) and dicom.outline_text().endswith(" mm²")
    normal = assess(predictor, encode(phantom(128, seed=1)), "normal.png").slices[0]
    assert normal.label == "notumor" and normal.outline_text() == "No tumour outlined"

import numpy as np
import pytest

from brain_cnn.inference.assessment import SliceAssessment, assess, assess_series
from brain_cnn.errors import UnreadableImageError
from brain_cnn.inference.predictor import SliceCall

from conftest import encode, make_dicom, make_nifti, phantom


def make(probabilities, refusal=None):
    return SliceAssessment("x", np.zeros((4, 4), np.uint8), np.zeros((4, 4, 1), np.uint8),
                           SliceCall(probabilities, refusal))


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
    assert series.notes == ["T1C+ scan (series description 'AX T1 POST'). This model has not been screened on T1C+ "
                            "slices of another source, so how well it finds tumours on them is not known."]


def test_unreadable_bytes_raise_the_readers_message(tiny_model):
    from brain_cnn.inference.predictor import Predictor

    with pytest.raises(UnreadableImageError, match="empty"):
        assess(Predictor(tiny_model), b"", "empty.png")

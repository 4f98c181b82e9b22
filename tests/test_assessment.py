import numpy as np
import pytest

from brain_cnn.assessment import Assessment, assess
from brain_cnn.errors import UnreadableImageError

from conftest import encode, phantom


def make(probabilities):
    return Assessment(name="x", display=np.zeros((4, 4), np.uint8), model_input=np.zeros((4, 4, 1), np.uint8),
                      probabilities=probabilities, warnings=[])


def test_summary_says_tumour_or_no_tumour():
    tumour = make({"glioma": 0.9, "meningioma": 0.05, "notumor": 0.03, "pituitary": 0.02})
    assert tumour.summary().startswith("Tumour suspected: most likely glioma (90%)")
    assert "no tumour 3%" in tumour.summary()
    clear = make({"glioma": 0.01, "meningioma": 0.01, "notumor": 0.97, "pituitary": 0.01})
    assert clear.summary().startswith("No tumour seen")
    other = make({"a": 0.6, "b": 0.4})
    assert other.summary() == "Most likely a (60%)."


class FixedPredictor:
    image_size = 32
    classes = ["notumor", "tumor"]

    def __init__(self, probs):
        self.probs = np.array([probs])

    def predict_inputs(self, images):
        assert images.shape == (1, 32, 32, 1)
        return self.probs


@pytest.mark.parametrize("probs,expected", [
    ([0.02, 0.98], []),
    ([0.35, 0.65], ["Low confidence"]),
    ([0.25, 0.75], []),
    ([0.41, 0.59], ["Low confidence", "Close call"]),
])
def test_uncertain_calls_are_flagged(probs, expected):
    result = assess(FixedPredictor(probs), encode(phantom(64)), "scan.png")
    assert [w.split(":")[0].split(" between")[0] for w in result.warnings] == expected
    assert result.label == "tumor" and result.model_input.shape == (32, 32, 1)


def test_unreadable_bytes_raise_the_decoders_message():
    with pytest.raises(UnreadableImageError, match="empty"):
        assess(FixedPredictor([0.5, 0.5]), b"", "empty.png")

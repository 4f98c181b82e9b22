"""The app shows the conformal set beside the call, with what its guarantee means; the worklist carries it and
sorts by it."""

import numpy as np

from brain_cnn.files import sha256_file
from brain_cnn.inference.conformal import CONFORMAL_FILE, Conformal
from brain_cnn.model.card import load_card

from conftest import app_test, constant_model, encode, phantom

PROBABILITIES = {"glioma": 0.55, "meningioma": 0.35, "notumor": 0.05, "pituitary": 0.05}


def _calibrated(folder):
    """Calibration scores on which the constant answer's 90 % set is glioma or meningioma: a tenth of the
    scores lie above 0.75, so a class of 0.35 or more is in the set and one of 0.05 is not."""
    labels = np.repeat(np.arange(4), 50)
    true = np.tile(np.r_[np.full(35, 0.9), np.full(15, 0.25)], 4)  # 30 % of each class's scores are 0.75
    probabilities = np.repeat(((1 - true) / 3)[:, None], 4, axis=1)
    probabilities[np.arange(200), labels] = true
    Conformal.fit(probabilities, labels, list(PROBABILITIES)).save(folder / CONFORMAL_FILE)
    card = load_card(folder)
    card.conformal = {"file": CONFORMAL_FILE, "sha256": sha256_file(folder / CONFORMAL_FILE)}
    card.save(folder)


def _two_uploads(monkeypatch, tmp_path):
    """The app over a calibrated constant model, two slices uploaded."""
    models = tmp_path / "models"
    _calibrated(constant_model(models / "sets", PROBABILITIES))
    at = app_test(models, monkeypatch, tmp_path).run()
    at.file_uploader[0].set_value([(f"s{i}.png", encode(phantom(128, seed=i), "PNG"), "image/png")
                                   for i in range(2)])
    return at.run()


def test_the_set_is_shown_beside_the_call_and_in_the_worklist(monkeypatch, tmp_path):
    at = _two_uploads(monkeypatch, tmp_path)
    assert not at.exception
    shown = [i.value for i in at.info]
    assert any(v.startswith("**90% set: glioma or meningioma**") and "not for this one scan" in v for v in shown)
    table = at.dataframe[0].value
    assert list(table["prediction set"]) == ["90% set: glioma or meningioma"] * 2
    assert list(table["set size"]) == [2, 2]
    order = at.selectbox(key="worklist-order")
    order.set_value("largest prediction set first").run()
    assert not at.exception


def test_screening_mode_flags_tumour_possible_with_its_bound(monkeypatch, tmp_path):
    at = _two_uploads(monkeypatch, tmp_path)
    assert "screening" not in at.dataframe[0].value  # off until asked for
    at = at.toggle(key="screening").set_value(True).run()
    assert not at.exception
    # The constant answer's tumour probability, 95 %, is above any threshold these calibration scores give.
    assert any(e.value.startswith("Screening: tumour possible (tumour probability 95.0%") and "at most 5% of tumours"
               in e.value for e in at.error)
    assert list(at.dataframe[0].value["screening"]) == ["tumour possible"] * 2

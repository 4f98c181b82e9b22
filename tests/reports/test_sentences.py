from brain_cnn.inference.decision import DECISIONS
from brain_cnn.reports.sentences import DECISION_RULES, decision_note, decision_rule, outline_note


def test_the_outline_note_says_what_the_outline_is_worth():
    assert "not been measured" in outline_note(None)
    assert "not been measured" in outline_note({"official_test_masks": {"images": 0, "mean_dice": None}})
    measured = {"official_test_masks": {"images": 787, "mean_dice": 0.7123, "peak_inside": 0.912},
                "lgg_test_masks": {"mean_dice": 0.41},
                "official_test_removal": {"tumour_probability_below_half_when_painted_out": 0.63}}
    note = outline_note(measured)
    assert "787 official test tumours" in note and "0.71" in note and "91%" in note
    assert "0.41" in note and "63%" in note and note.endswith("not as a measured margin.")


def test_a_tumour_map_models_limitations_come_from_its_held_out_figures():
    from brain_cnn.reports.sentences import limitations

    report = {"splits": {"test": {"count": 10, "accuracy": 0.9}}, "temperature": 1.0}
    card = {"dataset": {"name": "a + b", "test": "a's official Testing split"}}
    assert not any("outline" in note for note in limitations(card, report))
    measured = {"official_test_masks": {"images": 787, "mean_dice": 0.53, "peak_inside": 0.741},
                "lgg_test_masks": {"mean_dice": 0.37},
                "official_test_removal": {"images": 779, "tumour_probability_below_half_when_painted_out": 0.054},
                "yes_no_screening": {"overall": {"sensitivity": 0.851, "specificity": 0.944}}}
    notes = limitations(card, report, measured)
    assert "tested on a's official Testing split" in notes[1]
    text = " ".join(notes)
    assert "mean Dice of 0.53 on 787" in text and "0.37" in text and "95% of 779" in text
    assert "the yes/no set 85% / 94%" in text


def test_every_decision_rule_is_said_in_words():
    assert set(DECISION_RULES) == set(DECISIONS)  # sentences imports nothing of the package: this keeps them in step
    assert decision_rule("tumour first").startswith("Tumour first: a slice is called a tumour when")


def test_the_decision_note_says_why_the_call_is_not_the_largest_class():
    assert decision_note("glioma", 0.6, 0.4, True) == (
        "Called glioma: the tumour classes together hold 60%, more than no tumour (40%).")
    assert decision_note("glioma", 0.5, 0.5, True).endswith("hold 50%, as much as no tumour (50%).")
    assert decision_note("glioma", 0.503, 0.497, True).endswith("hold 50.3%, more than no tumour (49.7%).")
    assert decision_note("_NORMAL T2", 0.45, 0.55, False) == (
        "Called _NORMAL T2: no tumour holds 55%, more than the tumour classes together (45%).")


def test_the_card_says_what_the_sets_were_calibrated_on_and_what_screening_lets_through():
    from brain_cnn.reports.sentences import conformal_text

    assert "none" in conformal_text({})
    said = conformal_text({"method": "split conformal", "calibration_images": 512, "coverage": 0.9,
                           "per_class": {"glioma": 119, "notumor": 141}, "always_in_set": ["pituitary"],
                           "screening": {"missed_rate": 0.05, "threshold": 0.0321}})
    assert "512 images" in said and "glioma 119" in said and "90% set" in said
    assert "ever leave out: pituitary" in said and "3.2% or more" in said and "at most 5%" in said
    unavailable = conformal_text({"calibration_images": 12, "per_class": {}, "screening": {
        "missed_rate": 0.05, "unavailable": "needs at least 20 calibration tumours"}})
    assert "No screening mode: needs at least 20 calibration tumours." in unavailable


def test_the_combination_is_said_in_words_with_its_look_when_it_has_one():
    from brain_cnn.reports.sentences import combination_text

    one = {"weights": [0.1, 0.7], "intercept": -0.25, "type_weights": [0.2, 1.3], "fitted_on": {"images": 12}}
    text = combination_text(one)
    assert "sigmoid(0.100 × the classifiers' tumour log-odds + 0.700 × the tumour-map network's − 0.250)" in text
    assert "weights 0.200 and 1.300" in text and "12 validation images" in text and "looks like" not in text
    look = {**one, "familiar": {"weights": [0.4, 0.5], "intercept": 0.5, "type_weights": [0.9, 0.1]},
            "look": {"weights": [1.0], "intercept": 0.0, "home": ["brain-tumor-mri"]}}
    text = combination_text(look)
    assert "training source (brain-tumor-mri)" in text
    assert text.index("0.400 ×") < text.index("for other looks") < text.index("0.100 ×")
    assert "network's + 0.500" in text and "weights 0.900 and 0.100" in text

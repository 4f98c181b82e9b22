from brain_cnn.reports.sentences import outline_note


def test_the_outline_note_says_what_the_outline_is_worth():
    assert "not been measured" in outline_note(None)
    assert "not been measured" in outline_note({"official_test_masks": {"images": 0, "mean_dice": None}})
    measured = {"official_test_masks": {"images": 787, "mean_dice": 0.7123, "peak_inside": 0.912},
                "lgg_test_masks": {"mean_dice": 0.41},
                "official_test_removal": {"tumour_probability_below_half_when_painted_out": 0.63}}
    note = outline_note(measured)
    assert "787 official test tumours" in note and "0.71" in note and "91%" in note
    assert "0.41" in note and "63%" in note and note.endswith("not as a measured margin.")

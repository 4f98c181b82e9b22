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

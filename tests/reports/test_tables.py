from brain_cnn.reports.tables import tumour_map_rows


def _group(tumour: int, normal: int, sensitivity: float, specificity: float | None) -> dict:
    return {"tumour": tumour, "no_tumour": normal, "sensitivity": sensitivity, "specificity": specificity,
            "roc_auc": None}


def test_tumour_map_rows_give_the_maps_and_each_held_out_source_and_sequence():
    measured = {"official_test_masks": {"images": 787, "mean_dice": 0.56, "median_dice": 0.66, "peak_inside": 0.79},
                "lgg_test_masks": {"images": 0, "mean_dice": None, "median_dice": None, "peak_inside": None},
                "yes_no_screening": {"overall": _group(141, 18, 0.84, 0.89), "left_out_as_copies": 94},
                "lgg_test_screening": {"overall": _group(540, 822, 0.67, 0.9), "left_out_as_copies": 0,
                                       "by_sequence": {"FLAIR": _group(180, 274, 0.83, 0.89)}}}
    maps, screening = tumour_map_rows(measured)
    assert [m["masks"] for m in maps] == ["brain-tumor-mri official Testing"]  # no LGG images: no row
    assert [(r["data set"], r["sequence"]) for r in screening] == [
        ("brain-tumor-yes-no", "all"), ("brain-tumor-lgg test patients", "all"),
        ("brain-tumor-lgg test patients", "FLAIR")]
    assert screening[0]["left out (in training)"] == 94 and screening[2]["sensitivity"] == 0.83

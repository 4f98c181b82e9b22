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


def test_coverage_rows_flag_a_source_where_the_sets_fall_short_by_more_than_chance():
    import numpy as np

    from brain_cnn.evaluation.coverage import set_figures
    from brain_cnn.inference.conformal import Conformal
    from brain_cnn.reports.tables import coverage_rows

    classes = ["glioma", "notumor"]
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    right = np.where(labels == 0, 0.85, 0.15) + rng.normal(0, 0.1, 400)
    probabilities = np.stack([np.clip(right, 0.01, 0.99), 1 - np.clip(right, 0.01, 0.99)], axis=1)
    fitted = Conformal.fit(probabilities[:200], labels[:200], classes)
    alike = set_figures(fitted, probabilities[200:], labels[200:], classes)
    shifted = set_figures(fitted, probabilities[200:, ::-1], labels[200:], classes)  # another scanner, in effect
    assert alike["coverage_short"] is False and shifted["coverage_short"] is True
    rows = coverage_rows(alike, {"elsewhere": {"conformal": {"overall": shifted, "by_sequence": {"T2": shifted}}}})
    assert [(r["data"], r["group"]) for r in rows] == [("test split", "all"), ("test split", "glioma"),
                                                       ("test split", "notumor"), ("elsewhere", "all"),
                                                       ("elsewhere", "T2")]
    assert [r["short of the level"] for r in rows if r["data"] == "elsewhere"] == [True, True]
    assert rows[0]["short of the level"] is False and rows[0]["90% set covers the class"] == alike["coverage"]

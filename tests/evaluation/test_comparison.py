import numpy as np

from brain_cnn.data.label_maps import NO_TUMOUR, TUMOUR
from brain_cnn.evaluation.comparison import outline_figures, sensitivity_at_specificity, table


def test_sensitivity_is_read_where_the_specificity_is_at_least_the_level():
    normals = np.arange(10) / 10.0  # 0.0 .. 0.9
    tumours = np.array([0.95, 0.85, 0.75, 0.5, 0.1])
    score = np.concatenate([tumours, normals])
    truth = np.array([True] * 5 + [False] * 10)
    # 90 % specificity: at most one normal (0.9) above the threshold 0.8: tumours 0.95 and 0.85.
    assert sensitivity_at_specificity(truth, score, 0.9) == 0.4
    assert sensitivity_at_specificity(truth, score, 1.0) == 0.2  # above every normal: only 0.95
    assert sensitivity_at_specificity(truth, score, 0.0) == 1.0
    assert sensitivity_at_specificity(truth[:5], score[:5]) is None  # no normals: no specificity to hold


def test_outline_figures_count_what_the_app_would_show():
    side = 32
    images = np.zeros((3, side, side, 1), np.uint8)
    images[:, 4:28, 6:26] = 120  # a head
    maps = np.zeros((3, 16, 16), np.float32)
    maps[0, 6:9, 4:7] = 0.9  # tumour slice: outline on the tumour
    maps[1, 6:9, 4:7] = 0.9  # no-tumour slice, called tumour: the outline is shown
    masks = np.zeros((3, side, side, 1), np.uint8)
    masks[0, 12:18, 8:14] = 255
    kinds = np.array([TUMOUR, NO_TUMOUR, NO_TUMOUR])
    figures = outline_figures(maps, images, masks, np.array([True, False, False]), kinds,
                              np.array([True, True, False]), np.array(["T2"] * 3))["T2"]
    assert figures["no_tumour_slices_with_an_outline_shown"] == {"share": 0.5, "of": 2}
    assert figures["masked_tumours_without_an_outline_shown"] == {"share": 0.0, "of": 1}
    assert figures["masked_tumours_whose_outline_misses_the_tumour"] == {"share": 0.0, "of": 1}


def test_the_table_puts_the_models_side_by_side():
    group = {"tumours": 3, "normals": 2, "sensitivity": 0.5, "specificity": 1.0, "sensitivity_at_90_specificity": 0.6}
    entry = {"all": group, "by_sequence": {"T1": group}}
    model = {"yes/no set": {"all": group}, "44-class test split": entry,
             "4-class official test": {"all": group, "accuracy": 0.9, "images": 10}}
    report = {"sets": {"yes/no set": {}, "44-class test split": {}, "4-class official test": {}},
              "models": {"a": model, "b": model}}
    text = table(report)
    assert "| 44-class test split, T1 (3 tumours) | 60.0 (50.0 / 100.0) | 60.0 (50.0 / 100.0) |" in text
    assert "90.0 (10 images)" in text

import numpy as np

from brain_cnn.reports import dashboards
from brain_cnn.evaluation.metrics import classification_metrics

CLASSES = ["glioma", "notumor", "pituitary"]


def split_report():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    probs = np.array([[.8, .1, .1], [.3, .6, .1], [.1, .8, .1], [.1, .7, .2], [.1, .1, .8], [.2, .2, .6], [.5, .2, .3]])
    return classification_metrics(y, probs, CLASSES, [f"{i}.png" for i in range(7)])


def test_confusion_matrix_counts_and_row_shares():
    split = split_report()
    counts = dashboards.confusion_matrix_figure(split, CLASSES)
    assert np.array_equal(np.asarray(counts.data[0].z), np.array([[1, 1, 0], [0, 2, 0], [1, 0, 2]]))
    shares = np.asarray(dashboards.confusion_matrix_figure(split, CLASSES, normalise=True).data[0].z)
    assert np.allclose(shares.sum(axis=1), 1)
    assert shares[2, 0] == 1 / 3
    assert "of row" in counts.data[0].hovertemplate


def test_curve_figures_have_one_trace_per_class():
    split = split_report()
    assert len(dashboards.roc_figure(split).data) == 4  # three classes and the chance line
    assert "AUC" in dashboards.roc_figure(split).data[0].name
    assert len(dashboards.precision_recall_figure(split).data) == 3
    reliability = dashboards.reliability_figure(split)
    assert sum(reliability.data[0].customdata) == 7


def test_history_and_tables():
    history = {"best_epoch": 2, "epochs": [{"epoch": 1, "accuracy": 0.5, "val_accuracy": 0.4, "loss": 1, "val_loss": 1.2},
                                           {"epoch": 2, "accuracy": 0.8, "val_accuracy": 0.7, "loss": .5, "val_loss": .6}]}
    figure = dashboards.history_figure(history, "loss")
    assert [t.name for t in figure.data] == ["train", "validation"] and list(figure.data[1].y) == [1.2, 0.6]
    fine_tune = {**history, "initialised_from": {"name": "base", **history}}
    figure = dashboards.history_figure(fine_tune, "loss")
    names = [t.name for t in figure.data]
    assert names == ["train (start: base)", "validation (start: base)", "train", "validation"]
    assert list(figure.data[2].x) == [3, 4]  # the fine-tune continues from the base run's kept epoch (2)
    rows = dashboards.per_class_rows(split_report())
    assert [r["class"] for r in rows] == CLASSES + ["macro average", "weighted average"]
    bars = dashboards.probability_bars({"a": 0.2, "b": 0.8})
    assert bars.data[0].marker.color[1] != bars.data[0].marker.color[0]
    called = dashboards.probability_bars({"glioma": 0.3, "meningioma": 0.3, "notumor": 0.4}, called="glioma")
    assert list(called.data[0].marker.color) == [bars.data[0].marker.color[1], *[bars.data[0].marker.color[0]] * 2]


def test_pointing_game_table_has_a_row_per_tumour_type():
    by_class = {"glioma": {"Grad-CAM": {"images": 3, "pointing_game": 0.5}, "Score-CAM": {"images": 3, "pointing_game": 1.0}},
                "pituitary": {"Grad-CAM": {"images": 2, "pointing_game": 0.0}, "Score-CAM": {"images": 2, "pointing_game": 0.5}}}
    assert dashboards.pointing_by_class(by_class) == [
        {"tumour type": "glioma", "images": 3, "Grad-CAM": 0.5, "Score-CAM": 1.0},
        {"tumour type": "pituitary", "images": 2, "Grad-CAM": 0.0, "Score-CAM": 0.5},
    ]
    by_class["glioma"]["Grad-CAM"]["peak_off_brain"] = 0.25  # another figure; a report without it gives None
    assert dashboards.pointing_by_class(by_class, "peak_off_brain")[0] == {
        "tumour type": "glioma", "images": 3, "Grad-CAM": 0.25, "Score-CAM": None}


def test_removal_table_has_a_row_per_tumour_type_and_one_for_all():
    removal = {"by_class": {"glioma": {"images": 3, "called_intact": 1.0, "called_tumour_hidden": 0.67,
                                       "called_elsewhere_hidden": 1.0}},
               "all": {"images": 3, "called_intact": 1.0, "called_tumour_hidden": 0.67,
                       "called_elsewhere_hidden": None}}
    rows = dashboards.removal_rows(removal)
    assert [r["tumour type"] for r in rows] == ["glioma", "all"]
    assert rows[0] == {"tumour type": "glioma", "images": 3, "same call, intact": 1.0, "tumour painted out": 0.67,
                       "same box painted out elsewhere": 1.0}
    assert rows[1]["same box painted out elsewhere"] is None


def test_a_rate_on_few_images_says_how_few():
    from brain_cnn.reports.dashboards import share

    assert share(2, 0) == "2 of 2"
    assert share(331, 4) == "98.81%"
    assert share(0, 0) == "n/a"


def test_a_tumour_map_studys_profile_has_its_tumour_area_along_the_slices():
    from brain_cnn.inference.assessment import CaseAssessment

    from conftest import mapped_slice as mapped

    study = CaseAssessment("v.dcm", "dicom", "ab" * 32, [mapped(0, 0.1, (0.5, 0.5)), mapped(10, 0.9, (0.5, 0.5))])
    figure = dashboards.slice_profile_figure(study, 1)
    area = next(trace for trace in figure.data if trace.name == "tumour area")
    assert list(area.y) == [0.0, 100.0] and figure.layout.yaxis2.title.text == "tumour area (mm²)"

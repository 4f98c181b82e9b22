import numpy as np
import pytest

from brain_cnn.data.painting import brain_region
from brain_cnn.evaluation.explanations import Box, box_in_model_input, score_heatmap


def test_scores_of_a_heat_map_on_its_box():
    heat = np.zeros((10, 10), np.float32)
    heat[2:4, 2:4] = 1.0
    heat[8, 8] = 0.2
    score = score_heatmap(heat, (2, 2, 4, 4))
    assert score["hit"] == 1.0 and score["energy"] == pytest.approx(4 / 4.2) and score["iou"] == 1.0
    miss = score_heatmap(heat, (6, 6, 10, 10))
    assert miss["hit"] == 0.0 and miss["iou"] == 0.0 and "off_brain" not in miss
    brain = np.zeros((10, 10), bool)
    assert score_heatmap(heat, (2, 2, 4, 4), brain)["off_brain"] == 1.0
    brain[2:4, 2:4] = True
    assert score_heatmap(heat, (6, 6, 10, 10), brain)["off_brain"] == 0.0


def test_peaks_off_the_brain_are_judged_by_the_mask_a_brain_only_network_sees_through():
    from conftest import phantom

    from brain_cnn.model.layers import BrainOnly

    image = phantom(160, lesion=True, margin=0.02)
    seen = np.asarray(BrainOnly().brain_mask(image[None, ..., None].astype(np.float32) / 255))[0, ..., 0] > 0.5
    brain = brain_region(image)
    assert brain[80, 80] and not brain[2, 2] and np.array_equal(brain, seen)
    assert brain_region(np.zeros((160, 160), np.uint8)) is None


def test_box_follows_the_head_crop_and_resize():
    # 200x100 image; head crop from x=50 (so dx=-50) into a 100x100 square resized to 50.
    box = Box("a.jpg", "glioma", x_center=0.5, y_center=0.5, width=0.1, height=0.2)
    assert box_in_model_input(box, (100, 200), (-50, 0), 100, 50) == (20, 20, 30, 30)


@pytest.mark.slow
def test_explain_eval_command_writes_into_the_report(tiny_model, tmp_path, capsys):
    import json
    import shutil

    from brain_cnn.cli import main

    from conftest import encode, phantom

    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    for label, seed in (("tumor", 0), ("notumor", 1)):
        (tmp_path / "data" / label).mkdir(parents=True)
        (tmp_path / "data" / label / "a.png").write_bytes(encode(phantom(96, lesion=True, seed=seed)))
    (tmp_path / "data" / "boxes.csv").write_text("path,label,x_center,y_center,width,height\n"
                                                 "tumor/a.png,tumor,0.5,0.5,0.3,0.3\nmissing.png,tumor,0.5,0.5,0.1,0.1\n"
                                                 "notumor/a.png,notumor,0.3,0.3,0.2,0.2\n")
    assert main(["explain-eval", "--model", str(folder), "--boxes", str(tmp_path / "data" / "boxes.csv")]) == 0
    report = json.loads((folder / "evaluation.json").read_text())
    methods, by_class = report["explanations"]["methods"], report["explanations"]["by_class"]
    assert set(methods) == {"Grad-CAM", "Grad-CAM++", "Score-CAM", "Occlusion"} and methods["Occlusion"]["images"] == 2
    assert len(report["explanations"]["skipped"]) == 1
    assert set(by_class) == {"tumor", "notumor"} and by_class["tumor"]["Score-CAM"]["images"] == 1
    for method, row in methods.items():  # two types of one image each: the overall figure is their mean
        for key in ("pointing_game", "energy_in_box", "iou", "peak_off_brain"):
            assert row[key] == pytest.approx((by_class["tumor"][method][key] + by_class["notumor"][method][key]) / 2,
                                             abs=1e-4)
    out = capsys.readouterr().out
    assert "pointing game" in out and "by tumour type: notumor (1, box " in out and "peak off the brain by" in out
    removal = report["explanations"]["removal"]
    assert removal["all"]["images"] == 2 and set(removal["by_class"]) == {"tumor", "notumor"}
    assert removal["by_class"]["tumor"]["called_tumour_hidden"] in (0.0, 1.0)
    assert "same call with the tumour painted out" in out and "; all (2) " in out
    # The box's share of the model input: 0.3 x 0.3 of the image, more of the head crop.
    (x0, y0, x1, y1), = [u["box"] for u in report["explanations"]["per_image"] if u["label"] == "tumor"]
    share = report["explanations"]["box_share_by_class"]["tumor"]
    assert share == pytest.approx((x1 - x0) * (y1 - y0) / 48**2, abs=1e-4) and share > 0.09


def test_the_trust_note_gives_the_measured_figures_or_says_there_are_none():
    from brain_cnn.reports.sentences import trust_note

    explanations = {"methods": {"Occlusion": {"images": 161, "pointing_game": 0.342}},
                    "by_class": {"glioma": {"Occlusion": {"pointing_game": 0.11}},
                                 "pituitary": {"Occlusion": {"pointing_game": 0.443}}}}
    assert trust_note(explanations, "Occlusion") == (
        "Against expert tumour boxes, the peak of Occlusion fell inside the tumour for 34% of 161 test images "
        "(glioma 11%, pituitary 44%). Read the map as the region that mattered to the call, not as an outline "
        "of a tumour.")
    for missing in (None, {}, explanations):
        assert trust_note(missing, "Score-CAM").startswith("Score-CAM has not been measured against expert tumour boxes")
    # A peak on the skull or scalp is named for the types where it happens to a tenth or more.
    explanations["methods"]["Occlusion"]["peak_off_brain"] = 0.09
    explanations["by_class"]["glioma"]["Occlusion"]["peak_off_brain"] = 0.18
    explanations["by_class"]["pituitary"]["Occlusion"]["peak_off_brain"] = 0.02
    assert ("(glioma 11%, pituitary 44%), and on the skull, the scalp or outside the head for 9% (glioma 18%). "
            in trust_note(explanations, "Occlusion"))
    explanations["by_class"]["glioma"]["Occlusion"]["peak_off_brain"] = 0.05
    assert "skull" not in trust_note(explanations, "Occlusion")
    # A type whose call survives painting the tumour out is named, with the share.
    explanations["removal"] = {"by_class": {"glioma": {"called_tumour_hidden": 0.97},
                                            "pituitary": {"called_tumour_hidden": 0.44}}}
    assert ("With the tumour painted out of the slice, the network still made the same call (glioma 97% of those "
            "images)" in trust_note(explanations, "Occlusion"))
    explanations["removal"]["by_class"]["glioma"]["called_tumour_hidden"] = 0.3
    assert "painted out" not in trust_note(explanations, "Occlusion")


def test_painting_the_box_over_removes_a_lesion_and_leaves_the_rest():
    from conftest import phantom

    from brain_cnn.evaluation.explanations import hide_box

    image = phantom(96, lesion=True, seed=3)[..., None]
    bright = np.argwhere(image[..., 0] > 225)  # the lesion (240; the skull is 200)
    (y0, x0), (y1, x1) = bright.min(0), bright.max(0) + 1
    box = (int(x0) - 2, int(y0) - 2, int(x1) + 2, int(y1) + 2)
    painted = hide_box(image, box)
    assert painted.shape == image.shape and painted.dtype == image.dtype
    assert painted[y0:y1, x0:x1].max() < 150  # the lesion is gone, painted in the brain's grey (90) ...
    outside = np.ones(image.shape[:2], bool)
    outside[box[1]:box[3], box[0]:box[2]] = False
    assert np.array_equal(painted[outside], image[outside])  # ... and nothing else changed


def test_control_boxes_have_the_size_stay_in_the_brain_and_clear_of_the_tumour():
    from brain_cnn.evaluation.explanations import control_boxes

    brain = np.zeros((64, 64), bool)
    brain[8:56, 8:56] = True
    tumour = (10, 10, 22, 20)
    boxes = control_boxes(brain, tumour, 8, np.random.default_rng(0))
    assert len(boxes) == 8 and len(set(boxes)) > 1
    for x0, y0, x1, y1 in boxes:
        assert (x1 - x0, y1 - y0) == (12, 10) and brain[(y0 + y1) // 2, (x0 + x1) // 2]
        assert x0 >= 22 or x1 <= 10 or y0 >= 20 or y1 <= 10
    assert control_boxes(brain, (0, 0, 64, 64), 8, np.random.default_rng(0)) == []  # no room: none


def test_the_removal_test_tells_a_network_that_needs_the_lesion_from_one_that_does_not():
    import keras

    from conftest import phantom

    from brain_cnn.data.painting import brain_region
    from brain_cnn.evaluation.explanations import removal_test

    image = phantom(64, lesion=True, seed=5)[..., None]
    bright = np.argwhere(image[..., 0] > 225)
    (y0, x0), (y1, x1) = bright.min(0), bright.max(0) + 1
    box = (int(x0) - 2, int(y0) - 2, int(x1) + 2, int(y1) + 2)
    # "tumour" when the brightest pixel is brighter than the skull: a network that needs the lesion ...
    inputs = keras.Input((64, 64, 1))
    peak = keras.layers.GlobalMaxPooling2D()(inputs)
    needs = keras.Model(inputs, keras.layers.Dense(2, activation="softmax",
                                                   kernel_initializer=keras.initializers.Constant([[-0.5, 0.5]]),
                                                   bias_initializer=keras.initializers.Constant([112.5, -112.5]))(peak))
    # ... and one that calls "tumour" whatever it sees.
    constant = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros",
                                                      bias_initializer=keras.initializers.Constant([0.0, 5.0]))(peak))
    brain = brain_region(image[..., 0])
    first = removal_test(needs, image, box, 1, brain, np.random.default_rng(0))
    assert first["called_intact"] == 1.0 and first["called_tumour_hidden"] == 0.0
    assert first["called_elsewhere_hidden"] == 1.0
    assert first["p_elsewhere_hidden"] > 0.9 > 0.1 > first["p_tumour_hidden"]
    second = removal_test(constant, image, box, 1, brain, np.random.default_rng(0))
    assert second["called_tumour_hidden"] == second["called_elsewhere_hidden"] == 1.0


def test_the_removal_test_calls_by_the_decision_rule():
    import keras

    from conftest import phantom

    from brain_cnn.evaluation.explanations import removal_test

    image = phantom(64, lesion=True, seed=5)[..., None]
    inputs = keras.Input((64, 64, 1))
    peak = keras.layers.GlobalMaxPooling2D()(inputs)
    # glioma 35 %, meningioma 25 %, notumor 40 % whatever it sees: a glioma only by the tumour-first rule.
    answer = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", kernel_initializer="zeros",
                                                    bias_initializer=keras.initializers.Constant(
                                                        np.log([0.35, 0.25, 0.40])))(peak))
    classes, box = ["glioma", "meningioma", "notumor"], (10, 10, 20, 20)
    top = removal_test(answer, image, box, 0, None, np.random.default_rng(0), classes=classes)
    first = removal_test(answer, image, box, 0, None, np.random.default_rng(0), classes=classes,
                         decision="tumour first")
    assert top["called_intact"] == top["called_tumour_hidden"] == 0.0
    assert first["called_intact"] == first["called_tumour_hidden"] == first["called_elsewhere_hidden"] == 1.0
    assert first["p_intact"] == pytest.approx(0.35, abs=1e-5)

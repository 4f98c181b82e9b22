import numpy as np
import pytest

from brain_cnn.evaluation.tumour_maps import _screening
from brain_cnn.model.tumour_maps import CLASSES
from brain_cnn.training.tumour_maps import DecodedPairs


def test_screening_calls_tumour_when_the_top_class_is_not_no_tumour():
    normal, glioma = CLASSES.index("notumor"), CLASSES.index("glioma")
    files = [f"s/glioma T1/{i}.jpg" for i in range(3)] + [f"s/no tumour T2/{i}.jpg" for i in range(3)]
    decoded = DecodedPairs(np.zeros((6, 8, 8, 1), np.uint8), np.zeros((6, 8, 8, 1), np.uint8),
                           np.array([glioma] * 3 + [normal] * 3), np.ones(6, bool), ["s"] * 6, files, [])
    probabilities = np.eye(4)[[glioma, glioma, normal, normal, glioma, glioma]]
    keep = np.array([True] * 5 + [False])  # the last is a copy of a training image
    maps = np.zeros((6, 4, 4, 1), np.float32)
    maps[:3, 1, 1] = 0.9  # the map finds the three tumours and nothing in the normals
    result = _screening(decoded, (probabilities, maps), by_sequence=True, keep=keep)
    assert result["map_peak_rule"]["sensitivity"] == 1.0 and result["map_peak_rule"]["specificity"] == 1.0
    assert result["overall"]["sensitivity"] == pytest.approx(2 / 3, abs=1e-3)
    assert result["overall"]["specificity"] == 0.5 and result["left_out_as_copies"] == 1
    assert set(result["by_sequence"]) == {"T1", "T2"}


def test_screening_calls_by_the_rule_it_is_given():
    normal = CLASSES.index("notumor")
    files = [f"s/glioma T1/{i}.jpg" for i in range(2)] + ["s/no tumour T1/0.jpg"]
    decoded = DecodedPairs(np.zeros((3, 8, 8, 1), np.uint8), np.zeros((3, 8, 8, 1), np.uint8),
                           np.array([0, 0, normal]), np.ones(3, bool), ["s"] * 3, files, [])
    # P(notumor) 0.4 is the top class of the first, but the map's peak (the tumour classes together) is 0.6.
    probabilities = np.array([[0.3, 0.2, 0.4, 0.1], [0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1]])
    maps = np.zeros((3, 4, 4, 1), np.float32)
    top = _screening(decoded, (probabilities, maps), by_sequence=False)
    first = _screening(decoded, (probabilities, maps), by_sequence=False, decision="tumour first")
    assert top["overall"]["sensitivity"] == 0.5 and first["overall"]["sensitivity"] == 1.0
    assert top["overall"]["specificity"] == first["overall"]["specificity"] == 1.0


def test_the_rule_is_the_cards_beside_the_model_or_the_top_class(tmp_path):
    from brain_cnn.evaluation.tumour_maps import decision_of
    from brain_cnn.model.card import ModelCard

    assert decision_of(tmp_path) == "top class"
    ModelCard(name="run", classes=list(CLASSES), image_size=48, decision="tumour first").save(tmp_path)
    assert decision_of(tmp_path) == "tumour first"


def test_the_resolution_ceiling_costs_small_tumours_more():
    from brain_cnn.evaluation.tumour_maps import resolution_ceiling

    masks = np.zeros((3, 64, 64, 1), np.uint8)
    masks[0, 10:40, 10:40] = 255  # large
    masks[1, 30:33, 30:33] = 255  # 3 x 3: tiny
    labels = np.array([0, 3, 2])  # the third mask is empty: left out
    ceiling = resolution_ceiling(masks, labels)
    assert ceiling["images"] == 2 and ceiling["smallest_tenth_up_to_pixels"] == 9
    assert ceiling["1/2"]["by_class"]["glioma"] > 0.9 > ceiling["1/4"]["by_class"]["pituitary"]
    assert ceiling["1/4"]["mean_dice"] <= ceiling["1/2"]["mean_dice"]


def test_the_removal_test_on_a_network_that_finds_the_lesion(tiny_map_model):
    from brain_cnn.data.masks import prepare_pair
    from brain_cnn.evaluation.tumour_maps import removal
    from brain_cnn.model.folder import load_model

    from conftest import phantom

    pairs = []
    for seed in range(6):
        grey = phantom(96, lesion=True, seed=7000 + seed)
        pairs.append(prepare_pair(grey, np.where(grey > 225, 255, 0).astype(np.uint8), 48))
    images, masks = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    result = removal(load_model(tiny_map_model).model, images, masks)
    assert result["images"] >= 4
    # The tiny network calls tumour from the bright lesion: painted out, the lesion's map and call go with it.
    assert result["tumour_probability_below_half_when_painted_out"] >= 0.75
    assert result["call_changed_when_elsewhere_painted_out"] <= 0.25
    medians = result["map_pixels_above_half_median"]
    assert medians["painted_out"] < medians["intact"]


def test_outline_agreement_counts_outlines_on_normals_and_outlines_beside_the_tumour():
    from brain_cnn.evaluation.tumour_maps import outline_agreement
    from brain_cnn.model.tumour_maps import CLASSES

    normal, glioma = CLASSES.index("notumor"), CLASSES.index("glioma")
    masks = np.zeros((5, 8, 8, 1), np.uint8)
    masks[2:, 1:3, 1:3] = 255  # three tumours in the top-left corner
    maps = np.zeros((5, 4, 4, 1), np.float32)
    maps[1, 3, 3] = 0.9  # a normal slice outlined
    maps[2, 0, 0] = 0.9  # on the tumour
    maps[3, 3, 3] = 0.9  # beside it
    labels = np.array([normal, normal, glioma, glioma, glioma])
    found = outline_agreement(maps, masks, labels, np.array(["T2", "T2", "T2", "T2", "T1"]))
    assert found["T2"]["no_tumour_slices_with_an_outline"] == {"share": 0.5, "of": 2}
    assert found["T2"]["masked_tumours_whose_outline_misses_the_tumour"] == {"share": 0.5, "of": 2}
    assert found["T2"]["masked_tumours_without_an_outline"] == {"share": 0.0, "of": 2}
    assert found["T1"]["masked_tumours_without_an_outline"] == {"share": 1.0, "of": 1}
    assert found["T1"]["no_tumour_slices_with_an_outline"] == {"share": None, "of": 0}

"""The combined model: classifiers and a tumour-map network as one folder, its rule fitted on validation images."""

import json
import shutil
import warnings

import numpy as np
import pytest

from brain_cnn.errors import DatasetError, ModelFolderError
from brain_cnn.model.card import CARD_FILE, SPLIT_FILE
from brain_cnn.model.combined import combine, presence_inputs
from brain_cnn.model.folder import load_model
from brain_cnn.training.combined import PRESENCE_ONLY, fit_rule, make_combined

from conftest import encode, phantom, train_tiny_map_model, write_class_folder

pytestmark = pytest.mark.slow

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """A 4-class classifier (64 px) and a tumour-map network (48 px) on the same phantom split."""
    from brain_cnn.training.run import TrainConfig, train

    root = tmp_path_factory.mktemp("four") / "phantoms"
    write_class_folder(root / "Training", {c: 20 for c in CLASSES})
    write_class_folder(root / "Testing", {c: 4 for c in CLASSES}, start_seed=1000)
    models = tmp_path_factory.mktemp("models")
    classifier = train(TrainConfig(data=str(root), out=str(models / "classifier"), epochs=1, image_size=64, width=4,
                                   depth=2, batch_size=8, max_steps=2, seed=1))
    maps = train_tiny_map_model(models / "maps")
    shutil.copy(classifier / SPLIT_FILE, maps / SPLIT_FILE)  # validated and tested on the same images
    return classifier, maps


@pytest.fixture(scope="module")
def combined(members):
    classifier, maps = members
    return make_combined([classifier, maps], classifier.parent / "combined")


def batch(size: int) -> np.ndarray:
    return np.stack([phantom(size, lesion=bool(s % 2), seed=s) for s in range(6)])[..., None].astype(np.float32)


def test_the_combined_folder_answers_by_its_rule_on_every_engine(members, combined):
    from brain_cnn.model.engines import forward
    from brain_cnn.model.layers import AreaResize

    classifier, maps = (load_model(m) for m in members)
    loaded = load_model(combined)
    rule = loaded.card.training["combination"]
    x = batch(64)
    found = maps.model(AreaResize(48)(x))
    expected = combine(classifier.model(x).numpy(), found["probabilities"].numpy(), rule, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed ONNX conversion only warns and falls back: make it fail here
        for engine in ("onnxruntime", "tensorflow"):
            features, probabilities, tumour_map = forward(loaded.model, engine)(x)
            np.testing.assert_allclose(probabilities, expected, atol=1e-5)
            np.testing.assert_allclose(tumour_map, found["tumour_map"].numpy(), atol=1e-5)
            assert features.shape[0] == len(x)  # the gate's features: the map network's
    card = json.loads((combined / CARD_FILE).read_text())
    assert [m.get("role") for m in card["members"]] == [None, "tumour map"]
    assert card["decision"] == "tumour first" and card["flip_averaging"]
    assert len(rule["weights"]) == 2 and len(rule["type_weights"]) == 2
    assert rule["fitted_on"]["images"] > 0 and "validation" in rule


def test_the_rule_is_read_from_the_card(combined, tmp_path):
    folder = shutil.copytree(combined, tmp_path / "combined")
    for member in ("classifier", "maps"):
        shutil.copytree(combined.parent / member, tmp_path / member)
    card = json.loads((folder / CARD_FILE).read_text())
    card["training"]["combination"].update(weights=[0.0, 0.0], intercept=np.log(0.3 / 0.7), type_weights=[0.0, 0.0])
    (folder / CARD_FILE).write_text(json.dumps(card))
    probabilities = load_model(folder).model(batch(64))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities[:, 2], 0.7, atol=1e-5)  # P(tumour) = sigmoid(intercept) = 0.3
    np.testing.assert_allclose(probabilities[:, [0, 1, 3]], 0.1, atol=1e-5)  # no type weight: the types alike
    card["training"]["combination"] = {"weights": [1.0]}
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelFolderError, match="combination rule"):
        load_model(folder)


def test_its_split_holds_the_fitted_images_and_the_members_test_split(members, combined):
    from brain_cnn.data.dataset import SplitManifest

    split = SplitManifest.load(combined / SPLIT_FILE)
    member = SplitManifest.load(members[0] / SPLIT_FILE)
    assert {s.path.split("/", 1)[-1] for s in split.splits["test"]} == {s.path for s in member.splits["test"]}
    fitted = {s.path for s in split.splits["validation"] + split.splits[PRESENCE_ONLY]}
    assert not fitted & {s.path for s in split.splits["train"]}


def test_the_combined_folder_is_evaluated_and_predicts_with_maps(combined, tmp_path):
    from brain_cnn.evaluation.evaluate import evaluate_model_folder
    from brain_cnn.inference.predictor import Predictor

    folder = shutil.copytree(combined, tmp_path / "combined")
    for member in ("classifier", "maps"):
        shutil.copytree(combined.parent / member, tmp_path / member)
    report = evaluate_model_folder(folder, flip=True)
    assert "tumour_maps" not in report["splits"]["test"]  # phantoms have no masks
    gate = load_model(folder).gate
    assert gate.second is not None and "two parts" in load_model(folder).card.gate["method"]
    scan = tmp_path / "scan.png"
    scan.write_bytes(encode(phantom(96, lesion=True)))
    [result] = Predictor(folder).predict_files([scan], maps=True)
    assert result["tumour_map"].shape == (96, 96) and abs(sum(result["probabilities"].values()) - 1) < 1e-4


def test_a_combined_model_needs_one_map_network_and_a_classifier(members, tmp_path):
    classifier, maps = members
    out = classifier.parent / "x"
    with pytest.raises(ModelFolderError, match="exactly one tumour-map network"):
        make_combined([classifier], out)
    twin = shutil.copytree(maps, classifier.parent / "maps2")
    try:
        with pytest.raises(ModelFolderError, match="exactly one tumour-map network"):
            make_combined([classifier, maps, twin], out)
    finally:
        shutil.rmtree(twin)
    with pytest.raises(DatasetError, match="never fitted on"):
        make_combined([classifier, maps], out, fit_data=[f"{classifier / SPLIT_FILE}:test"])
    # Refused before anything is fitted: the folder could not load members elsewhere on the disk.
    with pytest.raises(ModelFolderError, match="is not beside .*: an ensemble's members are folders of the same"):
        make_combined([classifier, maps], tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_the_fit_trusts_the_network_that_separates_the_validation_slices():
    rng = np.random.default_rng(0)
    n = 400
    labels = np.where(rng.random(n) < 0.5, 0, 2)  # glioma or no tumour
    tumour = labels != 2

    def probabilities(p_tumour):
        out = np.zeros((n, 4))
        out[:, 0], out[:, 2] = p_tumour, 1 - p_tumour
        return out

    informative = probabilities(np.where(tumour, rng.uniform(0.6, 1, n), rng.uniform(0, 0.4, n)))
    noise = probabilities(rng.uniform(0, 1, n))
    rule = fit_rule(noise, informative, labels, np.array(["a", "b"] * (n // 2)), 2)
    assert rule["weights"][1] > 5 * abs(rule["weights"][0])
    combined = combine(noise, informative, rule, 2)
    assert ((combined[:, 2] < 0.5) == tumour).mean() > 0.95
    np.testing.assert_allclose(combined.sum(axis=1), 1, atol=1e-9)
    assert presence_inputs(noise, informative, 2).shape == (n, 2)


def test_the_type_fit_weighs_the_network_that_names_the_type():
    from brain_cnn.training.combined import _fit_type_weights

    rng = np.random.default_rng(1)
    n = 300
    labels = rng.choice([0, 1, 3], n)  # tumours of a known type
    right = np.full((n, 4), 0.05)
    right[np.arange(n), labels] = 0.85
    wrong = rng.dirichlet(np.ones(4), n)
    d, e = _fit_type_weights(wrong, right, labels, np.array(["a", "b", "c"] * (n // 3)), 2)
    assert e > 1 and abs(d) < e / 5


def test_the_app_diagnoses_and_explains_with_a_combined_model(members, combined, monkeypatch, tmp_path):
    from conftest import app_test

    models = tmp_path / "models"
    models.mkdir()
    for folder in (*members, combined):
        shutil.copytree(folder, models / folder.name)
    app = app_test(models, monkeypatch, tmp_path, timeout=240)
    at = app.run()
    at.sidebar.selectbox[0].set_value("combined").run()
    at.file_uploader[0].set_value([("scan.png", encode(phantom(128, lesion=True)), "image/png")])
    at = at.run()
    assert not at.exception
    said = [e.value for kind in ("success", "warning", "info") for e in getattr(at, kind)]
    assert any("Tumour outline" in t or "Outline uncertain" in t or "No tumour outlined" in t for t in said)
    at.selectbox[0].set_value("Grad-CAM").run()  # the members' maps, each on its own last block, averaged
    assert not at.exception


def test_a_combined_folder_exports_to_onnx_with_its_map(combined, tmp_path):
    from brain_cnn.model.export import export_model

    info = export_model(combined, "onnx", tmp_path / "combined.onnx")
    assert info["max_abs_difference"] < 1e-4 and "tumour probability map (N, 24, 24, 1)" in info["output"]


def test_the_ensemble_command_makes_and_evaluates_a_combined_model(members, capsys):
    from brain_cnn.cli import main

    classifier, maps = members
    out = classifier.parent / "combined-cli"
    assert main(["ensemble", str(classifier), str(maps), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "whether there is a tumour = sigmoid(" in said and "validation images" in said
    assert load_model(out).card.flip_averaging  # the rule was fitted on slices and their mirror images
    assert (out / "evaluation.json").is_file()
    assert main(["ensemble", str(classifier), str(classifier.parent / "maps"), "--out", str(out),
                 "--fit-data", f"{classifier / SPLIT_FILE}:test"]) == 2  # a test split is never fitted on


def test_the_combined_folder_calibrates_on_what_no_member_trained_on_and_the_rule_was_not_fitted_on(tmp_path):
    from brain_cnn.data.dataset import Sample, SplitManifest
    from brain_cnn.training.combined import calibration_pool

    write_class_folder(tmp_path / "data", {"glioma": 5}, size=64)
    names = sorted(p.name for p in (tmp_path / "data" / "glioma").iterdir())
    a, b, c, d, e = (f"glioma/{n}" for n in names)
    shutil.copy(tmp_path / "data" / a, tmp_path / "data" / e)  # e: a copy of a training image
    root = str(tmp_path / "data")

    def manifest(train, calibration):
        return SplitManifest(root, CLASSES, 42, {"train": [Sample(p, "glioma") for p in train],
                                                 "calibration": [Sample(p, "glioma") for p in calibration]}, "")

    pool = calibration_pool([manifest([a], [b, c, e]), manifest([a, c], [b, d])], fitted={str(tmp_path / "data" / d)})
    assert sorted(pool) == [str(tmp_path / "data" / b)]


def _with_look(combined, tmp_path, features: np.ndarray):
    """A copy of the combined folder whose rule depends on the look: a look that tells these features apart."""
    folder = shutil.copytree(combined, tmp_path / "combined")
    for member in ("classifier", "maps"):
        shutil.copytree(combined.parent / member, tmp_path / member)
    card = json.loads((folder / CARD_FILE).read_text())
    centred = features - features.mean(axis=0)
    direction = centred[np.argmax(np.linalg.norm(centred, axis=1))]
    weights = direction * 4 / np.abs(centred @ direction).max()  # log-odds from -4 to 4 over these slices
    card["training"]["combination"].update(
        familiar={"weights": [2.0, -0.5], "intercept": 0.7, "type_weights": [1.5, 0.1]},
        look={"weights": weights.tolist(), "intercept": float(-features.mean(axis=0) @ weights)})
    (folder / CARD_FILE).write_text(json.dumps(card))
    return folder


def test_a_look_dependent_rule_answers_alike_in_the_graph_on_every_engine_and_in_numpy(members, combined, tmp_path):
    from brain_cnn.model.combined import familiarity
    from brain_cnn.model.engines import forward, gate_split
    from brain_cnn.model.layers import AreaResize

    classifier, maps = (load_model(m) for m in members)
    x = batch(64)
    first_features = forward(classifier.model, "tensorflow")(x)[0]
    loaded = load_model(_with_look(combined, tmp_path, first_features))
    rule = loaded.card.training["combination"]
    g = familiarity(first_features, rule["look"])
    assert g.min() < 0.2 and g.max() > 0.8  # both ends of the blend are exercised
    expected = combine(classifier.model(x).numpy(), maps.model(AreaResize(48)(x))["probabilities"].numpy(), rule, 2,
                       features=first_features)
    assert not np.allclose(expected, combine(classifier.model(x).numpy(),
                                             maps.model(AreaResize(48)(x))["probabilities"].numpy(),
                                             {k: v for k, v in rule.items() if k not in ("look", "familiar")}, 2))
    np.testing.assert_allclose(loaded.model(x)["probabilities"].numpy(), expected, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for engine in ("onnxruntime", "tensorflow"):
            features, probabilities, _ = forward(loaded.model, engine)(x)
            np.testing.assert_allclose(probabilities, expected, atol=1e-5)
            # The gate's second part reads the same pooled features as the look.
            np.testing.assert_allclose(features[:, gate_split(loaded.model):], first_features, atol=1e-4)


def test_every_method_explains_a_look_dependent_combined_model(members, combined, tmp_path):
    """Its first classifier answers {probabilities, look_features}: each method explains the probabilities."""
    from brain_cnn.explain.explainer import METHODS, Explainer
    from brain_cnn.model.engines import forward

    first_features = forward(load_model(members[0]).model, "tensorflow")(batch(64))[0]
    explainer = Explainer(load_model(_with_look(combined, tmp_path, first_features)).model)
    for method in METHODS:
        heatmap = explainer.heatmap(phantom(64, lesion=True)[:, :, None], 0, method)
        assert heatmap.shape == (64, 64) and not np.isnan(heatmap).any() and heatmap.max() > 0, method


def test_a_look_of_the_wrong_length_or_without_its_numbers_is_refused(combined, tmp_path):
    folder = _with_look(combined, tmp_path, np.random.default_rng(0).normal(size=(4, 3)))
    with pytest.raises(ModelFolderError, match="look weighs 3 features"):
        load_model(folder)
    card = json.loads((folder / CARD_FILE).read_text())
    del card["training"]["combination"]["familiar"]
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelFolderError, match="look-dependent combination rule needs"):
        load_model(folder)


def _two_looks(n: int, seed: int):
    """Validation outputs of two sources: at "home" the classifiers are right and the map network guesses, away
    the other way round; the first classifier's features tell the two looks apart."""
    rng = np.random.default_rng(seed)
    sources = np.array(["home", "away"] * (n // 2))
    labels = rng.choice([0, 1, 2, 3], n)
    home = sources == "home"

    def right():
        out = np.full((n, 4), 0.04)
        out[np.arange(n), labels] = 0.88
        return out

    guess = rng.dirichlet(np.ones(4), n)
    classified = np.where(home[:, None], right(), guess)
    found = np.where(home[:, None], rng.dirichlet(np.ones(4), n), right())
    features = rng.normal(size=(n, 6)) + np.where(home, 1.5, -1.5)[:, None] * [1, 1, 0, 0, 0, 0]
    return classified, found, labels, sources, features


def test_the_fit_lets_each_network_decide_where_it_knows_the_look():
    classified, found, labels, sources, features = _two_looks(600, 0)
    groups = np.arange(600) // 2  # pairs kept together, as an image and its mirror image are
    rule = fit_rule(classified, found, labels, sources, 2, features=features, home={"home"}, groups=groups)
    assert rule["method"] == "look-dependent logistic" and rule["look"]["home"] == ["home"]
    cross = rule["validation"]["cross_validated"]
    assert cross["look-dependent"]["loss"] < cross["one rule for every look"]["loss"]
    assert rule["validation"]["familiarity_median"]["home"] > 0.9 > 0.1 > rule["validation"]["familiarity_median"]["away"]
    assert rule["familiar"]["type_weights"][0] > rule["familiar"]["type_weights"][1]  # at home the classifiers
    assert rule["type_weights"][1] > rule["type_weights"][0]  # away the map network
    # Judged on new slices of the same two looks, it calls (nearly) all of them right, in both looks.
    classified, found, labels, sources, features = _two_looks(400, 1)
    calls = combine(classified, found, rule, 2, features=features).argmax(axis=1)
    for source in ("home", "away"):
        assert (calls == labels)[sources == source].mean() > 0.95
    # With a third source of the "away" look, each is also left out of the whole fit and predicted by the rest.
    sources = np.where((sources == "away") & (np.arange(400) % 4 == 1), "far", sources)
    rule = fit_rule(classified, found, labels, sources, 2, features=features, home={"home"}, groups=np.arange(400) // 2)
    left_out = rule["validation"]["source_left_out"]
    assert set(left_out) == {"away", "far"}
    assert left_out["far"]["familiarity_percentiles_50_90_99"][0] < 0.1  # still sent to the map network
    assert left_out["far"]["look-dependent"]["type_accuracy"] > 0.95
    # One look for every slice: no look to learn, one rule.
    assert fit_rule(classified, found, labels, sources, 2, features=features, home={"home", "away", "far"},
                    groups=np.arange(400) // 2)["method"] == "logistic"


def test_the_look_dependent_rule_is_dropped_where_it_does_not_cross_validate_better():
    classified, found, labels, sources, _ = _two_looks(600, 2)
    # Features that do not tell the looks apart: the look cannot help, and is not kept.
    noise = np.random.default_rng(3).normal(size=(600, 6))
    rule = fit_rule(classified, found, labels, sources, 2, features=noise, home={"home"}, groups=np.arange(600) // 2)
    assert rule["method"] == "logistic" and "look" not in rule and "familiar" not in rule
    assert "cross_validated" in rule["validation"]


def test_the_rules_cross_validation_keeps_copies_and_patients_in_one_group(tmp_path):
    from brain_cnn.training.combined import _fit_groups

    def write(path, array):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(array))

    one, other = phantom(96, lesion=True, seed=1), phantom(96, lesion=True, seed=7)
    write(tmp_path / "set-a" / "x" / "a.png", one)
    write(tmp_path / "set-a" / "x" / "b.png", one[:, ::-1].copy())  # a mirrored copy
    write(tmp_path / "set-a" / "x" / "c.png", other)
    (tmp_path / "set-b").mkdir()
    (tmp_path / "set-b" / "cases.csv").write_text("case\nP1\n")
    write(tmp_path / "set-b" / "y" / "P1_1.png", phantom(96, seed=20))
    write(tmp_path / "set-b" / "y" / "P1_2.png", phantom(96, lesion=True, seed=21))
    files = ["set-a/x/a.png", "set-a/x/b.png", "set-a/x/c.png", "set-b/y/P1_1.png", "set-b/y/P1_2.png"]
    groups = _fit_groups(files, str(tmp_path), np.array(["set-a"] * 3 + ["set-b"] * 2))
    assert groups[0] == groups[1] != groups[2] and groups[3] == groups[4] != groups[0]
    write(tmp_path / "set-b" / "y" / "Q_1.png", phantom(96, seed=30))
    with pytest.raises(DatasetError, match="none of its 1 fitting images"):  # patients listed, none matched
        _fit_groups(["set-b/y/Q_1.png"], str(tmp_path), np.array(["set-b"]))


def test_a_combined_folder_measures_a_study_as_one_tumour(combined):
    from brain_cnn.inference.assessment import assess_stack
    from brain_cnn.inference.predictor import Predictor
    from brain_cnn.inference.study import measure_case
    from brain_cnn.scan.read import Scan

    slices = np.stack([phantom(96, lesion=True, seed=s) for s in range(4)])
    scan = Scan("study", "image", slices, [str(i) for i in range(4)], pixel_spacing=(0.5, 0.5), slice_spacing=2.0)
    case = assess_stack(Predictor(combined), scan)
    assert case.has_map
    measure = measure_case(case)
    assert measure.units == "mm" and measure.slices == 4 and measure.volume_ml is not None and measure.volume_ml >= 0

"""Conformal sets and the screening threshold on synthetic exchangeable scores."""

import numpy as np
import pytest
from scipy.stats import binom

from brain_cnn.inference.conformal import Conformal, CoverageError, check_level, set_text

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


def _draw(rng, count, weights=(0.35, 0.15, 0.3, 0.2)):
    """Labels and noisy, calibrated-looking probabilities: the true class's logit raised by a random margin."""
    labels = rng.choice(len(CLASSES), size=count, p=weights)
    logits = rng.normal(0, 1.0, (count, len(CLASSES)))
    logits[np.arange(count), labels] += rng.normal(1.5, 1.2, count)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities, labels


def test_coverage_holds_per_class_within_binomial_bounds_over_many_splits():
    rng = np.random.default_rng(0)
    repeats, calibration, test, coverage = 40, 400, 400, 0.9
    covered = {c: [0, 0] for c in range(len(CLASSES))}
    for _ in range(repeats):
        probabilities, labels = _draw(rng, calibration + test)
        fitted = Conformal.fit(probabilities[:calibration], labels[:calibration], CLASSES)
        sets = fitted.sets(probabilities[calibration:], coverage)
        hit = sets[np.arange(test), labels[calibration:]]
        for c in covered:
            mine = labels[calibration:] == c
            covered[c][0] += int(hit[mine].sum())
            covered[c][1] += int(mine.sum())
    for c, (hits, total) in covered.items():
        # Class-conditional validity: each class's coverage at least the level, up to sampling noise
        # (the one-sided 0.1 % binomial quantile), and not far above it (the sets are not trivially full).
        low = binom.ppf(0.001, total, coverage) / total
        assert hits / total >= low, (CLASSES[c], hits / total)
        assert hits / total <= 0.97, (CLASSES[c], hits / total)


def test_sets_are_nested_as_the_level_rises_and_listed_most_likely_first():
    rng = np.random.default_rng(1)
    probabilities, labels = _draw(rng, 600)
    fitted = Conformal.fit(probabilities[:300], labels[:300], CLASSES)
    previous = None
    for coverage in (0.5, 0.7, 0.8, 0.9, 0.95):
        sets = fitted.sets(probabilities[300:], coverage)
        if previous is not None:
            assert np.all(sets >= previous)
        previous = sets
    row = probabilities[300]
    chosen = fitted.prediction_set(row, 0.95)
    assert chosen == sorted(chosen, key=lambda c: -row[CLASSES.index(c)])


def test_a_rare_class_with_few_calibration_images_is_pooled_or_always_kept():
    rng = np.random.default_rng(2)
    probabilities, labels = _draw(rng, 300, weights=(0.49, 0.02, 0.3, 0.19))
    labels[labels == 1] = 0  # no meningioma at all in calibration
    fitted = Conformal.fit(probabilities, labels, CLASSES)
    assert fitted.counts()["meningioma"] == 0
    # Alone in the pooled bin, with nothing to calibrate it on, meningioma is never left out.
    assert fitted.always_in(0.9) == ["meningioma"]
    assert fitted.sets(probabilities, 0.9)[:, 1].all()


def test_levels_the_calibration_cannot_give_are_refused():
    rng = np.random.default_rng(3)
    probabilities, labels = _draw(rng, 12)
    fitted = Conformal.fit(probabilities, labels, CLASSES)
    fitted.check(0.9)  # 12 images: 90 % needs 10
    with pytest.raises(CoverageError, match="needs at least 20"):
        fitted.check(0.95)
    for bad in (0, 1, 1.5, "x", -0.1):
        with pytest.raises(CoverageError):
            check_level(bad)


def test_screening_threshold_bounds_the_missed_tumour_rate():
    rng = np.random.default_rng(4)
    missed, tumours_seen = 0, 0
    for _ in range(60):
        probabilities, labels = _draw(rng, 800)
        fitted = Conformal.fit(probabilities[:400], labels[:400], CLASSES)
        threshold = fitted.screening_threshold(0.05)
        test_p, test_labels = probabilities[400:], labels[400:]
        tumour = test_labels != CLASSES.index("notumor")
        presence = 1.0 - test_p[:, CLASSES.index("notumor")]
        missed += int((presence[tumour] < threshold).sum())
        tumours_seen += int(tumour.sum())
        assert np.array_equal(fitted.tumour_possible(presence), presence >= threshold)
    # Risk control: the expected missed rate is at most 5 %; over ~17,000 test tumours the realised rate sits
    # well inside the binomial upper bound, and not far below (the threshold is not trivially zero).
    rate = missed / tumours_seen
    assert rate <= binom.ppf(0.999, tumours_seen, 0.05) / tumours_seen
    assert rate >= 0.03


def test_screening_needs_enough_calibration_tumours():
    rng = np.random.default_rng(5)
    probabilities, labels = _draw(rng, 30, weights=(0.1, 0.0, 0.8, 0.1))
    fitted = Conformal.fit(probabilities, labels, CLASSES)
    with pytest.raises(CoverageError, match="calibration tumours"):
        fitted.screening_threshold(0.01)
    no_normal = Conformal.fit(probabilities[:, [0, 1, 3]] / probabilities[:, [0, 1, 3]].sum(1, keepdims=True),
                              np.array([0, 1, 0, 2])[labels], ["a", "b", "c"])
    with pytest.raises(CoverageError, match="no no-tumour class"):
        no_normal.screening_threshold()


def test_unknown_type_tumours_count_for_screening_only(tmp_path):
    rng = np.random.default_rng(6)
    probabilities, labels = _draw(rng, 100)
    labels[:10] = -1  # tumours of a type the model does not name
    fitted = Conformal.fit(probabilities, labels, CLASSES)
    assert len(fitted.scores) == 90
    assert len(fitted.tumour_scores) == int((labels != 2).sum())
    fitted.save(tmp_path / "conformal.npz")
    loaded = Conformal.load(tmp_path / "conformal.npz")
    assert loaded.classes == tuple(CLASSES)
    assert np.array_equal(loaded.sets(probabilities), fitted.sets(probabilities))
    assert loaded.screening_threshold() == fitted.screening_threshold()
    assert Conformal.load(tmp_path / "none.npz") is None
    summary = loaded.summary()
    assert summary["calibration_images"] == 90 and summary["screening"]["threshold"] == round(
        fitted.screening_threshold(), 6)


def test_set_text_says_empty_and_full_sets_plainly():
    assert set_text(["glioma", "meningioma"], CLASSES, 0.9) == "90% set: glioma or meningioma"
    assert "empty" in set_text([], CLASSES, 0.9)
    assert "every class" in set_text(CLASSES, CLASSES, 0.95)
    assert set_text(["a", "b", "c"], CLASSES, 0.9, str.upper) == "90% set: A, B or C"


def test_a_class_with_no_calibration_image_is_never_left_out_even_beside_pooled_classes():
    rng = np.random.default_rng(7)
    labels = np.r_[np.zeros(100, int), np.ones(9, int), np.full(9, 2)]  # meningioma and notumor small, no pituitary
    probabilities = rng.dirichlet(np.ones(4), size=len(labels))
    fitted = Conformal.fit(probabilities, labels, CLASSES)
    assert fitted.always_in(0.9) == ["pituitary"]  # the two small classes pool to 18, enough for 90 %
    sets = fitted.sets(np.array([[0.6, 0.02, 0.36, 0.02], [0.01, 0.01, 0.01, 0.97]]), 0.9)
    assert sets[:, 3].all()


def test_a_calibration_too_small_for_the_default_level_is_summarised_not_raised():
    rng = np.random.default_rng(8)
    probabilities, labels = _draw(rng, 6)
    fitted = Conformal.fit(probabilities, labels, CLASSES)
    summary = fitted.summary()
    assert summary["always_in_set"] == CLASSES and summary["calibration_images"] == 6
    assert summary["coverage_below"] == round(1 - 1 / 7, 6)
    with pytest.raises(CoverageError):
        fitted.check(summary["coverage_below"])  # the bound itself is out of reach
    fitted.check(summary["coverage_below"] - 0.01)


def test_a_level_too_high_for_the_calibration_gives_every_class_when_not_strict():
    rng = np.random.default_rng(9)
    probabilities, labels = _draw(rng, 6)
    fitted = Conformal.fit(probabilities, labels, CLASSES)
    assert fitted.sets(probabilities, 0.9, strict=False).all()
    with pytest.raises(CoverageError):
        fitted.sets(probabilities, 0.9)

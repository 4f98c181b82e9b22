import numpy as np
import pytest

from brain_cnn.data.masks import prepare_pair
from brain_cnn.data.painting import brain_region
from brain_cnn.data.pasting import allowed_places, match_quantiles, paste_tumour

from conftest import phantom


def test_quantiles_carry_a_donor_value_to_the_same_rank_in_the_target_brain():
    donor = np.arange(100, dtype=np.float32)  # uniform 0..99
    target = np.arange(1000, 2000, dtype=np.float32)
    values = np.array([10.0, 50.0, 90.0])
    assert np.allclose(match_quantiles(values, donor, target), [1105, 1505, 1905], atol=2)
    inverted = match_quantiles(values, donor, target, inverted=True)
    assert np.allclose(inverted, [1894, 1494, 1094], atol=2)  # the bright end dark, the dark end bright


def _model_input(seed: int, lesion: bool = False) -> tuple[np.ndarray, np.ndarray]:
    grey = phantom(128, seed=seed)
    truth = np.zeros_like(grey)
    if lesion:
        grey[40:52, 36:46] = 240
        truth[40:52, 36:46] = 255
    image, mask = prepare_pair(grey, truth, 128)
    return image, mask[..., 0] > 127


def test_places_keep_off_the_centre_the_midline_and_the_skull():
    image, _ = _model_input(1)
    brain = brain_region(image[..., 0])
    allowed = allowed_places(brain, edge=False)
    ys, xs = np.nonzero(brain)
    cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    assert allowed.any() and not allowed[cy, cx] and not allowed[:, cx].any()
    assert not (allowed & ~brain).any()
    edge = allowed_places(brain, edge=True)
    assert (edge & ~brain).sum() == 0 and edge.sum() >= allowed.sum()


@pytest.mark.parametrize("meningioma", [False, True])
def test_a_pasted_tumour_lies_in_a_plausible_place_with_its_mask_and_leaves_the_rest_alone(meningioma):
    donor, tumour = _model_input(2, lesion=True)
    target, _ = _model_input(3)
    donor_brain, target_brain = brain_region(donor[..., 0]), brain_region(target[..., 0])
    pastes = [paste_tumour(donor, tumour, donor_brain, target, target_brain, np.random.default_rng(seed),
                           meningioma=meningioma) for seed in range(5)]
    assert all(p is not None for p in pastes)
    for paste in pastes:
        placed = paste.mask[..., 0] > 127
        assert 0.6 * tumour.sum() <= placed.sum() <= 1.6 * tumour.sum()  # rescaled by 0.8-1.25 each way
        assert allowed_places(target_brain, meningioma)[placed].all()
        assert np.array_equal(paste.image[~placed], target[~placed])  # only the tumour's pixels change
        # The bright donor tumour lands at the bright end of the target's brain.
        assert paste.image[placed].mean() > np.percentile(target[..., 0][target_brain], 80)
    assert len({p.mask.tobytes() for p in pastes}) == 5  # each draw its own place, turn and size


def test_the_contrast_turned_round_makes_a_bright_tumour_dark():
    donor, tumour = _model_input(2, lesion=True)
    target, _ = _model_input(3)
    target_brain = brain_region(target[..., 0])
    paste = paste_tumour(donor, tumour, brain_region(donor[..., 0]), target, target_brain,
                         np.random.default_rng(0), inverted=True)
    assert paste.inverted
    assert paste.image[paste.mask[..., 0] > 127].mean() < np.percentile(target[..., 0][target_brain], 20)


def test_a_tumour_too_large_for_the_brain_is_not_pasted():
    donor, _ = _model_input(2)
    target, _ = _model_input(3)
    huge = np.zeros((128, 128), bool)
    huge[20:110, 20:110] = True
    assert paste_tumour(donor, huge, brain_region(donor[..., 0]), target, brain_region(target[..., 0]),
                        np.random.default_rng(0)) is None

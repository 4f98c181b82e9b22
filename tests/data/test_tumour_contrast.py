import numpy as np

from brain_cnn.data.tumour_contrast import band_of, bands, contrast

from conftest import phantom


def _with_lesion(level: int) -> tuple[np.ndarray, np.ndarray]:
    image = phantom(96, seed=1)
    mask = np.zeros_like(image, bool)
    mask[40:52, 40:52] = True
    image[mask] = level
    return image, mask


def test_a_lesion_is_put_in_the_band_of_its_grey_level_against_the_brain_around_it():
    brain = float(phantom(96, seed=1)[30:66, 30:66].mean())  # about 90, the phantom's brain
    for level, band in ((240, "bright"), (20, "dark"), (round(brain), "alike")):
        image, mask = _with_lesion(level)
        assert band_of(contrast(image, mask)) == band, (level, contrast(image, mask))
    assert [band_of(x) for x in (-255, -10.01, -10, 9.99, 10, 255)] == ["dark", "dark", "alike", "alike", "bright",
                                                                        "bright"]


def test_the_black_around_the_head_is_not_the_brain_around_a_tumour():
    image = np.zeros((64, 64), np.uint8)
    image[:, 30:] = 100  # the head fills the right half; the tumour lies at its edge, as bright as the brain
    mask = np.zeros_like(image, bool)
    mask[26:38, 30:42] = True
    assert contrast(image, mask) == 0.0  # the ring's black left side would have made it look bright


def test_bands_of_a_batch_leave_empty_masks_unnamed():
    (bright, m1), (dark, m2) = _with_lesion(240), _with_lesion(10)
    images = np.stack([bright, dark, bright])[..., None]
    masks = (np.stack([m1, m2, np.zeros_like(m1)]) * 255).astype(np.uint8)[..., None]
    assert bands(images, masks).tolist() == ["bright", "dark", ""]
    assert bands(images, masks > 0).tolist() == ["bright", "dark", ""]  # boolean masks as well
    whole = np.ones((1, 16, 16), bool)  # nothing around the mask to compare with: no band
    assert bands(np.full((1, 16, 16), 90, np.uint8), whole).tolist() == [""] and band_of(float("nan")) == ""

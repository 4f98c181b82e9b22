import numpy as np

from experiments.hiding import hide_black


def test_hiding_under_black_blackens_the_box_only():
    image = np.full((20, 20, 1), 90, np.uint8)
    hidden = hide_black(image, (2, 3, 6, 8))
    assert hidden[3:8, 2:6].max() == 0 and hidden.sum() == 90 * (400 - 20)
    assert image.min() == 90  # the original is untouched

import numpy as np
import pytest

from brain_cnn.explain.occlusion import occlusion_map
from experiments.occlusion_fills import FILLS, occlusion_fill

from conftest import brightness_network


@pytest.mark.parametrize("fill", FILLS)
def test_occlusion_fill_decides_what_hiding_removes(fill):
    """On a flat grey slice with one bright square, a black or mean-grey patch removes the square's light;
    a blurred patch keeps most of it, so it points there less strongly than black does."""
    model = brightness_network([-0.01, 0.01])
    image = np.full((40, 40), 100, np.uint8)
    image[16:24, 16:24] = 250
    heat = occlusion_map(model, image, 1, patch=0.2, stride=0.1, fill=occlusion_fill(image, fill, 8))
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert 12 <= peak[0] < 28 and 12 <= peak[1] < 28
    if fill == "blur":
        assert heat.max() < occlusion_map(model, image, 1, patch=0.2, stride=0.1).max()


def test_unknown_occlusion_fill_is_refused():
    with pytest.raises(ValueError, match="unknown occlusion fill"):
        occlusion_fill(np.zeros((40, 40), np.uint8), "noise", 8)

import warnings

import numpy as np
import pytest

from brain_cnn.model.layers import TARGET_MEAN, TARGET_STD, BrainOnly, StandardiseHead
from brain_cnn.scan.preprocess import RIM

from conftest import phantom


def test_brain_only_keeps_the_brain_and_blacks_out_skull_scalp_and_background():
    image = phantom(160, lesion=True, margin=0.02)  # a head filling the input, as after the crop
    image[70:90, 70:90] = 0  # a dark hole inside the brain is still brain
    kept = np.asarray(BrainOnly()(image[None, ..., None].astype(np.float32) / 255.0))[0, ..., 0]
    row = kept[80] > 0
    edge = np.flatnonzero(image[80] > 45)[0]  # the head's outline on the middle row
    assert kept[80, 60] == pytest.approx(image[80, 60] / 255.0) and kept[2, 2] == 0
    assert not row[: edge + round(RIM * 160) - 1].any() and row[edge + round(RIM * 160) + 2]
    assert np.asarray(BrainOnly().brain_mask(image[None, ..., None].astype(np.float32) / 255.0))[0, 80, 80, 0] == 1
    assert np.asarray(BrainOnly().brain_mask(np.zeros((1, 32, 32, 1), np.float32))).max() == 0


def test_standardising_gives_every_head_one_mean_and_spread_whatever_the_scanners_levels():
    image = phantom(160, lesion=True).astype(np.float32) / 255.0
    head = image > 10 / 255
    out = np.asarray(StandardiseHead()(image[None, ..., None]))[0, ..., 0]
    assert out[~head].max() == 0  # the background stays black
    assert out[head].mean() == pytest.approx(TARGET_MEAN, abs=0.01) and out[head].std() == pytest.approx(TARGET_STD,
                                                                                                          abs=0.01)
    # The same slice darker and flatter, as another scanner might give it: the same input to the network.
    other = np.where(head, 0.05 + 0.6 * image, 0.0).astype(np.float32)
    np.testing.assert_allclose(np.asarray(StandardiseHead()(other[None, ..., None]))[0, ..., 0], out, atol=1e-4)
    assert np.asarray(StandardiseHead()(np.zeros((1, 8, 8, 1), np.float32))).max() == 0  # a blank input stays blank


@pytest.mark.parametrize("option", ["brain_only", "standardise"])
def test_a_network_with_a_custom_layer_saves_loads_in_safe_mode_and_runs_on_every_engine(tmp_path, option):
    import keras

    from brain_cnn.model.engines import forward
    from brain_cnn.model.network import build_model

    model = build_model(3, image_size=64, width=8, depth=2, **{option: True})
    assert model.get_layer(option)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    batch = np.stack([phantom(64, lesion=True, seed=s) for s in range(4)])[..., None].astype(np.float32)
    expected = model.predict(batch, verbose=0)
    np.testing.assert_allclose(loaded.predict(batch, verbose=0), expected, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed ONNX conversion only warns and falls back: make it fail here
        for engine in ("onnxruntime", "tensorflow"):
            np.testing.assert_allclose(forward(loaded, engine)(batch)[1], expected, atol=1e-5)


def test_a_model_saved_before_the_package_was_laid_out_by_stage_still_loads(tmp_path):
    """Model files record a custom layer as brain_cnn>NAME (its registered name) and the module that defined
    it; a file written when that module was brain_cnn.layers loads, by the registered name."""
    import zipfile

    import keras

    from brain_cnn.model.network import build_model

    model = build_model(2, image_size=48, width=4, depth=2, brain_only=True, standardise=True)
    model.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as new, zipfile.ZipFile(tmp_path / "old.keras", "w") as old:
        for item in new.infolist():
            data = new.read(item.filename)
            if item.filename == "config.json":
                assert b'"brain_cnn>BrainOnly"' in data and b'"brain_cnn.model.layers"' in data
                data = data.replace(b'"brain_cnn.model.layers"', b'"brain_cnn.layers"')
            old.writestr(item, data)
    loaded = keras.models.load_model(tmp_path / "old.keras", compile=False, safe_mode=True)
    batch = phantom(48, seed=1)[None, ..., None].astype(np.float32)
    np.testing.assert_allclose(loaded.predict(batch, verbose=0), model.predict(batch, verbose=0), atol=1e-6)

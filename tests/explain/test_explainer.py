import threading

import numpy as np
import pytest

from brain_cnn.explain.explainer import METHODS, QUICK_METHOD, Explainer
from brain_cnn.explain.occlusion import occlusion_map
from brain_cnn.explain.overlay import overlay_heatmap
from brain_cnn.explain.queue import ExplanationQueue
from brain_cnn.model.network import build_model

from conftest import brightness_network, phantom


@pytest.fixture(scope="module")
def explainer():
    return Explainer(build_model(3, image_size=48, width=4, depth=2))


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_a_normalised_map_of_input_size(explainer, method):
    image = phantom(48, lesion=True)[:, :, None]
    heatmap = explainer.heatmap(image, 1, method)
    assert heatmap.shape == (48, 48) and heatmap.dtype == np.float32
    assert heatmap.min() >= 0 and heatmap.max() <= 1 + 1e-6
    assert not np.isnan(heatmap).any()


def test_unknown_method_is_refused(explainer):
    with pytest.raises(ValueError, match="unknown explanation method"):
        explainer.heatmap(np.zeros((48, 48, 1), np.uint8), 0, "LIME")


def test_grad_cam_points_at_the_evidence():
    """A network that scores class 1 by the brightness it sees is explained where the brightness is."""
    import keras
    from keras import layers

    inputs = keras.Input((32, 32, 1))
    features = layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="last_conv")(inputs)
    pooled = layers.GlobalAveragePooling2D()(features)
    outputs = layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.Constant([[-1.0, 1.0]]))(pooled)
    image = np.zeros((32, 32, 1), np.uint8)
    image[:16, :16] = 200
    heatmap = Explainer(keras.Model(inputs, outputs)).heatmap(image, 1, "Grad-CAM")
    assert heatmap[2:14, 2:14].mean() > 0.9 and heatmap[18:, 18:].mean() < 0.1


def test_occlusion_points_at_the_evidence_and_only_there():
    """A network whose class 1 score is the brightness of the top-left quadrant: hiding that quadrant's
    bright square lowers the score, hiding anything else changes nothing."""
    import keras
    from keras import layers

    inputs = keras.Input((40, 40, 1))
    quadrant = layers.Cropping2D(((0, 20), (0, 20)))(inputs)
    pooled = layers.GlobalAveragePooling2D()(quadrant)
    outputs = layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.Constant([[-0.05, 0.05]]))(pooled)
    image = np.zeros((40, 40, 1), np.uint8)
    image[4:12, 4:12] = 200  # evidence, inside the quadrant the network reads
    image[28:36, 28:36] = 200  # just as bright, where the network does not look
    heatmap = Explainer(keras.Model(inputs, outputs)).heatmap(image, 1, "Occlusion")
    peak = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    assert 4 <= peak[0] < 12 and 4 <= peak[1] < 12
    assert heatmap[28:36, 28:36].max() == 0 and heatmap.max() == pytest.approx(1.0)
    # For class 0 hiding the evidence makes the class likelier: a rise, which counts as nothing.
    assert Explainer(keras.Model(inputs, outputs)).heatmap(image, 0, "Occlusion").max() == 0


def test_occlusion_of_several_classes_scores_their_summed_probability():
    """Classes 1 and 2 both rise with brightness; together they are the 'tumour' the map explains."""
    model = brightness_network([-0.01, 0.005, 0.005])
    image = np.zeros((40, 40), np.uint8)
    image[4:12, 4:12] = 200
    together = occlusion_map(model, image, [1, 2], patch=0.2, stride=0.1)
    assert together.max() > 0 and together[30:, 30:].max() == 0
    assert together.max() > occlusion_map(model, image, 1, patch=0.2, stride=0.1).max()


def test_overlay_blends_colour_over_grey():
    grey = np.full((40, 60), 100, np.uint8)
    heat = np.zeros((10, 10), np.float32)
    assert np.array_equal(overlay_heatmap(grey, heat, 0.0), np.repeat(grey[..., None], 3, axis=2))
    hot = overlay_heatmap(grey, np.ones((10, 10), np.float32), 1.0)
    assert hot.shape == (40, 60, 3) and hot[0, 0, 0] > 100 and hot[0, 0, 2] < 100  # red where heat is high


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_explains_the_max_head(method):
    explainer = Explainer(build_model(3, image_size=48, width=4, depth=2, pooling="max"))
    heatmap = explainer.heatmap(phantom(48, lesion=True)[:, :, None], 1, method)
    assert heatmap.shape == (48, 48) and not np.isnan(heatmap).any()
    assert heatmap.min() >= 0 and heatmap.max() <= 1 + 1e-6


def test_grad_cam_of_the_max_head_is_its_class_map():
    """Max pooling sends a class's gradient to its highest place only, so the Grad-CAM weights are that
    class's 1x1 kernel and Grad-CAM of the block's output is the class map (less its bias)."""
    import keras
    from scipy.ndimage import zoom

    from brain_cnn.model.network import CLASS_MAPS_LAYER

    keras.utils.set_random_seed(3)
    model = build_model(3, image_size=48, width=4, depth=2, pooling="max")
    kernel, bias = model.get_layer(CLASS_MAPS_LAYER).get_weights()
    # Positive weights on non-negative features: every class map is above its bias somewhere, as in a
    # trained network (Grad-CAM keeps only the positive part).
    model.get_layer(CLASS_MAPS_LAYER).set_weights([np.abs(kernel), bias])
    image = phantom(48, lesion=True)[:, :, None]
    maps = np.asarray(keras.Model(model.inputs, model.get_layer(CLASS_MAPS_LAYER).output)(image[None].astype(np.float32)))[0]
    explainer = Explainer(model)
    for target in range(3):
        heatmap = explainer.heatmap(image, target, "Grad-CAM")
        enlarged = zoom(maps[..., target] - bias[target], 48 / maps.shape[0], order=1)  # as tf-keras-vis enlarges
        assert np.corrcoef(heatmap.ravel(), enlarged.ravel())[0, 1] > 0.999


@pytest.mark.parametrize("pooling", ["average", "max"])
def test_the_traced_grad_cam_is_tf_keras_vis_grad_cam(pooling):
    import keras

    keras.utils.set_random_seed(5)
    explainer = Explainer(build_model(3, image_size=48, width=4, depth=2, pooling=pooling))
    image = phantom(48, lesion=True)[:, :, None]
    for target in range(3):
        traced = explainer.heatmap(image, target, "Grad-CAM")
        reference = explainer._tf_keras_vis(explainer._visualizer("Grad-CAM"), "Grad-CAM", image, target)
        np.testing.assert_allclose(traced, reference, atol=1e-5)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_explains_a_tumour_map_network(method):
    """Its output is {"probabilities", "tumour_map"}: the methods explain the class output."""
    from brain_cnn.model.tumour_maps import build_segmenter

    explainer = Explainer(build_segmenter(4, image_size=48, width=8, depth=2))
    heatmap = explainer.heatmap(phantom(48, lesion=True)[:, :, None], 0, method)
    assert heatmap.shape == (48, 48) and heatmap.dtype == np.float32 and not np.isnan(heatmap).any()
    assert heatmap.min() >= 0 and heatmap.max() <= 1 + 1e-6


def test_the_traced_grad_cam_of_a_tumour_map_network_is_tf_keras_vis_grad_cam():
    import keras

    from brain_cnn.model.tumour_maps import build_segmenter

    keras.utils.set_random_seed(5)
    explainer = Explainer(build_segmenter(4, image_size=48, width=8, depth=2))
    image = phantom(48, lesion=True)[:, :, None]
    for target in (0, 3):
        traced = explainer.heatmap(image, target, "Grad-CAM")
        reference = explainer._tf_keras_vis(explainer._visualizer("Grad-CAM"), "Grad-CAM", image, target)
        np.testing.assert_allclose(traced, reference, atol=1e-5)


def test_costly_methods_are_marked_and_the_quick_one_is_not():
    assert {m.name for m in METHODS.values() if m.costly} == {"Score-CAM", "Occlusion"}
    assert not METHODS[QUICK_METHOD].costly


def test_occlusion_reports_its_progress_up_to_done():
    seen = []
    occlusion_map(brightness_network([-0.01, 0.01]), np.zeros((40, 40), np.uint8), 1, progress=seen.append)
    assert seen == sorted(seen) and len(seen) > 2 and seen[-1] == 1.0


def test_the_queue_computes_each_map_once_and_shares_it():
    queue = ExplanationQueue()
    release, calls = threading.Event(), []

    def compute(progress):
        calls.append(1)
        release.wait(10)
        progress(0.5)
        return np.ones((4, 4), np.float32)

    first = queue.request("slice-a", compute)
    second = queue.request("slice-a", compute)  # another session, the same slice and method
    assert second is first and not first.done
    release.set()
    assert first.result(10).shape == (4, 4) and calls == [1] and first.progress == 1.0
    assert queue.request("slice-a", compute) is first and calls == [1]  # kept once done


def test_the_queue_runs_one_map_at_a_time_in_order_and_says_how_many_are_ahead():
    queue = ExplanationQueue(workers=1)
    release, order = threading.Event(), []

    def compute(name):
        def run(progress):
            release.wait(10)
            order.append(name)
            return np.zeros((2, 2), np.float32)
        return run

    jobs = [queue.request(name, compute(name)) for name in ("a", "b", "c")]
    assert [queue.ahead_of(job) for job in jobs] == [0, 1, 2]
    release.set()
    for job in jobs:
        job.result(10)
    assert order == ["a", "b", "c"] and queue.ahead_of(jobs[2]) == 0


def test_a_failed_map_is_reported_and_tried_again():
    queue = ExplanationQueue()
    attempts = []

    def flaky(progress):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("out of memory")
        return np.zeros((2, 2), np.float32)

    failed = queue.request("k", flaky)
    with pytest.raises(RuntimeError, match="out of memory"):
        failed.result(10)
    assert queue.get("k") is None
    again = queue.request("k", flaky)
    assert again is not failed and again.result(10).shape == (2, 2) and len(attempts) == 2


def test_queued_maps_give_way_to_calls_at_the_inference_gate():
    """A map's passes run at explanation priority: a call waiting for the network goes first."""
    from brain_cnn.model.engines import EXPLANATION, INFERENCE, _PRIORITY

    queue = ExplanationQueue()
    seen = queue.request("p", lambda progress: np.full((1, 1), _PRIORITY.get(), np.float32))
    assert seen.result(10)[0, 0] == EXPLANATION and _PRIORITY.get() != EXPLANATION
    assert INFERENCE.waiting == 0

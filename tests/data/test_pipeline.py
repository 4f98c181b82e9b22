import numpy as np
import pytest

from brain_cnn.data.dataset import Sample
from brain_cnn.errors import DatasetError
from brain_cnn.data.pipeline import decode_samples, intensity_remap, make_dataset

from conftest import encode, phantom


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "1.png").write_bytes(encode(phantom(64, seed=1)))
    (tmp_path / "b" / "2.jpg").write_bytes(encode(phantom(64, lesion=True, seed=2), "JPEG"))
    (tmp_path / "b" / "3.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return tmp_path


def test_unreadable_files_are_skipped_and_listed(folder):
    samples = [Sample("a/1.png", "a"), Sample("b/2.jpg", "b"), Sample("b/3.jpg", "b")]
    split = decode_samples(samples, folder, ["a", "b"], 32)
    assert split.images.shape == (2, 32, 32, 1) and split.images.dtype == np.uint8
    assert split.labels.tolist() == [0, 1] and split.files == ["a/1.png", "b/2.jpg"]
    assert split.unreadable[0][0] == "b/3.jpg" and "truncated" in split.unreadable[0][1]


def test_masks_are_decoded_beside_their_images_through_the_same_crop(folder, tmp_path):
    from brain_cnn.data.masks import EMPTY, MASK, UNKNOWN, prepare_pair

    grey = np.zeros((80, 120), np.uint8)
    grey[8:72, 50:114] = phantom(64, lesion=True, seed=4)  # off-centre in a margin: the head box matters
    (folder / "b" / "4.png").write_bytes(encode(grey))
    masks = tmp_path / "masks"
    (masks / "b").mkdir(parents=True)
    lesion = np.where(grey > 225, 255, 0).astype(np.uint8)
    (masks / "b" / "4.png").write_bytes(encode(lesion))
    (masks / "b" / "2.png").write_bytes(b"not a png")
    samples = [Sample("a/1.png", "notumor"), Sample("b/2.jpg", "glioma"), Sample("b/3.jpg", "glioma"),
               Sample("b/4.png", "glioma")]
    split = decode_samples(samples, folder, ["glioma", "notumor"], 32, masks=masks)
    assert split.files == ["a/1.png", "b/2.jpg", "b/4.png"] and split.masks.shape == (3, 32, 32, 1)
    assert split.mask_status.tolist() == [EMPTY, UNKNOWN, MASK]
    assert split.unreadable_masks[0][0] == "b/2.jpg" and "not a readable mask" in split.unreadable_masks[0][1]
    image, target = prepare_pair(grey, lesion, 32)
    assert np.array_equal(split.images[2], image) and np.array_equal(split.masks[2], target) and target.any()
    assert not split.masks[:2].any()
    assert decode_samples(samples, folder, ["glioma", "notumor"], 32).masks is None


def test_unknown_class_is_refused(folder):
    with pytest.raises(DatasetError, match="not among"):
        decode_samples([Sample("a/1.png", "zebra")], folder, ["a", "b"], 32)


@pytest.mark.parametrize("training,augmentation",
                         [(False, None), (True, "standard"), (True, "scanner"), (True, "sequence")])
def test_dataset_batches_float_images_in_range(folder, training, augmentation):
    split = decode_samples([Sample("a/1.png", "a"), Sample("b/2.jpg", "b")], folder, ["a", "b"], 32)
    batches = list(make_dataset(split, ["a", "b"], batch_size=2, training=training, seed=0,
                                augmentation=augmentation))
    images, labels = batches[0]
    assert images.shape == (2, 32, 32, 1) and labels.shape == (2, 2)
    assert float(images.numpy().min()) >= 0 and float(images.numpy().max()) <= 255
    if not training:  # evaluation sees exactly the decoded pixels
        assert np.array_equal(images.numpy().astype(np.uint8), split.images)


def test_intensity_remap_keeps_black_and_can_swap_dark_and_bright():
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (64, 1))[None, ..., None]
    batch = np.repeat(ramp, 32, axis=0)
    mapped = intensity_remap(batch, seed=0, share=1.0).numpy()
    assert mapped.shape == batch.shape and mapped.min() >= 0 and mapped.max() <= 255
    assert np.all(mapped[:, :, 0] == 0)  # the background stays black: the head keeps its outline
    # Of 32 random curves, some put the ramp's brightest end below its middle: T1 and T2 swap which is bright.
    assert np.any(mapped[:, 0, -1, 0] < mapped[:, 0, 32, 0])
    assert not np.allclose(mapped[0], mapped[1])  # each image its own curve
    # The curve depends on intensity alone: every row of the same ramp maps alike.
    assert np.allclose(mapped[:, 0], mapped[:, 63])


def test_intensity_remap_leaves_the_other_images_as_they_are():
    batch = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 1)).astype(np.float32)
    assert np.array_equal(intensity_remap(batch, seed=0, share=0.0).numpy(), batch)
    kept = intensity_remap(batch, seed=1, share=0.5).numpy()
    same = [np.array_equal(k, b) for k, b in zip(kept, batch)]
    assert 0 < sum(same) < len(batch)

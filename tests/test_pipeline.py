import numpy as np
import pytest

from brain_cnn.dataset import Sample
from brain_cnn.errors import DatasetError
from brain_cnn.pipeline import decode_samples, make_dataset

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


def test_unknown_class_is_refused(folder):
    with pytest.raises(DatasetError, match="not among"):
        decode_samples([Sample("a/1.png", "zebra")], folder, ["a", "b"], 32)


@pytest.mark.parametrize("training,augmentation", [(False, None), (True, "standard"), (True, "scanner")])
def test_dataset_batches_float_images_in_range(folder, training, augmentation):
    split = decode_samples([Sample("a/1.png", "a"), Sample("b/2.jpg", "b")], folder, ["a", "b"], 32)
    batches = list(make_dataset(split, ["a", "b"], batch_size=2, training=training, seed=0,
                                augmentation=augmentation))
    images, labels = batches[0]
    assert images.shape == (2, 32, 32, 1) and labels.shape == (2, 2)
    assert float(images.numpy().min()) >= 0 and float(images.numpy().max()) <= 255
    if not training:  # evaluation sees exactly the decoded pixels
        assert np.array_equal(images.numpy().astype(np.uint8), split.images)

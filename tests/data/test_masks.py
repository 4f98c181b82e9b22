import numpy as np
import pytest

from brain_cnn.errors import UnreadableImageError
from brain_cnn.data.masks import EMPTY, MASK, UNKNOWN, mask_folder, mask_status, prepare_pair, read_mask
from brain_cnn.scan.preprocess import prepare

from conftest import encode, phantom


def test_masks_are_found_mirrored_or_flat(tmp_path):
    data = tmp_path / "set"
    (data / "Training" / "glioma").mkdir(parents=True)
    (tmp_path / "set-masks" / "Training" / "glioma").mkdir(parents=True)
    (tmp_path / "set-masks" / "Training" / "glioma" / "a.png").write_bytes(encode(np.zeros((8, 8), np.uint8)))
    (tmp_path / "set-masks" / "CASE_1_7.png").write_bytes(encode(np.zeros((8, 8), np.uint8)))
    masks = mask_folder(data)
    assert masks == (tmp_path / "set-masks").resolve()
    assert mask_status(masks, "Training/glioma/a.jpg", False)[0] == MASK
    assert mask_status(masks, "glioma FLAIR/CASE_1_7.jpg", False)[0] == MASK  # one mask for every sequence
    assert mask_status(masks, "Training/glioma/b.jpg", False) == (UNKNOWN, None)  # no mask is not no tumour
    assert mask_status(masks, "Training/notumor/c.jpg", True) == (EMPTY, None)
    assert mask_folder(tmp_path / "other") is None


def test_a_mask_goes_through_its_slice_crop(tmp_path):
    grey = np.zeros((150, 220), np.uint8)
    grey[10:140, 40:200] = phantom(200, lesion=False, seed=1, margin=0.0)[35:165, 20:180]
    grey[60:80, 150:170] = 250  # the tumour
    truth = np.zeros_like(grey)
    truth[60:80, 150:170] = 255
    image, mask = prepare_pair(grey, truth, 64)
    assert (image == prepare(grey, 64)).all()  # the one preprocessing path
    assert mask.shape == (64, 64, 1) and set(np.unique(mask)) == {0, 255}
    assert image[mask > 0].mean() > 200 and image[mask == 0].mean() < 150
    # A mask stored at another size is brought to the slice's first.
    _, small = prepare_pair(grey, np.asarray(truth[::2, ::2]), 64)
    assert (small != mask).mean() < 0.02
    assert not prepare_pair(grey, None, 64)[1].any()


def test_unreadable_masks_are_refused(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"%PDF-1.4")
    with pytest.raises(UnreadableImageError):
        read_mask(tmp_path / "bad.png")
    (tmp_path / "grey.png").write_bytes(encode(np.array([[0, 100], [200, 255]], np.uint8)))
    assert read_mask(tmp_path / "grey.png").tolist() == [[0, 0], [255, 255]]


def test_a_folder_of_data_sets_finds_each_sets_masks_and_never_its_images(tmp_path):
    (tmp_path / "set" / "Testing" / "glioma").mkdir(parents=True)
    (tmp_path / "set-masks" / "Testing" / "glioma").mkdir(parents=True)
    (tmp_path / "set-masks" / "Testing" / "glioma" / "a.png").write_bytes(encode(np.zeros((8, 8), np.uint8)))
    (tmp_path / "other" / "glioma").mkdir(parents=True)
    (tmp_path / "other" / "glioma" / "b.png").write_bytes(encode(phantom(32)))  # a PNG image, not a mask
    masks = mask_folder(tmp_path)
    assert masks == tmp_path.resolve()
    assert mask_status(masks, "set/Testing/glioma/a.jpg", False) == (MASK, masks / "set-masks/Testing/glioma/a.png")
    assert mask_status(masks, "other/glioma/b.png", False) == (UNKNOWN, None)

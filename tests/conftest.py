"""Shared fixtures: synthetic MRI-like phantoms and small data folders made on the fly.

No test reads a real scan except those marked ``realdata``, which find the
public data sets at ``$BRAIN_CNN_DATA`` or ``../shared/data`` and skip otherwise.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PROJECT = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    return Path(os.environ.get("BRAIN_CNN_DATA", PROJECT.parent / "shared" / "data"))


def phantom(size: int = 96, lesion: bool = False, seed: int = 0, margin: float = 0.15) -> np.ndarray:
    """A greyscale axial 'head': skull ring, brain, optional bright lesion, in a black margin."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2)
    ry, rx = size * (0.5 - margin), size * (0.42 - margin)
    r = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    image = np.zeros((size, size), np.float32)
    image[r <= 1.0] = 200  # skull
    # Brain with a coarse texture of its own, as anatomy differs between patients: two phantoms of different
    # seeds are different slices, not copies of one (brain_cnn.data.leakage).
    texture = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), size / 20)
    brain = 90 + 25 * texture / (texture.std() + 1e-6)
    image[r <= 0.8] = brain[r <= 0.8]
    if lesion:
        ly, lx = cy + rng.uniform(-0.3, 0.3) * ry, cx + rng.uniform(-0.3, 0.3) * rx
        image[((yy - ly) ** 2 + (xx - lx) ** 2) <= (size * 0.08) ** 2] = 240
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None, **params) -> bytes:
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def write_class_folder(folder: Path, per_class: dict[str, int], size: int = 64, start_seed: int = 0) -> None:
    """Write JPEG phantoms; class names containing 'tumo' or '+' get a lesion."""
    seed = start_seed
    for name, count in per_class.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            lesion = "no" not in name.lower()
            (folder / name / f"img_{i:03d}.jpg").write_bytes(encode(phantom(size, lesion, seed), "JPEG"))
            seed += 1


def make_dicom(pixels: np.ndarray, *, photometric: str = "MONOCHROME2", slope: float = 1.0, intercept: float = 0.0,
               window: tuple[float, float] | None = None, position: float | None = None, series: str = "1.2.826.0.1.1",
               instance: int = 1, compress: str | None = None, pixel_data: bool = True, **elements) -> bytes:
    """A de-novo MR DICOM file (with made-up patient identifiers) from a (rows, cols) or (frames, rows, cols) array.

    ``elements`` set or override header elements by keyword (e.g. ``EchoTime=100``).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    # Deterministic UIDs, so generated files (and the fuzz test's seeds) are the same every run.
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[series, str(instance), str(position)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PID-0042", "19700101"
    ds.Modality, ds.BodyPartExamined, ds.SeriesDescription = "MR", "BRAIN", "AX T1 POST"
    ds.SliceThickness, ds.PixelSpacing = 5, [0.5, 0.5]
    ds.SeriesInstanceUID, ds.InstanceNumber = series, instance
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    if position is not None:
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, position], [1, 0, 0, 0, 1, 0]
    if pixel_data:
        ds.Rows, ds.Columns = pixels.shape[-2:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        if pixels.ndim == 3:
            ds.NumberOfFrames = pixels.shape[0]
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        if window:
            ds.WindowCenter, ds.WindowWidth = window
        ds.PixelData = pixels.astype(np.uint16).tobytes()
        if compress:
            ds.compress(compress)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_nifti(volume: np.ndarray, gz: bool = False) -> bytes:
    import gzip

    import nibabel as nib

    data = nib.Nifti1Image(volume.astype(np.float32), np.eye(4)).to_bytes()
    return gzip.compress(data) if gz else data


def head_volume(seed: int, depth: int = 48, size: int = 192) -> np.ndarray:
    """A synthetic head (depth, size, size): an ellipsoid whose brain carries a fixed, asymmetric 3-D texture
    and a lesion off the midline, so that its slices differ from each other and from their mirror images."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[0:depth, 0:size, 0:size].astype(np.float32)
    r = ((zz - depth / 2) / (depth * 0.6)) ** 2 + ((yy - size / 2) / (size * 0.42)) ** 2 \
        + ((xx - size / 2) / (size * 0.34)) ** 2
    texture = gaussian_filter(rng.normal(0, 1, (depth, size, size)).astype(np.float32), (2, 10, 10))
    volume = np.where(r <= 0.8, 100 + 40 * texture / texture.std(), 0)
    volume[(r > 0.8) & (r <= 1.0)] = 210  # skull
    lesion = ((zz - depth * 0.55) / 8) ** 2 + ((yy - size * 0.4) / 14) ** 2 + ((xx - size * 0.62) / 14) ** 2
    volume[lesion <= 1] = 245
    return np.clip(volume, 0, 255).astype(np.uint8)


def write_slices(folder, heads: dict[str, list[int]], copies: bool = False, seed: int = 0) -> None:
    """One class folder per key, one image per listed slice of a fresh head each; ``copies`` adds a mirrored
    and a plain, re-encoded copy of every image beside it."""
    for label, slices in heads.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for k, z in enumerate(slices):
            grey = head_volume(seed=seed + 100 * k + len(label), depth=32, size=128)[z]
            (folder / label / f"img_{k:03d}.png").write_bytes(encode(grey))
            if copies:
                (folder / label / f"img_{k:03d}_m.png").write_bytes(encode(np.ascontiguousarray(np.fliplr(grey))))
                (folder / label / f"img_{k:03d}_c.jpg").write_bytes(encode(grey, "JPEG", quality=80))


def brightness_network(weights):
    """Softmax over classes scored by the mean brightness of the whole input times ``weights``."""
    import keras
    from keras import layers

    inputs = keras.Input((40, 40, 1))
    pooled = layers.GlobalAveragePooling2D()(inputs)
    outputs = layers.Dense(len(weights), activation="softmax",
                           kernel_initializer=keras.initializers.Constant([weights]))(pooled)
    return keras.Model(inputs, outputs)


@pytest.fixture
def split_dataset(tmp_path: Path) -> Path:
    """ROOT/Training and ROOT/Testing with a tumour and a no-tumour class."""
    root = tmp_path / "phantoms"
    write_class_folder(root / "Training", {"notumor": 24, "tumor": 24})
    write_class_folder(root / "Testing", {"notumor": 8, "tumor": 8}, start_seed=1000)
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A small model trained for a few steps on phantoms, with its full model folder."""
    from brain_cnn.evaluation.evaluate import evaluate_model_folder
    from brain_cnn.training.run import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny-data") / "phantoms"
    write_class_folder(root / "Training", {"notumor": 24, "tumor": 24})
    write_class_folder(root / "Testing", {"notumor": 8, "tumor": 8}, start_seed=1000)
    out = tmp_path_factory.mktemp("tiny-models") / "tiny"
    config = TrainConfig(data=str(root), out=str(out), epochs=2, image_size=48, width=4, depth=2,
                         batch_size=8, max_steps=3, seed=1)
    folder = train(config)
    evaluate_model_folder(folder)
    return folder


def train_tiny_map_model(folder: Path, steps: int = 60, seed: int = 1) -> Path:
    """A small tumour-map network (:mod:`brain_cnn.model.tumour_maps`) trained on phantoms and their lesion masks,
    written as a model folder (``model.keras`` and ``card.json``)."""
    import keras

    from brain_cnn.data.masks import prepare_pair
    from brain_cnn.files import sha256_file
    from brain_cnn.model.card import MODEL_FILE, ModelCard
    from brain_cnn.model.tumour_maps import CLASSES, build_segmenter
    from brain_cnn.training.tumour_maps import DecodedPairs, _compile, make_pair_dataset

    keras.utils.set_random_seed(seed)
    pairs = []
    for i in range(64):
        lesion = i % 2 == 0
        grey = phantom(64, lesion, 5000 + i)
        mask = np.where(grey > 225, 255, 0).astype(np.uint8) if lesion else None  # the lesion is 240, the skull 200
        pairs.append((*prepare_pair(grey, mask, 48), CLASSES.index("glioma" if lesion else "notumor")))
    decoded = DecodedPairs(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]),
                           np.array([p[2] for p in pairs]), np.ones(len(pairs), bool), ["phantoms"] * len(pairs),
                           [f"phantoms/{i}.png" for i in range(len(pairs))], [])
    model = build_segmenter(len(CLASSES), image_size=48, width=8, depth=2)
    _compile(model, 3e-3)
    model.fit(make_pair_dataset(decoded, 16, training=False).repeat(), steps_per_epoch=steps, epochs=1, verbose=0)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    ModelCard(name=folder.name, classes=list(CLASSES), image_size=48, training={"tumour_map": True},
              sha256=sha256_file(folder / MODEL_FILE)).save(folder)
    return folder


def constant_model(folder: Path, probabilities: dict[str, float], decision: str = "top class",
                   image_size: int = 48) -> Path:
    """A model folder whose network answers ``probabilities`` (class: p, in output order) for every input, whose
    card has ``decision``: calls that the decision rule alone decides. It has a ``last_conv`` layer (zero
    weights), so the app's heat maps can be drawn."""
    import keras
    from keras import layers

    from brain_cnn.files import sha256_file
    from brain_cnn.model.card import MODEL_FILE, ModelCard

    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = layers.Conv2D(2, 3, padding="same", kernel_initializer="zeros", name="last_conv")(inputs)
    x = layers.GlobalAveragePooling2D(name="answer_pool")(x)
    bias = np.log(np.array(list(probabilities.values()), np.float32))
    outputs = layers.Dense(len(probabilities), activation="softmax", kernel_initializer="zeros",
                           bias_initializer=keras.initializers.Constant(bias), name="answer")(x)
    folder.mkdir(parents=True, exist_ok=True)
    keras.Model(inputs, outputs).save(folder / MODEL_FILE)
    ModelCard(name=folder.name, classes=list(probabilities), image_size=image_size, decision=decision,
              sha256=sha256_file(folder / MODEL_FILE)).save(folder)
    return folder


def mapped_slice(side: int, tumour: float = 0.9, spacing: tuple[float, float] | None = None,
                 refusal: str | None = None):
    """A :class:`~brain_cnn.inference.assessment.SliceAssessment` of a tumour-map network, made by hand: its map
    (24 x 24 over a 48 x 48 head crop) is 1 on a ``side`` x ``side`` square, so the outline encloses (2 side)²
    pixels of the slice; ``tumour`` is P(glioma), the rest P(notumor)."""
    from brain_cnn.inference.assessment import SliceAssessment
    from brain_cnn.inference.predictor import SliceCall

    tumour_map = np.zeros((24, 24), np.float32)
    tumour_map[4:4 + side, 4:4 + side] = 1.0
    probabilities = {"glioma": tumour, "meningioma": 0.0, "notumor": 1 - tumour, "pituitary": 0.0}
    return SliceAssessment("x", np.zeros((48, 48), np.uint8), np.zeros((48, 48, 1), np.uint8),
                           SliceCall(probabilities, refusal, tumour_map=tumour_map), pixel_spacing=spacing)


@pytest.fixture(scope="session")
def tiny_map_model(tmp_path_factory) -> Path:
    """A tumour-map model folder trained for a few steps on phantoms (see :func:`train_tiny_map_model`)."""
    return train_tiny_map_model(tmp_path_factory.mktemp("tiny-map-models") / "tiny-maps")


def models_dir_holding(model: Path, directory: Path) -> Path:
    """``directory`` (a models folder for the app) holding a copy of the model folder ``model``."""
    shutil.copytree(model, directory / model.name)
    return directory


def app_test(models: Path, monkeypatch, tmp_path: Path, timeout: int = 120):
    """An AppTest of app.py over the model folders in ``models``, with no data sets and its own audit log."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("BRAIN_CNN_MODELS", str(models))
    monkeypatch.setenv("BRAIN_CNN_DATA", str(tmp_path / "no-data-here"))
    monkeypatch.setenv("BRAIN_CNN_AUDIT", str(tmp_path / "audit.jsonl"))
    monkeypatch.chdir(PROJECT)
    return AppTest.from_file(str(PROJECT / "app.py"), default_timeout=timeout)

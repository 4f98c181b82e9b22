"""Run a trained model on files: the one inference path of the CLI and the app."""

from __future__ import annotations


from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from brain_cnn.data.classes import is_no_tumour
from brain_cnn.data.dataset import list_images
from brain_cnn.errors import ModelFolderError, UnreadableImageError
from brain_cnn.inference.calibration import apply_temperature
from brain_cnn.inference.conformal import DEFAULT_COVERAGE, CoverageError
from brain_cnn.inference.decision import TOP_CLASS, called_class
from brain_cnn.inference.outline import map_on_slice
from brain_cnn.model.engines import forward
from brain_cnn.model.folder import load_model, LoadedModel
from brain_cnn.model.ood import header_check, image_check
from brain_cnn.model.tumour_maps import class_output, map_output
from brain_cnn.scan.preprocess import DECODE_WORKERS, load_prepared, load_slices
from brain_cnn.scan.read import Scan

__all__ = ["Predictor", "SliceCall", "expand_inputs", "predict_probabilities", "predict_outputs", "predict_all",
           "SCAN_SUFFIXES"]

# What `predict` picks up in a folder: images, DICOM, NIfTI (DICOM files
# without an extension are recognised by their DICM marker).
SCAN_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif",
                 ".dcm", ".dicom", ".nii", ".nii.gz", ".zip")


def predict_all(model, images: np.ndarray, batch_size: int = 64, flip: bool = False,
                mixed_precision: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Pooled features (N, D), raw probabilities (N, K) and tumour maps (N, h, w) for ``uint8`` inputs
    (N, S, S, 1); the maps are None for a network without them.

    ``flip=True`` averages the outputs of each image and its left-right mirror
    image (test-time augmentation; brains are near-symmetric and training
    flipped them too); both go through the network in one batch, and the
    mirror image's map is mirrored back before averaging.
    """
    has_map = map_output(model) is not None
    if len(images) == 0:
        side = int(map_output(model).shape[1]) if has_map else 0
        return (np.zeros((0, 0)), np.zeros((0, int(class_output(model).shape[-1]))),
                np.zeros((0, side, side), np.float32) if has_map else None)
    run = forward(model, mixed_precision=mixed_precision)
    features, probs, maps = [], [], []
    step = max(1, batch_size // 2) if flip else batch_size
    for i in range(0, len(images), step):
        chunk = images[i : i + step].astype(np.float32)
        if flip:
            chunk = np.concatenate([chunk, chunk[:, :, ::-1]])
        out = run(np.ascontiguousarray(chunk))
        f, p = out[0], out[1]
        m = out[2][..., 0] if has_map else None
        if flip:
            half = len(chunk) // 2
            f, p = (f[:half] + f[half:]) / 2, (p[:half] + p[half:]) / 2
            m = (m[:half] + m[half:, :, ::-1]) / 2 if has_map else None
        features.append(f)
        probs.append(p)
        maps.append(m)
    return (np.concatenate(features).astype(np.float64), np.concatenate(probs).astype(np.float64),
            np.concatenate(maps).astype(np.float32) if has_map else None)


def predict_outputs(model, images: np.ndarray, batch_size: int = 64, flip: bool = False,
                    mixed_precision: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features (N, D) and raw probabilities (N, K) for ``uint8`` inputs (N, S, S, 1) (see :func:`predict_all`)."""
    return predict_all(model, images, batch_size, flip, mixed_precision)[:2]


def predict_probabilities(model, images: np.ndarray, batch_size: int = 64, flip: bool = False,
                          mixed_precision: bool = False) -> np.ndarray:
    """Raw (uncalibrated) probabilities (N, K) for ``uint8`` inputs (N, S, S, 1)."""
    return predict_outputs(model, images, batch_size, flip, mixed_precision)[1]


def _is_scan_file(path: Path) -> bool:
    if path.name.lower().endswith(SCAN_SUFFIXES):
        return True
    if path.suffix == "" and path.is_file():
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    return False


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files to predict: each file as given; each folder's scans (images, DICOM, NIfTI), recursively."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(p for p in list_images(path, extensions=None) if _is_scan_file(p))
        else:
            files.append(path)
    return files


@dataclass
class SliceCall:
    """The model's answer for one slice: calibrated probabilities, or a reason it cannot assess."""

    probabilities: dict[str, float]
    refusal: str | None = None  # "cannot assess" reason; when set, there is no label
    distance: float | None = None  # feature distance of the out-of-distribution gate
    # Tumour probability map (h, w) float32 over the model input (the head crop resized), for a network
    # with one; brain_cnn.inference.outline brings it back to the slice.
    tumour_map: np.ndarray | None = None
    decision: str = TOP_CLASS  # the model card's rule for the call (brain_cnn.inference.decision)
    # The conformal prediction set (classes, most likely first; brain_cnn.inference.conformal) at ``coverage``;
    # None when the model has no calibration.
    prediction_set: list[str] | None = None
    coverage: float | None = None

    @property
    def label(self) -> str | None:
        """The call under the card's decision rule; None for a refused slice."""
        return None if self.refusal else called_class(self.probabilities, self.decision)

    @property
    def top_class(self) -> str:
        """The most probable class, refused or not."""
        return max(self.probabilities, key=self.probabilities.get)


class Predictor:
    """A loaded model folder, ready to classify files or bytes.

    Example:
        >>> predictor = Predictor("models/brain-tumor-mri")  # doctest: +SKIP
        >>> predictor.predict_bytes(open("scan.jpg", "rb").read())["label"]  # doctest: +SKIP
        'glioma'
    """

    def __init__(self, model_folder: str | Path | LoadedModel, coverage: float | None = None):
        """``coverage``: the level of the prediction sets (90 % by default, where the model has a calibration).

        Raises:
            ModelFolderError: the folder is unusable.
            CoverageError: a coverage that is no rate, more than the calibration split can give, or asked of
                a model with no calibration.
        """
        self.loaded = model_folder if isinstance(model_folder, LoadedModel) else load_model(model_folder)
        self.conformal = self.loaded.conformal
        if self.conformal is None and coverage is not None:
            raise CoverageError(f"the model {self.loaded.card.name} has no calibration for prediction sets "
                                "(it was trained without a calibration split: see docs/conformal.md)")
        # An asked level is checked now; the default on a calibration too small for it gives every class.
        self.coverage = (None if self.conformal is None else
                         DEFAULT_COVERAGE if coverage is None else self.conformal.check(coverage))
        self.card = self.loaded.card
        self.model = self.loaded.model
        self.gate = self.loaded.gate
        self.classes = list(self.card.classes)
        self.image_size = self.card.image_size
        self.has_map = map_output(self.model) is not None  # a tumour-map network (brain_cnn.model.tumour_maps)
        # Build the inference engine now (graph conversion, first-call allocations),
        # so the first scan a user sends is as fast as the rest.
        self.predict_inputs(np.zeros((1, self.image_size, self.image_size, 1), np.uint8))

    def predict_inputs(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities (the card's temperature applied) for prepared inputs (N, S, S, 1)."""
        raw = predict_probabilities(self.model, images, batch_size, self.card.flip_averaging, self.card.mixed_precision)
        return apply_temperature(raw, self.card.temperature)

    def call_slices(self, scan: Scan, inputs: np.ndarray, batch_size: int = 32) -> list[SliceCall]:
        """Classify the prepared slices of ``scan``, refusing those the model cannot judge."""
        return self.call_scans([(scan, inputs)], batch_size)[0]

    def call_scans(self, scans: list[tuple[Scan, np.ndarray]], batch_size: int = 32) -> list[list[SliceCall]]:
        """:meth:`call_slices` for several scans in one pass through the network."""
        if not scans:
            return []
        features, raw, maps = predict_all(self.model, np.concatenate([inputs for _, inputs in scans]), batch_size,
                                          self.card.flip_averaging, self.card.mixed_precision)
        probs = apply_temperature(raw, self.card.temperature)
        distances = self.gate.distances(features) if self.gate is not None else [None] * len(probs)
        sets = self.conformal.sets(probs, self.coverage, strict=False) if self.conformal is not None else None
        results, offset = [], 0
        for scan, inputs in scans:
            calls = []
            said = header_check(scan.header)  # the same for every slice of the scan
            for i, grey in enumerate(scan.slices):
                p, distance = probs[offset + i], distances[offset + i]
                refusal = said or image_check(grey, scan.colourfulness)
                if refusal is None and distance is not None and distance > self.gate.threshold:
                    refusal = (f"unlike the brain MRI slices this model was trained on "
                               f"(feature distance {distance:.0f}, limit {self.gate.threshold:.0f})")
                chosen = None if sets is None else [self.classes[k] for k in np.argsort(-p, kind="stable")
                                                    if sets[offset + i, k]]
                calls.append(SliceCall({c: float(v) for c, v in zip(self.classes, p)},
                                       f"cannot assess: {refusal}" if refusal else None,
                                       None if distance is None else float(distance),
                                       None if maps is None else maps[offset + i], self.card.decision,
                                       chosen, self.coverage))
            results.append(calls)
            offset += len(inputs)
        return results

    @staticmethod
    def _result(name: str, call: SliceCall) -> dict[str, Any]:
        if call.refusal:
            return {"file": name, "label": None, "cannot_assess": call.refusal}
        result = {"file": name, "label": call.label,
                  "probabilities": {c: round(p, 6) for c, p in call.probabilities.items()}}
        negative = [c for c in call.probabilities if is_no_tumour(c)]
        if negative and len(negative) < len(call.probabilities):  # the question that matters first, answered
            result["tumour_probability"] = round(1.0 - sum(call.probabilities[c] for c in negative), 6)
        # Every line has the keys; null where the model has no calibration.
        result["prediction_set"], result["coverage"] = call.prediction_set, call.coverage
        return result

    def predict_bytes(self, data: bytes, name: str = "upload") -> dict[str, Any]:
        """Classify one single-slice file's bytes (for volumes use :meth:`predict_files`).

        Raises:
            UnreadableImageError: the bytes are not a readable image.
        """
        inputs, scan = load_slices(data, self.image_size, name)
        if scan.is_volume:
            raise UnreadableImageError(f"{name}: a volume of {len(inputs)} slices, not a single slice")
        return self._result(name, self.call_slices(scan, inputs)[0])

    def predict_files(self, files: list[str | Path], batch_size: int = 32,
                      maps: bool = False) -> Iterator[dict[str, Any]]:
        """Classify files in order, ``batch_size`` files at a time, so memory stays bounded.

        Yields one dict per slice: ``{"file", "label", "probabilities", "prediction_set", "coverage"}`` (the
        conformal set, most likely class first, and its level; both null for a model without calibration; and
        ``"tumour_probability"``, 1 - P(no tumour), for a model with tumour and no-tumour classes), or
        ``{"file", "label": None, "cannot_assess"}`` for a slice the gate refuses
        (plus ``"slice"`` and ``"slice_index"`` for volumes: multi-frame DICOM,
        NIfTI, and ``"sequence"``, e.g. "T2", where a DICOM header tells it), or
        ``{"file", "error"}`` for a file that cannot be read.

        With ``maps=True`` (a tumour-map network only) each slice's dict also
        holds ``"tumour_map"``: the map in the slice's own coordinates, (H, W)
        float32 (:func:`brain_cnn.inference.outline.map_on_slice`), for the
        caller to write out and drop; it is not JSON.

        Raises:
            ModelFolderError: ``maps=True`` with a network without tumour maps.
        """
        if maps and not self.has_map:
            raise ModelFolderError(f"the model {self.card.name} has no tumour maps (a tumour-map network gives them)")

        def decode(path):
            try:
                if not maps:
                    inputs, scan = load_slices(path, self.image_size)
                    return inputs, scan, None, None
                # The head crop's offset and side of each slice bring its map back; the crops themselves are dropped.
                prepared, scan = load_prepared(path, self.image_size)
                return (np.stack([p.model_input for p in prepared]), scan,
                        [(p.offset, p.crop.shape[0]) for p in prepared], None)
            except UnreadableImageError as error:
                return None, None, None, str(error)

        with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
            for start in range(0, len(files), batch_size):
                chunk = files[start : start + batch_size]
                decoded = list(pool.map(decode, chunk))
                calls = iter(self.call_scans([(scan, inputs) for inputs, scan, _, _ in decoded if inputs is not None],
                                             batch_size))
                for path, (inputs, scan, crops, error) in zip(chunk, decoded):
                    if inputs is None:
                        yield {"file": str(path), "error": error}
                        continue
                    for i, call in enumerate(next(calls)):
                        result = self._result(str(path), call)
                        if scan.is_volume:
                            result.update(slice=scan.slice_labels[i], slice_index=i)
                        if scan.sequence is not None:
                            result["sequence"] = scan.sequence.name
                        if maps:
                            offset, side = crops[i]
                            result["tumour_map"] = map_on_slice(call.tumour_map, offset, side, scan.slices[i].shape)
                        yield result

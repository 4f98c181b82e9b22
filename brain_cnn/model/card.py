"""The model card: the small machine-readable file that says what a trained model is.

``card.json`` is written only by :meth:`ModelCard.save`: training, making an
ensemble, evaluation, screening and leave-one-source-out all load the card,
change their fields and save it, so no writer drops another's keys. The names
of the other files of a model folder are here too (see ``docs/model-folder.md``).
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from brain_cnn.errors import ModelFolderError
from brain_cnn.files import read_json, write_json
from brain_cnn.inference.decision import DECISIONS, TOP_CLASS
from brain_cnn.scan.preprocess import PREPROCESSING_VERSION

__all__ = ["MODEL_FILE", "CARD_FILE", "HISTORY_FILE", "EVALUATION_FILE", "SPLIT_FILE", "EXTERNAL_FILE", "LOSO_FILE", "TUMOUR_MAPS_FILE",
           "ModelCard", "load_card", "read_external", "read_loso", "library_versions"]

MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
HISTORY_FILE = "history.json"
EVALUATION_FILE = "evaluation.json"
SPLIT_FILE = "split.json"
EXTERNAL_FILE = "external.json"  # screening reports on other data sets (brain_cnn.evaluation.screening)
LOSO_FILE = "loso.json"  # leave-one-source-out results (brain_cnn.evaluation.loso)
STUDIES_FILE = "follow_up.json"  # how well it measures a study against expert masks (brain_cnn.evaluation.studies)
TUMOUR_MAPS_FILE = "tumour_maps.json"  # a tumour-map network's figures on held-out data (brain_cnn.evaluation.tumour_maps)


@dataclass
class ModelCard:
    """Machine-readable description of a trained model."""

    name: str
    classes: list[str]
    image_size: int
    channels: int = 1
    preprocessing_version: str = PREPROCESSING_VERSION
    dataset: dict[str, Any] = field(default_factory=dict)  # name, root, split origin, counts
    training: dict[str, Any] = field(default_factory=dict)  # settings, epochs run, seconds
    metrics: dict[str, Any] = field(default_factory=dict)  # headline test/validation metrics
    gate: dict[str, Any] = field(default_factory=dict)  # out-of-distribution gate: file, sha256, threshold
    # Conformal prediction sets and screening threshold (brain_cnn.inference.conformal): file, sha256, what
    # they were calibrated on; empty when the folder has no calibration split.
    conformal: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0  # softmax temperature fitted on validation (see brain_cnn.inference.calibration)
    flip_averaging: bool = False  # average each input with its mirror image; chosen on validation
    # How a call is made from the probabilities (brain_cnn.inference.decision); cards written before the field
    # say nothing, and their figures were measured on the top class.
    decision: str = TOP_CLASS
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    sha256: str = ""
    intended_use: str = (
        "Decision support for classifying single axial brain MRI slices into the listed classes. "
        "Not a diagnosis; a radiologist reads every case."
    )
    limitations: list[str] = field(default_factory=list)
    validated_on: list[str] = field(default_factory=list)  # other data sets screened (brain_cnn.evaluation.screening)
    members: list[dict[str, str]] = field(default_factory=list)  # an ensemble's member folders (brain_cnn.model.ensemble)
    # A leave-one-source-out fold's recipe and protocol (brain_cnn.evaluation.loso); absent for other models.
    loso_recipe: dict[str, Any] | None = None
    loso_protocol: int | None = None
    # Keys this version does not know (a newer writer's): kept, and written back as they were.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def mixed_precision(self) -> bool:
        """Whether it may run in half precision on a GPU: it was trained that way."""
        return str(self.training.get("distribution", {}).get("precision", "")).startswith("mixed")

    def trained_data_sets(self) -> set[str]:
        """The data sets some of whose images the model trained on: the main one and each added one."""
        # Cards written before sources carried "data_set" have only the display name, "NAME (training split of ...)".
        return {self.dataset.get("name")} | {s.get("data_set") or s["name"].split(" (")[0]
                                             for s in self.dataset.get("sources", []) if "label_map" in s}

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        extra = payload.pop("extra")
        for key in ("loso_recipe", "loso_protocol"):
            if payload[key] is None:
                del payload[key]
        return {**payload, **extra}

    def save(self, folder: str | Path) -> None:
        """Write ``card.json`` into ``folder``: the one writer of model cards."""
        write_json(Path(folder, CARD_FILE), self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ModelCard:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in payload.items() if k in known},
                   extra={k: v for k, v in payload.items() if k not in known})


def load_card(folder: str | Path) -> ModelCard:
    """Read and check the card of a model folder (without loading weights).

    Raises:
        ModelFolderError: no such folder, a missing or unreadable card, or one this version cannot use.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder not found: {folder}")
    payload = read_json(folder / CARD_FILE, error=ModelFolderError)
    try:
        card = ModelCard.from_dict(payload)
    except TypeError as error:
        raise ModelFolderError(f"{folder.name}: card.json lacks a required field ({error})") from None
    if not card.classes or card.image_size <= 0:
        raise ModelFolderError(f"{folder.name}: card.json has no classes or image size")
    if card.decision not in DECISIONS:
        raise ModelFolderError(f"{folder.name}: card.json's decision rule {card.decision!r} is not one this "
                               f"version knows ({', '.join(map(repr, DECISIONS))})")
    if card.preprocessing_version != PREPROCESSING_VERSION:
        raise ModelFolderError(
            f"{folder.name}: trained with preprocessing v{card.preprocessing_version}, this "
            f"version of brain-cnn uses v{PREPROCESSING_VERSION}; retrain the model"
        )
    return card


def read_external(folder: str | Path) -> dict[str, Any]:
    """The screening reports of a model folder by data set name; empty when there are none or the file is bad."""
    value = read_json(Path(folder) / EXTERNAL_FILE, default={})
    return value if isinstance(value, dict) else {}


def read_loso(folder: str | Path) -> dict[str, Any] | None:
    """The leave-one-source-out results attached to a model folder; None when there are none or the file is bad."""
    value = read_json(Path(folder) / LOSO_FILE, default=None)
    return value if isinstance(value, dict) else None


def library_versions() -> dict[str, str]:
    """The versions of the libraries that decide a model's numbers, for its card."""
    import cv2
    import keras
    import numpy as np
    import PIL
    import sklearn
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "pillow": PIL.__version__,
        "opencv": cv2.__version__,
    }

"""A trained model on disk: ``model.keras`` plus the card that says what it is.

``models/NAME/`` holds ``model.keras``, ``card.json``, ``history.json``,
``evaluation.json`` and ``split.json`` (an ensemble's folder names its member
folders instead of holding weights: see :mod:`brain_cnn.model.ensemble`). The card records the SHA-256 of the
weights file; :func:`load_model` refuses a file whose digest differs, and
deserialises with Keras safe mode (no arbitrary code from a model file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from brain_cnn.errors import ModelFolderError
from brain_cnn.scan.preprocess import PREPROCESSING_VERSION

__all__ = ["DEFAULT_MODEL", "ModelCard", "LoadedModel", "sha256_file", "load_card", "load_model", "list_model_folders"]

# The model the app opens first and `predict` uses without --model: the ensemble of the two
# 4-class models, the most accurate under the 20 ms a slice budget (README, "The bundled model").
DEFAULT_MODEL = "brain-tumor-mri-ensemble"
MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
HISTORY_FILE = "history.json"
EVALUATION_FILE = "evaluation.json"
SPLIT_FILE = "split.json"


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
    temperature: float = 1.0  # softmax temperature fitted on validation (see calibration.py)
    flip_averaging: bool = False  # average each input with its mirror image; chosen on validation
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

    @property
    def mixed_precision(self) -> bool:
        """Whether it may run in half precision on a GPU: it was trained that way."""
        return str(self.training.get("distribution", {}).get("precision", "")).startswith("mixed")

    def save(self, folder: str | Path) -> None:
        Path(folder, CARD_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ModelCard:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in payload.items() if k in known})


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFolderError(f"{path.parent.name}: {path.name} is missing") from None
    except (OSError, ValueError) as error:
        raise ModelFolderError(f"{path.parent.name}: {path.name} is unreadable ({error})") from None


def load_card(folder: str | Path) -> ModelCard:
    """Read and check the card of a model folder (without loading weights)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder not found: {folder}")
    try:
        card = ModelCard.from_dict(read_json(folder / CARD_FILE))
    except TypeError as error:
        raise ModelFolderError(f"{folder.name}: card.json lacks a required field ({error})") from None
    if not card.classes or card.image_size <= 0:
        raise ModelFolderError(f"{folder.name}: card.json has no classes or image size")
    if card.preprocessing_version != PREPROCESSING_VERSION:
        raise ModelFolderError(
            f"{folder.name}: trained with preprocessing v{card.preprocessing_version}, this "
            f"version of brain-cnn uses v{PREPROCESSING_VERSION}; retrain the model"
        )
    return card


@dataclass
class LoadedModel:
    folder: Path
    card: ModelCard
    model: Any  # keras.Model
    gate: Any = None  # brain_cnn.model.ood.Gate, when the folder has a fitted gate


def load_model(folder: str | Path) -> LoadedModel:
    """Load a model folder after checking its card and the weights' SHA-256.

    Raises:
        ModelFolderError: folder missing, files missing, checksum mismatch,
            or a model that Keras cannot load in safe mode.
    """
    folder = Path(folder)
    card = load_card(folder)
    if card.members:
        from brain_cnn.model.ensemble import load_members

        return LoadedModel(folder=folder, card=card, model=load_members(folder, card), gate=_load_gate(folder, card))
    weights = folder / MODEL_FILE
    if not weights.is_file():
        raise ModelFolderError(f"{folder.name}: {MODEL_FILE} is missing")
    actual = sha256_file(weights)
    if actual != card.sha256:
        raise ModelFolderError(
            f"{folder.name}: {MODEL_FILE} does not match the checksum in card.json "
            f"(expected {card.sha256[:12] or 'none'}..., found {actual[:12]}...); "
            "the file was changed or corrupted"
        )
    import keras

    from brain_cnn.model import layers  # noqa: F401 - registers the custom layers, so safe mode can rebuild them

    try:
        model = keras.models.load_model(weights, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad archive
        raise ModelFolderError(f"{folder.name}: {MODEL_FILE} cannot be loaded ({error})") from None
    output_size = model.output_shape[-1]
    if output_size != len(card.classes):
        raise ModelFolderError(
            f"{folder.name}: the model has {output_size} outputs but the card lists {len(card.classes)} classes"
        )
    return LoadedModel(folder=folder, card=card, model=model, gate=_load_gate(folder, card))


def _load_gate(folder: Path, card: ModelCard):
    """The fitted out-of-distribution gate named by the card, checksum-verified; None if there is none."""
    from brain_cnn.model.ood import GATE_FILE, Gate

    if not card.gate:
        return None
    path = folder / card.gate.get("file", GATE_FILE)
    if not path.is_file():
        raise ModelFolderError(f"{folder.name}: the card names a gate file {path.name} that is missing")
    if sha256_file(path) != card.gate.get("sha256"):
        raise ModelFolderError(f"{folder.name}: {path.name} does not match the checksum in card.json")
    try:
        return Gate.load(path)
    except (OSError, ValueError, KeyError) as error:
        raise ModelFolderError(f"{folder.name}: {path.name} cannot be loaded ({error})") from None


def list_model_folders(models_dir: str | Path) -> list[Path]:
    """Sub-folders of ``models_dir`` that hold a card.json, sorted by name."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(p.parent for p in models_dir.glob(f"*/{CARD_FILE}"))

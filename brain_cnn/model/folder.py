"""A trained model on disk: ``model.keras`` plus the card that says what it is.

``models/NAME/`` holds ``model.keras``, ``card.json``, ``history.json``,
``evaluation.json`` and ``split.json`` (an ensemble's folder names its member
folders instead of holding weights: see :mod:`brain_cnn.model.ensemble`). The card
records the SHA-256 of the weights file; :func:`load_model` refuses a file whose
digest differs, and deserialises with Keras safe mode (no arbitrary code from a
model file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brain_cnn.errors import ModelFolderError
from brain_cnn.files import sha256_file
from brain_cnn.model.card import CARD_FILE, MODEL_FILE, ModelCard, load_card
from brain_cnn.model.tumour_maps import CLASSES, NORMAL, class_output
from brain_cnn.model.combined import combined_network, check_rule
from brain_cnn.model.ensemble import MAP_ROLE, check_beside, check_member, ensemble_network, members_digest
from brain_cnn.inference.conformal import CONFORMAL_FILE, Conformal
from brain_cnn.model.ood import GATE_FILE, Gate

NORMAL_CLASS = CLASSES[NORMAL]

__all__ = ["DEFAULT_MODEL", "LoadedModel", "load_model", "list_model_folders"]

# The model the app opens first and `predict` uses without --model: the ensemble of the two
# 4-class models, the most accurate under the 20 ms a slice budget (docs/models.md).
DEFAULT_MODEL = "brain-tumor-mri-ensemble"


@dataclass
class LoadedModel:
    folder: Path
    card: ModelCard
    model: Any  # keras.Model
    gate: Any = None  # brain_cnn.model.ood.Gate, when the folder has a fitted gate
    conformal: Conformal | None = None  # its calibration for prediction sets, when it has one


def load_model(folder: str | Path) -> LoadedModel:
    """Load a model folder after checking its card and the weights' SHA-256.

    Raises:
        ModelFolderError: folder missing, files missing, checksum mismatch,
            or a model that Keras cannot load in safe mode.
    """
    folder = Path(folder)
    card = load_card(folder)
    network = _load_members(folder, card) if card.members else _load_network(folder, card)
    return LoadedModel(folder=folder, card=card, model=network, gate=_load_gate(folder, card),
                       conformal=_load_conformal(folder, card))


def _load_network(folder: Path, card: ModelCard) -> Any:
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
    output_size = int(class_output(model).shape[-1])
    if output_size != len(card.classes):
        raise ModelFolderError(
            f"{folder.name}: the model has {output_size} outputs but the card lists {len(card.classes)} classes"
        )
    return model


def _load_members(folder: Path, card: ModelCard) -> Any:
    """Load and check every member of an ensemble folder; return the combined network.

    Raises:
        ModelFolderError: a member is missing, unusable, changed since the ensemble was made,
            or disagrees with the ensemble's classes or input size.
    """
    loaded = []
    for entry in card.members:
        # A card names its members as sibling folders of the same models folder, never anything else on the
        # server's disk (a crafted card would otherwise load whatever folder it names).
        place = (folder / str(entry.get("folder", ""))).resolve()
        if Path(str(entry.get("folder", ""))).is_absolute():
            raise ModelFolderError(f"{folder.name}: a member named by an absolute path, {entry.get('folder')!r}")
        check_beside([place], folder)
        member = load_model(place)
        check_member(card, member.card, entry, folder.name)
        loaded.append(member)
    if members_digest([m.card.sha256 for m in loaded]) != card.sha256:
        raise ModelFolderError(f"{folder.name}: the card's checksum does not match its members'")
    maps = [m for entry, m in zip(card.members, loaded) if entry.get("role") == MAP_ROLE]
    if not maps:
        return ensemble_network([m.model for m in loaded])
    classifiers = [m.model for entry, m in zip(card.members, loaded) if entry.get("role") != MAP_ROLE]
    if len(maps) != 1 or not classifiers:
        raise ModelFolderError(f"{folder.name}: a combined model needs one tumour-map member and classifiers")
    rule = check_rule(card.training.get("combination"), f"{folder.name}: card.json")
    return combined_network(classifiers, maps[0].model, rule, card.classes.index(NORMAL_CLASS))


def _checked(folder: Path, entry: dict, default_name: str, what: str, load):
    """The file a card's ``entry`` names (``file``, ``sha256``), checksum-verified and loaded with ``load``."""
    path = folder / entry.get("file", default_name)
    if not path.is_file():
        raise ModelFolderError(f"{folder.name}: the card names a {what} file {path.name} that is missing")
    if sha256_file(path) != entry.get("sha256"):
        raise ModelFolderError(f"{folder.name}: {path.name} does not match the checksum in card.json")
    try:
        return load(path)
    except (OSError, ValueError, KeyError) as error:
        raise ModelFolderError(f"{folder.name}: {path.name} cannot be loaded ({error})") from None


def _load_gate(folder: Path, card: ModelCard):
    """The fitted out-of-distribution gate named by the card, checksum-verified; None if there is none."""
    return _checked(folder, card.gate, GATE_FILE, "gate", Gate.load) if card.gate else None


def _load_conformal(folder: Path, card: ModelCard) -> Conformal | None:
    """The conformal calibration named by the card, checksum-verified; None if there is none."""
    if not card.conformal or card.conformal.get("model_sha256", card.sha256) != card.sha256:
        return None  # none, or one made for other weights: no sets rather than wrong ones
    loaded = _checked(folder, card.conformal, CONFORMAL_FILE, "calibration", Conformal.load)
    if loaded is None or list(loaded.classes) != list(card.classes):
        raise ModelFolderError(f"{folder.name}: {folder / card.conformal.get('file', CONFORMAL_FILE)} was "
                               "calibrated for other classes")
    return loaded


def list_model_folders(models_dir: str | Path) -> list[Path]:
    """Sub-folders of ``models_dir`` that hold a card.json, sorted by name."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(p.parent for p in models_dir.glob(f"*/{CARD_FILE}"))

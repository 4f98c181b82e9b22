"""Ensembles: several trained model folders answering as one, by the mean of their probabilities.

An ensemble folder holds no weights of its own. Its card lists the member
folders (relative to it) with the SHA-256 of each member's weights; loading
checks every member as :func:`~brain_cnn.model.folder.load_model` checks any
model, refuses a member whose weights changed since the ensemble was made,
and builds one Keras model in memory: the shared input, each member as a
nested model, and the mean of their softmax outputs. So evaluation, the gate,
calibration, the app, the CLI and export treat it as any other model.

The members must agree on classes, input size and preprocessing, and must
have been validated and tested on the same images: the ensemble's validation
split chooses its temperature and flip averaging, and its test figures must be
on images no member trained on. Its training split is the union of the
members' (the out-of-distribution gate is fitted on it, on the first member's
features, and copies of it are removed from the test figures).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from brain_cnn.errors import ModelFolderError
from brain_cnn.model.card import ModelCard

# A member entry's role in a combined folder's card (brain_cnn.model.combined): the tumour-map network; the
# others are classifiers.
MAP_ROLE = "tumour map"

__all__ = ["MAP_ROLE", "ensemble_network", "members_of", "members_digest", "check_beside", "check_member",
           "check_compatible"]


def ensemble_network(models: list) -> Any:
    """One Keras model: the mean of the members' probabilities for the same input."""
    import keras
    from keras import layers

    image = keras.Input(shape=tuple(models[0].input_shape[1:]), name="image")
    # Each member is wrapped under a name of its own, so the nested layers' names never clash.
    outputs = [keras.Model(m.input, m.output, name=f"member{i}")(image) for i, m in enumerate(models)]
    return keras.Model(image, layers.Average(name="probabilities")(outputs), name="ensemble")


def members_of(model) -> list:
    """The member networks of an ensemble model; an empty list for a single network."""
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def members_digest(digests: list[str]) -> str:
    """The ensemble's SHA-256: of its members' weight digests, in order (it has no weights file)."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def check_beside(folders: list, out) -> None:
    """Refuse members that are not folders beside ``out`` in one models folder: the only members a folder
    loads (:func:`brain_cnn.model.folder.load_model`), checked before anything is fitted."""
    home = Path(out).resolve().parent
    for folder in map(Path, folders):
        if folder.resolve().parent != home or folder.resolve() == Path(out).resolve():
            raise ModelFolderError(f"{folder} is not beside {out}: an ensemble's members are folders of the same "
                                   f"models folder (copy {folder.name} into {home})")


def check_member(ensemble: ModelCard, member: ModelCard, entry: dict[str, str], name: str) -> None:
    """Check a loaded member against its entry in the ensemble's card.

    Raises:
        ModelFolderError: the member is an ensemble itself, has other weights than when the ensemble
            was made, or disagrees with the ensemble's classes or input size.
    """
    if member.members:
        raise ModelFolderError(f"{name}: member {entry['folder']} is itself an ensemble")
    if member.sha256 != entry.get("sha256"):
        raise ModelFolderError(
            f"{name}: member {entry['folder']} has other weights than when the ensemble was made "
            f"(expected {str(entry.get('sha256'))[:12]}..., found {member.sha256[:12]}...); "
            "make and evaluate the ensemble again"
        )
    # The map network of a combined model sees the input shrunk to its own size inside the graph.
    check_compatible(ensemble, member, entry["folder"], name, same_size=entry.get("role") != MAP_ROLE)


def check_compatible(first: ModelCard, other: ModelCard, name: str, ensemble: str, same_size: bool = True) -> None:
    for what in ("classes", "channels", "preprocessing_version") + (("image_size",) if same_size else ()):
        if getattr(first, what) != getattr(other, what):
            raise ModelFolderError(f"{ensemble}: member {name} has {what} {getattr(other, what)!r}, "
                                   f"the others {getattr(first, what)!r}")

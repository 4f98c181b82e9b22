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
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from brain_cnn.data.dataset import SplitManifest
from brain_cnn.errors import ModelFolderError
from brain_cnn.model.folder import SPLIT_FILE, ModelCard, load_model

__all__ = ["make_ensemble", "ensemble_network", "load_members", "members_of", "members_digest"]


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


def load_members(folder: Path, card: ModelCard) -> Any:
    """Load and check every member of an ensemble folder; return the combined network.

    Raises:
        ModelFolderError: a member is missing, unusable, changed since the ensemble was made,
            or disagrees with the ensemble's classes or input size.
    """
    loaded = []
    for entry in card.members:
        path = folder / entry["folder"]
        member = load_model(path)
        if member.card.members:
            raise ModelFolderError(f"{folder.name}: member {entry['folder']} is itself an ensemble")
        if member.card.sha256 != entry.get("sha256"):
            raise ModelFolderError(
                f"{folder.name}: member {entry['folder']} has other weights than when the ensemble was made "
                f"(expected {str(entry.get('sha256'))[:12]}..., found {member.card.sha256[:12]}...); "
                "make and evaluate the ensemble again"
            )
        _check_compatible(card, member.card, entry["folder"], folder.name)
        loaded.append(member)
    if members_digest([m.card.sha256 for m in loaded]) != card.sha256:
        raise ModelFolderError(f"{folder.name}: the card's checksum does not match its members'")
    return ensemble_network([m.model for m in loaded])


def _check_compatible(first: ModelCard, other: ModelCard, name: str, ensemble: str) -> None:
    for what in ("classes", "image_size", "channels", "preprocessing_version"):
        if getattr(first, what) != getattr(other, what):
            raise ModelFolderError(f"{ensemble}: member {name} has {what} {getattr(other, what)!r}, "
                                   f"the others {getattr(first, what)!r}")


def _union_split(folders: list[Path]) -> SplitManifest:
    """The members' common validation and test splits, and the union of their training splits."""
    manifests = []
    for folder in folders:
        if not (folder / SPLIT_FILE).is_file():
            raise ModelFolderError(f"{folder.name} has no {SPLIT_FILE}: the ensemble's splits would be unknown")
        manifests.append(SplitManifest.load(folder / SPLIT_FILE))
    first = manifests[0]
    for folder, manifest in zip(folders[1:], manifests[1:]):
        if Path(manifest.root).resolve() != Path(first.root).resolve():
            raise ModelFolderError(f"{folder.name} was trained on {manifest.root}, {folders[0].name} on {first.root}")
        for split in ("validation", "test"):
            if set(manifest.splits.get(split, [])) != set(first.splits.get(split, [])):
                raise ModelFolderError(
                    f"{folder.name} and {folders[0].name} have different {split} splits; an ensemble needs "
                    "members validated and tested on the same images (train them with the same --split)"
                )
    train = list(dict.fromkeys(s for m in manifests for s in m.splits.get("train", [])))
    splits = {"train": train, **{k: v for k, v in first.splits.items() if k != "train"}}
    origins = [m.origin for m in manifests]
    # A member that added data describes the common split and the addition; keep the fullest descriptions.
    origin = "; ".join(o for o in dict.fromkeys(origins) if not any(p != o and p.startswith(o) for p in origins))
    return SplitManifest(root=first.root, classes=first.classes, seed=first.seed, splits=splits,
                         origin=f"union of the members' training splits; {origin}")


def make_ensemble(member_folders: list[str | Path], out: str | Path, name: str | None = None) -> Path:
    """Write an ensemble folder (card and split, no weights) over trained member folders.

    Raises:
        ModelFolderError: fewer than two members, a member unusable or an ensemble itself,
            or members that disagree on classes, input size, data or held-out splits.
    """
    from brain_cnn.training.run import library_versions

    folders = [Path(f) for f in member_folders]
    if len(folders) < 2:
        raise ModelFolderError("an ensemble needs at least two member folders")
    if len({f.resolve() for f in folders}) != len(folders):
        raise ModelFolderError("a member folder is listed twice")
    out = Path(out)
    loaded = [load_model(f) for f in folders]
    for folder, member in zip(folders, loaded):
        if member.card.members:
            raise ModelFolderError(f"{folder.name} is itself an ensemble; list its members instead")
        _check_compatible(loaded[0].card, member.card, folder.name, out.name)
    manifest = _union_split(folders)
    out.mkdir(parents=True, exist_ok=True)
    manifest.save(out / SPLIT_FILE)
    first = loaded[0].card
    sources = list({s["name"]: s for m in loaded for s in m.card.dataset.get("sources", [])}.values())
    card = ModelCard(
        name=name or out.name,
        classes=first.classes,
        image_size=first.image_size,
        channels=first.channels,
        dataset={**{k: v for k, v in first.dataset.items() if k not in ("sources", "held_out")},
                 "split": manifest.origin, "counts": manifest.counts(),
                 **({"sources": sources} if sources else {})},
        training={
            "ensemble": "mean of the members' softmax probabilities",
            "members": [{"name": m.card.name, "folder": str(f), "sha256": m.card.sha256, **m.card.training}
                        for f, m in zip(folders, loaded)],
            "parameters": sum(int(m.model.count_params()) for m in loaded),
            "seconds": round(sum(float(m.card.training.get("seconds", 0)) for m in loaded), 1),
        },
        members=[{"folder": os.path.relpath(f.resolve(), out.resolve()), "sha256": m.card.sha256}
                 for f, m in zip(folders, loaded)],
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=library_versions(),
        sha256=members_digest([m.card.sha256 for m in loaded]),
    )
    card.save(out)
    return out

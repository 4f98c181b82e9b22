"""Making an ensemble: a model folder over trained member folders (see :mod:`brain_cnn.model.ensemble`).

Its card lists the members with their weights' digests; its split is the
members' common validation and test splits with the union of their training
splits. ``brain-cnn ensemble`` then evaluates it like any trained model.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from brain_cnn.data.carves import CALIBRATION
from brain_cnn.data.dataset import SplitManifest
from brain_cnn.errors import ModelFolderError
from brain_cnn.model.card import SPLIT_FILE, ModelCard, library_versions
from brain_cnn.model.ensemble import check_beside, check_compatible, members_digest
from brain_cnn.model.folder import load_model

__all__ = ["make_ensemble"]


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
    splits = {"train": train, **{k: v for k, v in first.splits.items() if k not in ("train", CALIBRATION)}}
    # Calibrated on what every member left unseen: the members' calibration images, less any a member trained on.
    trained = set(train)
    calibration = [s for s in dict.fromkeys(s for m in manifests for s in m.splits.get(CALIBRATION, []))
                   if s not in trained]
    if calibration:
        splits[CALIBRATION] = calibration
    origins = [m.origin for m in manifests]
    # A member that added data describes the common split and the addition; keep the fullest descriptions.
    origin = "; ".join(o for o in dict.fromkeys(origins) if not any(p != o and p.startswith(o) for p in origins))
    return SplitManifest(root=first.root, classes=first.classes, seed=first.seed, splits=splits,
                         origin=f"union of the members' training splits; {origin}")


def make_ensemble(member_folders: list[str | Path], out: str | Path, name: str | None = None) -> Path:
    """Write an ensemble folder (card and split, no weights) over trained member folders.

    Raises:
        ModelFolderError: fewer than two members, a member unusable, an ensemble itself or a tumour-map network,
            or members that disagree on classes, input size, data or held-out splits.
    """
    folders = [Path(f) for f in member_folders]
    if len(folders) < 2:
        raise ModelFolderError("an ensemble needs at least two member folders")
    if len({f.resolve() for f in folders}) != len(folders):
        raise ModelFolderError("a member folder is listed twice")
    out = Path(out)
    check_beside(folders, out)
    loaded = [load_model(f) for f in folders]
    for folder, member in zip(folders, loaded):
        if member.card.members:
            raise ModelFolderError(f"{folder.name} is itself an ensemble; list its members instead")
        if member.card.training.get("tumour_map"):
            # The ensemble's graph averages one probability output per member; a map has no place in it.
            raise ModelFolderError(f"{folder.name} is a tumour-map network; an ensemble averages classifiers only")
        check_compatible(loaded[0].card, member.card, folder.name, out.name)
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

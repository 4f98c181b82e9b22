"""What a model's starting weights saw: the models a card records it started from, and whether their images
lie within the model's own split.

A test or calibration image that is a copy of an image a starting model trained on is as seen as one the model
itself trained on. Checking that needs the starting model's split; a start whose training and validation
images all lie within the run's own (a later cycle on the same carve) needs no check of its own, and is marked
so when the run is trained, while its folder can still be read. The mark keeps a shipped model checkable on a
fresh clone, where the intermediate runs it went through are not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from brain_cnn.data.dataset import SplitManifest
from brain_cnn.errors import DatasetError
from brain_cnn.model.card import CARD_FILE, SPLIT_FILE

__all__ = ["WITHIN", "mark_starts", "seen_paths", "start_folders", "unreachable_starts"]

WITHIN = "within_own_split"  # a start entry's mark: every image it trained or validated on, this run did too
_STARTS = ("initialised_from", "teacher")


def seen_paths(manifest: SplitManifest) -> set[Path]:
    """The files a split trained and validated on, as resolved paths (roots are written relative or absolute)."""
    root = Path(manifest.root)
    return {(root / s.path).resolve() for split in ("train", "validation") for s in manifest.splits.get(split, [])}


def _within(folder: Path, own: set[Path]) -> bool:
    try:
        return (folder / SPLIT_FILE).is_file() and seen_paths(SplitManifest.load(folder / SPLIT_FILE)) <= own
    except DatasetError:
        return False


def mark_starts(entry: dict[str, Any], own: set[Path]) -> dict[str, Any]:
    """A copy of a start entry (``initialised_from`` or ``teacher``), it and every start recorded inside it
    marked :data:`WITHIN` relative to this run's seen files ``own``, read from their splits now; a start
    whose split cannot be read now is marked False (it must be checked where it is evaluated)."""
    marked = {**entry, WITHIN: _within(Path(entry.get("folder", "")), own)}
    training = dict(entry.get("training") or {})
    for key in _STARTS:
        if training.get(key):
            training[key] = mark_starts(training[key], own)
    if "training" in entry:
        marked["training"] = training
    return marked


def start_folders(training: dict[str, Any]) -> list[tuple[Path, str | None]]:
    """The (folder, model checksum) of every model a run, or an ensemble's members, started from or was taught
    by, and the starts of those in turn (``initialised_from``, ``teacher``, a tumour-map run's
    ``started_from`` weights file), less those marked :data:`WITHIN`: their images are in the run's own split."""
    found: list[tuple[Path, str | None]] = []

    def walk(record: dict[str, Any]) -> None:
        for start in (record.get(key) for key in _STARTS):
            if start and not start.get(WITHIN):
                found.append((Path(start.get("folder", "")), start.get("sha256")))
                walk(start.get("training") or {})
        if record.get("started_from"):
            found.append((Path(record["started_from"]).parent, None))

    walk(training)
    for member in training.get("members", []):
        walk(member)
    return list(dict.fromkeys(found))


def _reachable(folder: Path, sha256: str | None) -> bool:
    """Whether ``folder``'s split and data can be read here, and it still holds the weights recorded."""
    try:
        if not Path(SplitManifest.load(folder / SPLIT_FILE).root).is_dir():
            return False
        # A start folder whose model was replaced since (a retrained member) no longer says what was seen.
        return sha256 is None or json.loads((folder / CARD_FILE).read_text()).get("sha256") == sha256
    except (DatasetError, OSError, ValueError):
        return False


def unreachable_starts(training: dict[str, Any]) -> list[Path]:
    """The start folders (:func:`start_folders`) whose split or data cannot be read here, or that hold other
    weights than the run started from."""
    return [folder for folder, sha256 in start_folders(training) if not _reachable(folder, sha256)]

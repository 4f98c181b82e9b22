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

__all__ = ["WITHIN", "mark_starts", "readable_starts", "seen_paths", "start_folders", "unreachable_starts"]

WITHIN = "within_own_split"  # a start entry's mark: every image it trained or validated on, its parent did too
_STARTS = ("initialised_from", "teacher")


def seen_paths(manifest: SplitManifest) -> set[Path]:
    """The files a split trained and validated on, as resolved paths (roots are written relative or absolute)."""
    root = Path(manifest.root)
    return {(root / s.path).resolve() for split in ("train", "validation") for s in manifest.splits.get(split, [])}


def _why_unreadable(folder: Path, sha256: str | None) -> str | None:
    """Why ``folder`` cannot say what its model saw (None when it can): its split or data is not here, or it
    holds other weights than those recorded (a model retrained since)."""
    try:
        if not Path(SplitManifest.load(folder / SPLIT_FILE).root).is_dir():
            return "its data cannot be read here"
        if sha256 is not None and json.loads((folder / CARD_FILE).read_text()).get("sha256") != sha256:
            return "it holds other weights than those started from"
        return None
    except (DatasetError, OSError, ValueError):
        return "its split cannot be read here"


def _within(entry: dict[str, Any], own: set[Path]) -> bool:
    """Whether the start ``entry`` names, as it was started from, saw only files of ``own``."""
    folder = Path(entry.get("folder", ""))
    if _why_unreadable(folder, entry.get("sha256")) is not None:
        return False
    return seen_paths(SplitManifest.load(folder / SPLIT_FILE)) <= own


def mark_starts(entry: dict[str, Any], own: set[Path], parent_within: bool = True) -> dict[str, Any]:
    """A copy of a start entry (``initialised_from`` or ``teacher``) marked :data:`WITHIN` relative to the run
    whose seen files are ``own``, and so, in turn, every start recorded inside it (an ensemble's members'
    too). A start is within when its split shows it now, or when its parent is within and the parent's card
    already marked it within the parent; otherwise False, to be checked where the model is evaluated."""
    within = _within(entry, own) or (parent_within and entry.get(WITHIN) is True)
    marked = {**entry, WITHIN: within}
    if "training" in entry:
        marked["training"] = _mark_inside(entry["training"] or {}, own, within)
    return marked


def _mark_inside(training: dict[str, Any], own: set[Path], within: bool) -> dict[str, Any]:
    """``training`` (a card's record) with its starts and its members' starts marked (:func:`mark_starts`)."""
    marked = dict(training)
    for key in _STARTS:
        if training.get(key):
            marked[key] = mark_starts(training[key], own, within)
    if training.get("members"):
        # A member's data lies within its ensemble's split: its own marks chain through the ensemble's.
        marked["members"] = [_mark_inside(member, own, within) for member in training["members"]]
    return marked


def _weights_folder(started_from: str) -> Path:
    """The run folder of a tumour-map run's ``started_from`` weights file; an older card's description of
    them (not a path) stands as it is, unreadable."""
    path = Path(started_from)
    return path.parent if path.suffix in (".keras", ".h5") else path


def start_folders(training: dict[str, Any]) -> list[tuple[Path, str | None]]:
    """The (folder, model checksum) of every model a run, or an ensemble's members, started from or was taught
    by, and the starts of those in turn (``initialised_from``, ``teacher``, a tumour-map run's
    ``started_from`` weights file), less those marked :data:`WITHIN`, whose images are their parent's."""
    found: list[tuple[Path, str | None]] = []

    def walk(record: dict[str, Any]) -> None:
        for start in (record.get(key) for key in _STARTS):
            if start:
                if not start.get(WITHIN):
                    found.append((Path(start.get("folder", "")), start.get("sha256")))
                walk(start.get("training") or {})  # a start within may itself have started from more
        if record.get("started_from"):
            found.append((_weights_folder(record["started_from"]), None))
        for member in record.get("members", []):
            walk(member)

    walk(training)
    return list(dict.fromkeys(found))


def readable_starts(training: dict[str, Any]) -> list[Path]:
    """The start folders (:func:`start_folders`) that can say here what their model saw."""
    return list(dict.fromkeys(folder for folder, sha256 in start_folders(training)
                              if _why_unreadable(folder, sha256) is None))


def unreachable_starts(training: dict[str, Any]) -> list[str]:
    """Each start folder (:func:`start_folders`) that cannot say here what its model saw, with the reason."""
    return [f"{folder} ({why})" for folder, sha256 in start_folders(training)
            if (why := _why_unreadable(folder, sha256)) is not None]

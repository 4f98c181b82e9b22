"""Reading and writing the project's small files: JSON reports and manifests, file digests.

Every JSON file (cards, reports, split manifests, label maps, resume state) is
read through :func:`read_json`, so a missing or broken file fails the same way
everywhere: with a one-line message, or with the caller's default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from brain_cnn.errors import BrainCnnError

__all__ = ["read_json", "write_json", "sha256_file"]

_REQUIRED = object()


def read_json(path: str | Path, default: Any = _REQUIRED, error: type[BrainCnnError] = BrainCnnError) -> Any:
    """The parsed content of a JSON file.

    Args:
        path: the file.
        default: returned when the file is missing or is not valid JSON; without it, those raise.
        error: the error class raised (e.g. :class:`~brain_cnn.errors.ModelFolderError` for a model folder).

    Raises:
        BrainCnnError: (or ``error``) the file is missing or unreadable, and no default was given.

    Example:
        >>> read_json("models/brain-tumor-mri/external.json", default={})  # doctest: +SKIP
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        if default is not _REQUIRED:
            return default
        raise error(f"{path.parent.name}: {path.name} is missing") from None
    except ValueError as problem:
        if default is not _REQUIRED:
            return default
        raise error(f"{path.parent.name}: {path.name} is unreadable: not valid JSON ({problem})") from None
    except OSError as problem:
        if default is not _REQUIRED:
            return default
        raise error(f"{path.parent.name}: {path.name} is unreadable ({problem.strerror})") from None


def write_json(path: str | Path, value: Any, indent: int = 1) -> None:
    """Write ``value`` as JSON, ending with a newline."""
    Path(path).write_text(json.dumps(value, indent=indent) + "\n")


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""MRI sequences named in class folder names ("Glioblastoma T1C+", "_NORMAL T2")."""

from __future__ import annotations

import re

__all__ = ["sequence_of", "without_sequence"]

_SEQUENCE = re.compile(r"\s+(T1C\+|T1C|T1|T2|FLAIR)$", re.IGNORECASE)


def sequence_of(folder: str) -> str | None:
    """The MRI sequence a class folder names (``T1``, ``T1C+``, ``T2``, ``FLAIR``), or None."""
    match = _SEQUENCE.search(folder)
    return match.group(1).upper() if match else None


def without_sequence(folder: str) -> str:
    """The folder name without its sequence suffix: ``"Astrocitoma T1C+"`` -> ``"Astrocitoma"``."""
    return _SEQUENCE.sub("", folder).strip()

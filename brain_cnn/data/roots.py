"""The folders a data browser may read: the installation's data roots, and nothing else on the server's disk."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from brain_cnn.model.card import CARD_FILE

__all__ = ["data_roots", "confine"]


def data_roots(data_dirs: Iterable[Path], models: Path, project: Path) -> list[Path]:
    """The data roots: ``data_dirs`` (``$BRAIN_CNN_DATA``, the shared data folder) and every folder a model card
    under ``models`` names as its data (relative names from ``project``); those that exist, resolved, once each."""
    import json

    candidates = list(data_dirs)
    for card in sorted(models.glob(f"*/{CARD_FILE}")) if models.is_dir() else []:
        try:
            root = (json.loads(card.read_text()).get("dataset") or {}).get("root")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(root, str) and root:
            path = Path(root).expanduser()
            candidates.append(path if path.is_absolute() else project / path)
    roots: list[Path] = []
    for path in candidates:
        resolved = path.resolve()
        if resolved.is_dir() and resolved not in roots and resolved != Path(resolved.anchor):
            roots.append(resolved)
    return roots


def confine(text: str, roots: list[Path]) -> Path | None:
    """The folder ``text`` names when it is one of ``roots`` or inside one (links followed), else None.

    None says nothing of whether the path exists: a browser must not become a way to probe the disk.
    """
    text = (text or "").strip()
    if not text or "\0" in text:
        return None
    path = Path(text).expanduser()
    if not path.is_absolute():
        return None
    resolved = path.resolve()
    return resolved if any(resolved == root or root in resolved.parents for root in roots) else None

"""An append-only local audit trail of assessments.

One JSON line per assessment: time, SHA-256 of the input bytes, model name and
checksum, result and flags. Never the image, never a patient identifier. The
file is opened in append mode for each record, so earlier lines are never
rewritten. Location: ``$BRAIN_CNN_AUDIT`` or ``~/.brain-cnn/audit.jsonl``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["audit_path", "record", "read_records"]


def audit_path() -> Path:
    return Path(os.environ.get("BRAIN_CNN_AUDIT", Path.home() / ".brain-cnn" / "audit.jsonl"))


def record(entry: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Append one assessment; ``time`` is added (UTC). Returns the line written."""
    path = path or audit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **entry}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, sort_keys=False) + "\n")
    return line


def read_records(path: Path | None = None) -> list[dict[str, Any]]:
    """Every readable line of the trail, oldest first; damaged lines are skipped."""
    path = path or audit_path()
    if not path.is_file():
        return []
    records = []
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(text))
        except ValueError:
            continue
    return records

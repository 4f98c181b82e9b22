"""A tamper-evident audit trail of assessments.

One JSON line per assessment: time, user, client address, session, SHA-256 of
the input bytes, model name and checksum, result and flags; never the image,
never a patient identifier. Switching recording off or on is a line of its own
(:func:`record_event`). Location: ``$BRAIN_CNN_AUDIT`` or
``~/.brain-cnn/audit.jsonl``, created with mode 0600.

Each line carries ``prev``, the hash of the line before it, and ``hash``, its
own: an HMAC-SHA256 keyed by the audit key (``key``, or
``$BRAIN_CNN_AUDIT_KEY``; the app passes ``[brain_cnn] audit_key`` of its
secrets) where one is configured, else a plain SHA-256. :func:`verify` walks
the chain and reports an edited, removed, inserted or damaged line instead of
skipping it. A plain chain detects edits made without rewriting every later
line; only the keyed chain stops someone who can write the file from
rewriting the tail. Removing the last lines leaves a valid chain: keep copies
of the trail elsewhere (log shipping) to detect that.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["audit_path", "record", "record_event", "read_records", "verify", "Trail", "GENESIS"]

GENESIS = "0" * 64  # the ``prev`` of the first chained line
_LOCK = threading.Lock()  # several sessions of one server process append in turn; flock orders processes


def audit_path() -> Path:
    return Path(os.environ.get("BRAIN_CNN_AUDIT", Path.home() / ".brain-cnn" / "audit.jsonl"))


def _key(key: str | bytes | None) -> bytes | None:
    key = key if key is not None else os.environ.get("BRAIN_CNN_AUDIT_KEY") or None
    return key.encode() if isinstance(key, str) else key


def _digest(line: dict[str, Any], key: bytes | None) -> str:
    body = json.dumps({k: v for k, v in line.items() if k != "hash"}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest() if key else hashlib.sha256(body).hexdigest()


def _last_hash(handle) -> str:
    """The ``hash`` of the file's last chained line (read from its end), or :data:`GENESIS`."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    start = max(0, size - 65536)
    handle.seek(start)
    for text in reversed(handle.read().decode("utf-8", errors="replace").splitlines()):
        try:
            found = json.loads(text).get("hash")
        except (ValueError, AttributeError):
            continue
        if found:
            return found
    return GENESIS


def record(entry: dict[str, Any], path: Path | None = None, *, user: str | None = None, address: str | None = None,
           session: str | None = None, key: str | bytes | None = None) -> dict[str, Any]:
    """Append one line, chained to the one before; ``time`` (UTC), who and from where are added. Returns it."""
    path = path or audit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = _key(key)
    with _LOCK:
        descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "rb+") as handle:
            os.fchmod(handle.fileno(), 0o600)  # an older trail made with the default mode is tightened
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                line = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "user": user,
                        "address": address, "session": session, **entry,
                        "chain": "hmac-sha256" if secret else "sha256", "prev": _last_hash(handle)}
                line["hash"] = _digest(line, secret)
                handle.seek(0, os.SEEK_END)
                handle.write((json.dumps(line, ensure_ascii=False) + "\n").encode())
                handle.flush()
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return line


def record_event(event: str, path: Path | None = None, **who) -> dict[str, Any]:
    """Record something done to the trail itself (for example "recording off"), as its own line."""
    return record({"event": event}, path, **who)


@dataclass
class Trail:
    """The trail as read: its readable lines, what breaks its chain (line numbers from 1), and how many lines
    before the first chained one were written before the chain existed."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    legacy: int = 0

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(path: Path | None = None, key: str | bytes | None = None) -> Trail:
    """Read the trail and check its chain: every line's hash, and that it follows the line before."""
    path = path or audit_path()
    trail = Trail()
    if not path.is_file():
        return trail
    secret, previous, chained = _key(key), GENESIS, False
    for number, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
            if not isinstance(line, dict):
                raise ValueError
        except ValueError:
            trail.problems.append(f"line {number} is damaged (not a record)")
            continue
        trail.records.append(line)
        if "hash" not in line:
            if chained:
                trail.problems.append(f"line {number} has no hash: added or edited outside the app")
            else:
                trail.legacy += 1
            continue
        chained = True
        uses_key = line.get("chain") == "hmac-sha256"
        if uses_key and not secret:
            trail.problems.append(f"line {number} is keyed, and no audit key is configured to check it")
        elif _digest(line, secret if uses_key else None) != line["hash"]:
            trail.problems.append(f"line {number} was edited (its hash does not match its content)")
        if line.get("prev") != previous:
            trail.problems.append(f"the chain breaks before line {number}: a line was removed or inserted there")
        previous = line["hash"]
    return trail


def read_records(path: Path | None = None) -> list[dict[str, Any]]:
    """Every readable line of the trail, oldest first (:func:`verify` says whether the chain holds)."""
    return verify(path).records

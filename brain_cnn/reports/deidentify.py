"""How a case is named in what leaves the session (PDF, worklist CSV, audit trail): by a label, never by
the names of its files, which often carry a patient's name or ID ("DOE_JANE_MR_2024.dcm")."""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath

from brain_cnn.inference.assessment import CaseAssessment

__all__ = ["case_label", "clean_label", "redact", "LABEL_HELP"]

LABEL_HELP = ("Letters, digits, spaces and . _ - only, up to 40 characters; an accession or study number, not the "
              "patient's name. Left empty, the case is named by the start of its input's SHA-256.")
_LABEL = re.compile(r"[\w .\-]{1,40}")


def clean_label(typed: str | None) -> str | None:
    """A user's case label as it may be written out, or None when it is empty or holds other characters."""
    typed = (typed or "").strip()
    return typed if _LABEL.fullmatch(typed) else None


def case_label(case: CaseAssessment) -> str:
    """How a case is named in what leaves the session: the label the user typed, else the prefix of its
    input's SHA-256."""
    return clean_label(case.label) or case.sha256[:12]


def _forms(name: str) -> set[str]:
    """A file name as a message may quote it: as given, and its last part (a ZIP member's or a Windows
    path's). Not its stem: "scan" of scan.dcm would take the word out of "T2 scan (...)"."""
    return {f for f in (name, PurePosixPath(name).name, PureWindowsPath(name).name) if f}


def redact(text: str, case: CaseAssessment) -> str:
    """``text`` with every form of every file name of ``case`` replaced by the case's label."""
    label = case_label(case)
    names = case.file_names or [case.name]
    forms = sorted({f for name in names for f in _forms(name)}, key=len, reverse=True)
    if not forms:
        return text
    # Whole names only: not "a.png" inside "data.png".
    pattern = re.compile(r"(?<![\w.-])(?:" + "|".join(re.escape(f) for f in forms) + r")(?![\w.-])", re.IGNORECASE)
    return pattern.sub(f"[case {label}]", text)

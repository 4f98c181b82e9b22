"""MRI sequences: named in class folder names ("Glioblastoma T1C+", "_NORMAL T2"), or read from a DICOM header."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["sequence_of", "without_sequence", "HeaderSequence", "SEQUENCE_TAGS", "sequence_from_header"]

_SEQUENCE = re.compile(r"\s+(T1C\+|T1C|T1|T2|FLAIR)$", re.IGNORECASE)


def sequence_of(folder: str) -> str | None:
    """The MRI sequence a class folder names (``T1``, ``T1C+``, ``T2``, ``FLAIR``), or None."""
    match = _SEQUENCE.search(folder)
    return match.group(1).upper() if match else None


def without_sequence(folder: str) -> str:
    """The folder name without its sequence suffix: ``"Astrocitoma T1C+"`` -> ``"Astrocitoma"``."""
    return _SEQUENCE.sub("", folder).strip()


@dataclass(frozen=True)
class HeaderSequence:
    """The MRI sequence of a DICOM image and what in its header says so."""

    name: str  # "T1", "T1C+", "T2", "FLAIR", "PD", "T2*", "DWI": T1, T1C+ and T2 as the 44-class folders name them
    # What says so, never the header's free text (which can name a person, PS3.15 Annex E): "the series
    # description", "TR 4000 ms, TE 100 ms", "...; a contrast agent recorded".
    evidence: str


# The header elements read. The descriptions and the agent are free text a technologist typed, which can
# name a person: they are matched here and never copied out (PS3.15 Annex E, clean descriptors).
SEQUENCE_TAGS = ("SeriesDescription", "ProtocolName", "RepetitionTime", "EchoTime", "InversionTime",
                 "ContrastBolusAgent")

# Descriptions are what the technologist named the series, and the most direct
# evidence; checked in this order, since "T2 FLAIR" is a FLAIR and "T2*" is not a T2.
_DESCRIBED = [
    ("DWI", re.compile(r"DWI|DIFFUSION|\bADC\b|\bTRACE\b|\bDTI\b")),
    ("T2*", re.compile(r"T2\*|T2STAR|T2 STAR|\bSWI\b|\bSWAN\b|HEMO")),
    ("FLAIR", re.compile(r"FLAIR|DARK[ _-]?FLUID")),
    ("T1", re.compile(r"T1|MPRAGE|MP[ _-]RAGE|SPGR|BRAVO")),
    ("T2", re.compile(r"T2")),
    ("PD", re.compile(r"\bPD\b|PROTON")),
]
_CONTRAST = re.compile(r"\+ ?C\b|\bC ?\+|\bGAD|\bGD\b|\bPOST\b|CONTRAST|\+GD|\bCE\b")


def _number(value: Any) -> float | None:
    """A positive number from a header value (a number, a string, or the first of several), else None."""
    try:
        number = float(value)
    except TypeError:  # a multi-valued element
        try:
            number = float(value[0])
        except (TypeError, ValueError, IndexError):
            return None
    except ValueError:
        return None
    return number if number > 0 else None


def _by_timing(tr: float | None, te: float | None, ti: float | None) -> str | None:
    """The weighting that the repetition, echo and inversion times (ms) give, by the textbook ranges."""
    if te is None:
        return None
    if ti is not None and ti >= 1500 and te >= 60:
        return "FLAIR"  # the inversion that nulls fluid, on a long-echo read-out
    if te < 10 and (tr is None or tr < 5000):
        return "T1"  # gradient-echo T1 (MPRAGE, SPGR): no T2-weighted read-out has so short an echo
    if tr is None:
        return None
    if tr <= 1000 and te <= 30:
        return "T1"
    if tr >= 1500 and te >= 60:
        return "T2"
    if tr >= 1500 and te <= 30:
        return "PD"
    return None


def sequence_from_header(values: dict[str, Any]) -> HeaderSequence | None:
    """The MRI sequence that header ``values`` (DICOM keyword -> value, see SEQUENCE_TAGS) show, or None.

    The series or protocol description decides when it names a sequence; else the
    timing does. A T1 is "T1C+" when a contrast agent is recorded or the description
    says post-contrast.
    """
    texts = [(key, str(values.get(key) or "").strip()) for key in ("SeriesDescription", "ProtocolName")]
    agent = str(values.get("ContrastBolusAgent") or "").strip()
    name, evidence = None, ""
    for key, text in texts:
        upper = text.upper()
        found = next((n for n, pattern in _DESCRIBED if pattern.search(upper)), None)
        if found == "FLAIR" and re.search(r"T1", upper):
            found = "T1"  # T1-FLAIR is a T1-weighted sequence
        if found:
            name, evidence = found, f"the {'series' if key == 'SeriesDescription' else 'protocol'} description"
            break
    if name is None:
        tr, te, ti = (_number(values.get(k)) for k in ("RepetitionTime", "EchoTime", "InversionTime"))
        name = _by_timing(tr, te, ti)
        if name is None:
            return None
        evidence = ", ".join(f"{label} {v:g} ms" for label, v in (("TR", tr), ("TE", te), ("TI", ti)) if v is not None)
    if name == "T1":
        described = " ".join(text.upper() for _, text in texts)
        if agent:
            name, evidence = "T1C+", f"{evidence}; a contrast agent recorded"
        elif _CONTRAST.search(described) and "PRE" not in described.split():
            name = "T1C+"
    return HeaderSequence(name, evidence)

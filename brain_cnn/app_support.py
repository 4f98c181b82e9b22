"""The Streamlit side of the package: cached models, the shared model choice, default paths.

Pages import from here and stay thin. Models load once per process
(``st.cache_resource``); an upload's assessment and heat maps are cached by
the SHA-256 of its bytes (``st.cache_data``), so moving a slider does not
re-run the network. Uploads stay in memory; nothing is written to disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from . import audit
from .assessment import CaseAssessment, SliceAssessment, assess, assess_series
from .explain import DEFAULT_METHOD, Explainer
from .model_folder import DEFAULT_MODEL, EVALUATION_FILE, HISTORY_FILE, list_model_folders, load_card
from .prediction import Predictor
from .worklist import audit_entry

__all__ = [
    "PROJECT",
    "models_dir",
    "default_data_dir",
    "DISCLAIMER",
    "choose_model",
    "predictor_for",
    "explainer_for",
    "assess_upload",
    "assess_series_upload",
    "heatmap_for",
    "read_report",
    "resolve_data_root",
]

PROJECT = Path(__file__).resolve().parents[1]
DISCLAIMER = (
    "Decision support, not a diagnosis. This research tool classifies single MRI slices; "
    "a qualified radiologist must read every study."
)


def models_dir() -> Path:
    return Path(os.environ.get("BRAIN_CNN_MODELS", PROJECT / "models"))


def default_data_dir(dataset: str | None = None) -> Path:
    """``$BRAIN_CNN_DATA`` or ``../shared/data`` beside the project, optionally one data set in it."""
    base = Path(os.environ.get("BRAIN_CNN_DATA", PROJECT.parent / "shared" / "data"))
    return base / dataset if dataset else base


def resolve_data_root(recorded: str) -> Path:
    """A data path from a card or report; relative ones are taken from the project root."""
    path = Path(recorded).expanduser()
    return path if path.is_absolute() else PROJECT / path


def choose_model() -> Path | None:
    """Sidebar selector over every model folder; the choice is kept across pages."""
    folders = list_model_folders(models_dir())
    if not folders:
        st.sidebar.error(f"No model folders in {models_dir()}. Train one with `brain-cnn train`.")
        return None
    names = [f.name for f in folders]
    if st.session_state.get("model_name") not in names:
        st.session_state["model_name"] = DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]
    # A widget key of its own, copied to "model_name", so the choice survives page changes.
    chosen = st.sidebar.selectbox("Model", names, index=names.index(st.session_state["model_name"]),
                                  help="Every folder under models/ with a card.json")
    st.session_state["model_name"] = chosen
    return folders[names.index(chosen)]


@st.cache_resource(show_spinner="Loading the model ...")
def predictor_for(folder: str) -> Predictor:
    predictor = Predictor(folder)
    predictor.predict_inputs(np.zeros((1, predictor.image_size, predictor.image_size, 1), np.uint8))  # warm up
    return predictor


@st.cache_resource(show_spinner=False)
def explainer_for(folder: str) -> Explainer:
    return Explainer(predictor_for(folder).model)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@st.cache_data(max_entries=256, show_spinner=False)
def _assess_cached(folder: str, sha: str, name: str, axis: int, _data: bytes) -> CaseAssessment:
    return assess(predictor_for(folder), _data, name, axis)


def assess_upload(folder: str | Path, data: bytes, name: str, axis: int = 2, audited: bool = True) -> CaseAssessment:
    """Assessment of an uploaded file, computed once per (model, file content, axis).

    ``audited=False`` for views that are not clinical assessments (the evaluation gallery).
    """
    case = _assess_cached(str(folder), digest(data), name, axis, data)
    if audited:
        _audit_once(folder, case)
    return case


@st.cache_data(max_entries=32, show_spinner=False)
def _assess_series_cached(folder: str, shas: tuple[str, ...], _files: list[tuple[str, bytes]]) -> CaseAssessment:
    return assess_series(predictor_for(folder), _files)


def assess_series_upload(folder: str | Path, files: list[tuple[str, bytes]]) -> CaseAssessment:
    """Several DICOM files of one series as one case, computed once per (model, files)."""
    case = _assess_series_cached(str(folder), tuple(digest(d) for _, d in files), files)
    _audit_once(folder, case)
    return case


def _audit_once(folder: str | Path, case: CaseAssessment) -> None:
    """Append the assessment to the audit trail once per session, unless the user switched it off."""
    if not st.session_state.get("audit_on", True):
        return
    card = predictor_for(str(folder)).card
    logged = st.session_state.setdefault("audited", set())
    key = (case.sha256, card.sha256, len(case.slices))
    if key in logged:
        return
    try:
        audit.record(audit_entry(case, card.name, card.sha256))
        logged.add(key)
    except OSError as error:
        st.sidebar.warning(f"The audit trail could not be written ({error}).")


@st.cache_data(max_entries=512, show_spinner=False)
def _heatmap_cached(folder: str, key: str, class_index: int, method: str, _image: np.ndarray) -> np.ndarray:
    return explainer_for(folder).heatmap(_image, class_index, method)


def heatmap_for(folder: str | Path, slice_: SliceAssessment, key: str, method: str = DEFAULT_METHOD) -> np.ndarray:
    """Heat map of one slice for its call; ``key`` identifies the slice (case digest and index)."""
    return _heatmap_cached(str(folder), key, slice_.class_index, method, slice_.model_input)


@st.cache_data(show_spinner=False)
def _read_json(path: str, mtime: float) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_report(folder: Path, name: str = EVALUATION_FILE) -> dict[str, Any] | None:
    """A JSON report of a model folder, or None when absent or unreadable."""
    path = folder / name
    return _read_json(str(path), path.stat().st_mtime) if path.is_file() else None


def read_history(folder: Path) -> dict[str, Any] | None:
    return read_report(folder, HISTORY_FILE)


def card_for(folder: Path):
    return load_card(folder)

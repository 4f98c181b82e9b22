"""The Streamlit side of the package: cached models, the shared model choice, default paths.

Pages import from here and stay thin. Each model folder is served by one
:class:`ModelService` per process (``st.cache_resource``), shared by every
session: it loads in the background as soon as a page names the model, warms
the network and the quick heat map, and queues costly heat maps so they are
computed one at a time, each once. Every forward pass waits its turn at one
process-wide gate (:data:`brain_cnn.model.engines.INFERENCE`), so sessions share the
cores instead of fighting over them. An upload's assessment and heat maps are
cached by the SHA-256 of its bytes (``st.cache_data``), so moving a slider
does not re-run the network. Uploads stay in memory; nothing is written to disk.

A tumour-map network (:mod:`brain_cnn.model.tumour_maps`) is shown first by
the outline of its map, which comes with the call; its Grad-CAM is warmed
after the model is handed out rather than before, so nothing stands between
the first upload and its answer.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from brain_cnn.explain.explainer import DEFAULT_METHOD, Explainer, METHODS, QUICK_METHOD
from brain_cnn.explain.queue import ExplanationJob, ExplanationQueue
from brain_cnn.errors import BrainCnnError
from brain_cnn.files import read_json
from brain_cnn.inference.assessment import CaseAssessment, SliceAssessment, assess, assess_series
from brain_cnn.inference.predictor import Predictor
from brain_cnn.model.card import EVALUATION_FILE, HISTORY_FILE, load_card
from brain_cnn.model.engines import background, limit_tensorflow_threads
from brain_cnn.model.folder import DEFAULT_MODEL, list_model_folders
from brain_cnn.reports import audit
from brain_cnn.reports.deidentify import clean_label
from brain_cnn.reports.worklist import audit_entry

__all__ = [
    "PROJECT",
    "models_dir",
    "default_data_dir",
    "DISCLAIMER",
    "choose_model",
    "ModelService",
    "keep_models_between_reruns",
    "model_service",
    "predictor_for",
    "explainer_for",
    "assess_upload",
    "assess_series_upload",
    "heatmap_for",
    "heatmap_job",
    "maps_ahead",
    "map_now",
    "read_report",
    "resolve_data_root",
    "OUTLINE_VIEW",
    "draws_tumour_maps",
    "where_views",
]

PROJECT = Path(__file__).resolve().parents[1]
DISCLAIMER = (
    "Decision support, not a diagnosis. This research tool classifies single MRI slices; "
    "a qualified radiologist must read every study."
)


# The Diagnose page's first "where" view for a tumour-map network: the outline of its map, not a heat map.
OUTLINE_VIEW = "Tumour outline"


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


class ModelService:
    """One model folder served to every session of this process.

    Loading starts in a background thread when the service is made, so a page
    can show its uploader while the model loads; it ends with one forward pass
    and one quick heat map, so the first upload is as fast as the rest (a
    tumour-map network's quick heat map is warmed just after: its outline
    comes with the call). A load that failed is tried again on the next request.
    """

    def __init__(self, folder: str | Path):
        self.folder = str(folder)
        self.queue = ExplanationQueue()
        self._lock = threading.Lock()
        self._loading: Future | None = None
        self.start()

    def start(self) -> None:
        """Start loading, unless loading, loaded, or not yet failed."""
        with self._lock:
            if self._loading is not None and not (self._loading.done() and self._loading.exception() is not None):
                return
            future: Future = Future()
            self._loading = future
        threading.Thread(target=self._load, args=(future,), name=f"load {Path(self.folder).name}", daemon=True).start()

    def _load(self, future: Future) -> None:
        try:
            limit_tensorflow_threads()
            predictor = Predictor(self.folder)  # warms the forward pass
            explainer = Explainer(predictor.model)
            if not predictor.has_map:  # its Grad-CAM is shown with the call
                explainer.warm_up()
        except BaseException as error:  # noqa: BLE001 - re-raised to whoever asks for the model
            future.set_exception(error)
            return
        future.set_result((predictor, explainer))
        if predictor.has_map:  # its outline is shown with the call; Grad-CAM, when chosen, is then as quick
            try:
                with background():  # a call waiting for the network goes first
                    explainer.warm_up()
            except Exception:  # noqa: BLE001, S110 - a map that cannot be made says so when it is asked for
                pass

    @property
    def ready(self) -> bool:
        """Loaded (or failed to load): asking for the model will not wait."""
        return self._loading is not None and self._loading.done()

    def _loaded(self) -> tuple[Predictor, Explainer]:
        self.start()
        return self._loading.result()

    def predictor(self) -> Predictor:
        """The loaded model, waiting for it if it is still loading.

        Raises:
            BrainCnnError: the model folder cannot be loaded, with the reason.
        """
        return self._loaded()[0]

    def explainer(self) -> Explainer:
        return self._loaded()[1]


def keep_models_between_reruns() -> None:
    """Stop Streamlit clearing the Keras session after every rerun of every session.

    Streamlit calls ``keras.backend.clear_session()`` when a script run ends, for
    apps that build a model on each run. Here one model serves every session:
    clearing would throw away TensorFlow's compiled kernels (the next heat map
    pays to rebuild them), run a full garbage collection each time, and could do
    so while another session's heat map is being computed. Matplotlib figures
    are still closed as before.
    """
    from streamlit.runtime.scriptrunner import script_runner

    original = getattr(script_runner, "_clean_problem_modules", None)
    if original is None or getattr(original, "keeps_keras", False):
        return

    def clean_without_keras() -> None:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            try:
                pyplot.close("all")
            except Exception:  # noqa: BLE001, S110 - as Streamlit's own cleanup: never fail a run over it
                pass

    clean_without_keras.keeps_keras = True
    script_runner._clean_problem_modules = clean_without_keras


@st.cache_resource(show_spinner=False)
def model_service(folder: str) -> ModelService:
    """The process's one service for ``folder``; made (and its loading started) by the first page to ask."""
    return ModelService(folder)


def predictor_for(folder: str | Path) -> Predictor:
    """The loaded model of ``folder``, shared by all sessions (a spinner while it loads)."""
    service = model_service(str(folder))
    if not service.ready:
        with st.spinner("Loading the model ..."):
            return service.predictor()
    return service.predictor()


def draws_tumour_maps(folder: str | Path) -> bool:
    """Whether the model of ``folder`` is a tumour-map network, as its card says: known before the network loads."""
    try:
        return bool(card_for(Path(folder)).training.get("tumour_map"))
    except BrainCnnError:  # the page says what is wrong with the folder when it loads the model
        return False


def where_views(tumour_maps: bool) -> list[str]:
    """The Diagnose page's "where" views, the default first for a tumour-map network: its outline, then the
    heat-map methods (Grad-CAM the default of a classifier)."""
    return ([OUTLINE_VIEW] if tumour_maps else []) + list(METHODS)


def explainer_for(folder: str | Path) -> Explainer:
    predictor_for(folder)  # the spinner, if it is still loading
    return model_service(str(folder)).explainer()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Bounded by count and age: a volume's assessment holds every slice, a few MB to tens of MB.
@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def _assess_cached(folder: str, sha: str, name: str, axis: int, _data: bytes) -> CaseAssessment:
    return assess(model_service(folder).predictor(), _data, name, axis)


def assess_upload(folder: str | Path, data: bytes, name: str, axis: int = 2, audited: bool = True) -> CaseAssessment:
    """Assessment of an uploaded file, computed once per (model, file content, axis).

    ``audited=False`` for views that are not clinical assessments (the evaluation gallery).
    """
    predictor_for(folder)  # waits (with a spinner) outside the cached function, which must not draw
    case = _assess_cached(str(folder), digest(data), name, axis, data)
    if audited:
        _audit_once(folder, case)
    return case


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def _assess_series_cached(folder: str, shas: tuple[str, ...], _files: list[tuple[str, bytes]]) -> CaseAssessment:
    return assess_series(model_service(folder).predictor(), _files)


def assess_series_upload(folder: str | Path, files: list[tuple[str, bytes]]) -> CaseAssessment:
    """Several DICOM files of one series as one case, computed once per (model, files)."""
    predictor_for(folder)
    case = _assess_series_cached(str(folder), tuple(digest(d) for _, d in files), files)
    _audit_once(folder, case)
    return case


def study_model_folder(folder: str | Path | None) -> Path | None:
    """The model a follow-up is measured with: the chosen one when it draws tumour maps, else the bundled
    tumour-map network (:data:`~brain_cnn.inference.study.STUDY_MODEL`) where it is installed."""
    from brain_cnn.inference.study import STUDY_MODEL

    if folder is not None and draws_tumour_maps(folder):
        return Path(folder)
    bundled = models_dir() / STUDY_MODEL
    return bundled if bundled.is_dir() and draws_tumour_maps(bundled) else None


def assess_study_upload(folder: str | Path, files: list[tuple[str, bytes]]) -> CaseAssessment:
    """A study uploaded as one file or one series' files, assessed (cached and audited as on Diagnose)."""
    if len(files) == 1:
        name, data = files[0]
        return assess_upload(folder, data, name)
    from brain_cnn.scan.read import is_dicom

    dicoms = [(n, d) for n, d in files if is_dicom(d, n)]
    if not dicoms:
        raise BrainCnnError("a study of several files must be one DICOM series; these hold no DICOM file")
    return assess_series_upload(folder, dicoms)


def audit_identity() -> dict[str, Any]:
    """Who and from where, for the audit trail: the logged-in user (or the local user), the client's address,
    this session, and the trail's key from the secrets (``[brain_cnn] audit_key``) where one is set."""
    from brain_cnn.app_access import app_settings, current_access

    try:  # Streamlit gives None for a connection from this machine (127.0.0.1 or ::1)
        address = st.context.ip_address or "localhost"
    except Exception:  # noqa: BLE001  (no request context)
        address = None
    address = address if isinstance(address, str) else None  # AppTest's context is a stand-in object
    session = st.session_state.setdefault("_audit_session", uuid.uuid4().hex[:16])
    return {"user": current_access().user, "address": address, "session": session,
            "key": app_settings().get("audit_key")}


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
        audit.record(audit_entry(case, card.name, card.sha256), **audit_identity())
        logged.add(key)
    except OSError as error:
        st.sidebar.warning(f"The audit trail could not be written ({error}).")


LABELS = "_case_labels"  # input SHA-256 -> the label the user typed, kept while cases come and go


def apply_case_labels(cases: list[CaseAssessment]) -> None:
    """Give each case the label typed for it in this session (they name it in the PDF and the worklist)."""
    for case in cases:
        case.label = st.session_state.get(LABELS, {}).get(case.sha256)


def keep_case_label(case: CaseAssessment, widget_key: str) -> None:
    """Keep the label typed for ``case`` (a widget's own state is dropped when another case is shown) and
    record it in the audit trail, so the trail links the label to the input's checksum."""
    label = clean_label(st.session_state.get(widget_key))
    labels = st.session_state.setdefault(LABELS, {})
    if label == labels.get(case.sha256):
        return
    labels[case.sha256] = label
    if label and st.session_state.get("audit_on", True):
        try:
            audit.record({"event": "case label", "case": label, "input_sha256": case.sha256}, **audit_identity())
        except OSError as error:
            st.sidebar.warning(f"The audit trail could not be written ({error}).")


@st.cache_data(max_entries=512, show_spinner=False)
def _heatmap_cached(folder: str, key: str, class_index: int, method: str, _image: np.ndarray) -> np.ndarray:
    service = model_service(folder)
    if METHODS[method].costly:  # through the queue: one at a time, and shared with anyone asking the same
        return _request(service, _image, class_index, method, key).result()
    return service.explainer().heatmap(_image, class_index, method)


def heatmap_for(folder: str | Path, slice_: SliceAssessment, key: str, method: str = DEFAULT_METHOD) -> np.ndarray:
    """Heat map of one slice for its call, waiting for it; ``key`` identifies the slice (case digest and index)."""
    predictor_for(folder)
    return _heatmap_cached(str(folder), key, slice_.class_index, method, slice_.model_input)


def heatmap_job(folder: str | Path, slice_: SliceAssessment, key: str, method: str) -> ExplanationJob:
    """A costly heat map of one slice, queued in the background (or found there); the page polls the job."""
    return _request(model_service(str(folder)), slice_.model_input, slice_.class_index, method, key)


def map_now(folder: str | Path, slice_: SliceAssessment, key: str, method: str
            ) -> tuple[str, np.ndarray, ExplanationJob | None]:
    """The heat map to draw now: ``(method, map, job)``.

    A cheap method's map (or a costly one already computed) at once, with no
    job; else the quick map, and the queued job computing ``method``'s.
    """
    if not METHODS[method].costly:
        return method, heatmap_for(folder, slice_, key, method), None
    job = heatmap_job(folder, slice_, key, method)
    if job.done and job.future.exception() is None:
        return method, job.result(), None
    return QUICK_METHOD, heatmap_for(folder, slice_, key, QUICK_METHOD), job


def maps_ahead(folder: str | Path, job: ExplanationJob) -> int:
    """Costly maps queued before ``job`` (any session's) that are not finished."""
    return model_service(str(folder)).queue.ahead_of(job)


def _request(service: ModelService, image: np.ndarray, class_index: int, method: str, key: str) -> ExplanationJob:
    explainer = service.explainer()
    return service.queue.request((key, class_index, method),
                                 lambda progress: explainer.heatmap(image, class_index, method, progress))


@st.cache_data(show_spinner=False)
def _read_json(path: str, mtime: float) -> dict[str, Any] | None:
    return read_json(path, default=None)


def read_report(folder: Path, name: str = EVALUATION_FILE) -> dict[str, Any] | None:
    """A JSON report of a model folder, or None when absent or unreadable."""
    path = folder / name
    return _read_json(str(path), path.stat().st_mtime) if path.is_file() else None


def read_history(folder: Path) -> dict[str, Any] | None:
    return read_report(folder, HISTORY_FILE)


def card_for(folder: Path):
    return load_card(folder)

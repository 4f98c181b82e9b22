"""Diagnose: upload scans, see the call and the probabilities at once, then where the network looked.

The call, its probabilities and a Grad-CAM map (one forward and one backward
pass) come first; a costly map (Score-CAM, occlusion) is queued in the
background only when chosen, with progress, and replaces the quick one when done.
A tumour-map network shows the outline of its map instead, with the area it
encloses beside the call: both come from the forward pass that made the call.
"""

import time

import streamlit as st

from brain_cnn.app_support import (
    DISCLAIMER,
    OUTLINE_VIEW,
    apply_case_labels,
    assess_series_upload,
    assess_upload,
    digest,
    draws_tumour_maps,
    keep_case_label,
    map_now,
    maps_ahead,
    predictor_for,
    read_report,
    where_views,
)
from brain_cnn.errors import BrainCnnError
from brain_cnn.explain.explainer import METHODS, QUICK_METHOD
from brain_cnn.explain.overlay import overlay_heatmap
from brain_cnn.inference.assessment import OUTLINE_CAPTION, RANKINGS
from brain_cnn.inference.conformal import DEFAULT_MISSED_RATE, CoverageError, flagged, screening_text
from brain_cnn.reports.dashboards import slice_profile_figure
from brain_cnn.model.card import TUMOUR_MAPS_FILE
from brain_cnn.reports.deidentify import LABEL_HELP, case_label, clean_label
from brain_cnn.reports.pdf import case_report_pdf
from brain_cnn.reports.sentences import outline_note, trust_note
from brain_cnn.reports.worklist import ORDERS, sort_rows, worklist_csv, worklist_row
from brain_cnn.scan.limits import within_session_limits
from brain_cnn.scan.read import AXES, group_series, is_dicom, is_nifti

st.title("Diagnose")
st.warning(DISCLAIMER, icon=":material/info:")

folder = st.session_state.get("model_folder")
if folder is None:
    st.stop()

uploads = st.file_uploader(
    "Upload brain MRI slices: images (JPEG, PNG, WebP, BMP, TIFF), DICOM files or a ZIP of a DICOM series, "
    "NIfTI volumes (.nii, .nii.gz)",
    accept_multiple_files=True,
)
left, right = st.columns(2)
tumour_maps = draws_tumour_maps(folder)
views = where_views(tumour_maps)
method = left.selectbox(
    "Tumour outline or heat map" if tumour_maps else "Explanation method", views,
    index=0 if tumour_maps else views.index(QUICK_METHOD),
    format_func=lambda m: f"{m} (slower: drawn after the call)" if m in METHODS and METHODS[m].costly else m,
    help="; ".join(([f"{OUTLINE_CAPTION}, from the pass that made the call"] if tumour_maps else [])
                   + [f"{m.name}: {m.description}" for m in METHODS.values()]))
opacity = right.slider("Heat-map opacity", 0.0, 1.0, 0.45, 0.05, disabled=method == OUTLINE_VIEW)

if not uploads:
    st.info(f"Upload a scan to see the model's call and its {'tumour outline' if tumour_maps else 'heat map'}.")
    st.stop()

try:
    card = predictor_for(folder).card
except BrainCnnError as error:
    st.error(f"The model {folder.name} cannot be loaded: {error}", icon=":material/error:")
    st.stop()

screening = None  # the screening mode's threshold on the tumour probability, when it is on
calibration = predictor_for(folder).loaded.conformal
if calibration is not None and len(calibration.tumour_scores) and st.toggle(
        f"Screening mode: flag \"tumour possible\" with at most {DEFAULT_MISSED_RATE:.0%} of tumours missed",
        key="screening", help="A threshold on the tumour probability set on the model's calibration scans: on scans "
        "like them, at most this share of tumours falls below it (conformal risk control). Not for scans unlike "
        "them: another scanner or sequence."):
    try:
        screening = calibration.screening_threshold(DEFAULT_MISSED_RATE)
    except CoverageError as error:
        st.warning(f"Screening mode is not available for this model: {error}", icon=":material/warning:")

read, over_limit = within_session_limits([u.size for u in uploads])
if over_limit:
    st.warning(over_limit, icon=":material/warning:")
files = [(u.name, u.getvalue()) for u in uploads[:read]]
dicoms = [(n, d) for n, d in files if is_dicom(d, n)]
as_series = len(dicoms) > 1 and st.toggle(
    "Read DICOM files of the same series as one study", value=True,
    help="Groups the files by series, sorts the slices by position and classifies each whole series")

cases, failures = [], []
series = [g for g in group_series(dicoms) if len(g) > 1] if as_series else []  # a lone file is read on its own
for group in series:
    try:
        cases.append(assess_series_upload(folder, group))
    except BrainCnnError as error:
        failures.append((f"DICOM series of {len(group)} files", str(error)))
in_series = {n for group in series for n, _ in group}
files = [(n, d) for n, d in files if n not in in_series]
for name, data in files:
    axis = AXES["axial"]
    if is_nifti(data, name):
        plane = st.session_state.get(f"axis-{name}", "axial")
        axis = AXES[plane]
    try:
        cases.append(assess_upload(folder, data, name, axis))
    except BrainCnnError as error:
        failures.append((name, str(error)))

for name, reason in failures:
    st.error(f"**{name}**: cannot assess this file. {reason}", icon=":material/error:")
if not cases:
    st.stop()

apply_case_labels(cases)
case = cases[0]
if len(cases) > 1:  # every call in the worklist; the details of one case at a time below it
    st.subheader("Worklist")
    order = st.selectbox("Order", ORDERS, key="worklist-order",
                         help="Largest prediction set first: the cases the model could narrow down least")
    rows = sort_rows([worklist_row(c, screening) for c in cases], order)
    st.dataframe(rows, hide_index=True, column_config={
        "probability": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
        "tumour probability": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1)})
    st.download_button("Download worklist (CSV)", lambda: worklist_csv(rows), "brain-cnn-worklist.csv", "text/csv",
                       on_click="ignore")
    shown = st.selectbox("Case shown below", range(len(cases)), format_func=lambda i: cases[i].name,
                         key="case-shown")
    case = cases[shown if shown is not None and shown < len(cases) else 0]

st.divider()
st.subheader(case.name)
label_key = f"label-{case.sha256}"
typed = st.text_input("Case label for the PDF and the worklist (optional)", value=case.label or "", key=label_key,
                      placeholder=case_label(case), help=LABEL_HELP, on_change=keep_case_label,
                      args=(case, label_key))
if typed.strip() and clean_label(typed) is None:
    st.error(f"That label is not used. {LABEL_HELP}", icon=":material/error:")
# The digest is how the audit log names this input; it lets a reader match the two.
st.caption(f"Input SHA-256 {case.sha256[:16]}"
           + "".join(f" | {k}: {v}" for k, v in case.header.items()))
for note in case.notes:
    st.warning(note, icon=":material/warning:")
index = 0
if case.kind == "nifti":
    st.radio("Plane", list(AXES), key=f"axis-{case.name}", horizontal=True)
if case.is_volume:
    key = f"slice-{case.sha256}-{len(case.slices)}"
    st.session_state.setdefault(key, case.start_index())
    ranking = RANKINGS[0]
    if case.has_map:
        ranking = st.radio("Rank slices by", RANKINGS, key=f"rank-{key}", horizontal=True)
    suspicious = case.top_slices(ranking, 3)
    if suspicious:
        buttons = st.columns(len(suspicious) + 1)
        buttons[0].markdown("**Most suspicious slices**" if ranking == "probability" else "**Largest tumour outlines**")
        for cell, i in zip(buttons[1:], suspicious):
            if cell.button(case.slice_button_text(i), key=f"jump-{key}-{i}"):
                st.session_state[key] = i
    elif ranking == "tumour area":
        st.caption("No tumour outlined on any slice.")
    index = st.slider("Slice", 0, len(case.slices) - 1, key=key, format="%d")
    st.plotly_chart(slice_profile_figure(case, index), key="profile")
chosen = case.slices[index]
if method == OUTLINE_VIEW and not chosen.has_map:  # the card said maps; the network has none
    method = QUICK_METHOD
if chosen.refused:
    st.error(chosen.summary(), icon=":material/block:")
else:  # a tumour-map network's area goes with its call
    (st.warning if chosen.warnings else st.success)(
        chosen.summary() + (f"  \n{chosen.outline_text()}" if chosen.has_map else ""))
if screening is not None and chosen.tumour_probability is not None:
    possible = flagged(chosen.tumour_probability, screening)
    (st.error if possible else st.info)(screening_text(chosen.tumour_probability, screening, DEFAULT_MISSED_RATE),
                                        icon=":material/crisis_alert:" if possible else ":material/check:")
if said := chosen.set_text():  # the conformal set and what its guarantee means, beside the call
    st.info(f"**{said}**  \n{chosen.set_note(card.gate.get('threshold'))}", icon=":material/rule:")
for note in chosen.warnings:
    st.warning(note, icon=":material/warning:")

# The network's input identifies the slice: the same file re-sliced along another plane is another slice.
slice_key = digest(chosen.model_input.tobytes())
# The outline came with the call; a heat map is computed now (Grad-CAM) or queued (costly ones).
used, heat, job = (method, None, None) if method == OUTLINE_VIEW else map_now(folder, chosen, slice_key, method)
if job is not None and job.done:  # it failed: map_now hands back finished maps, not jobs
    st.error(f"The {method} map could not be computed ({job.future.exception()}); showing {used}.",
             icon=":material/error:")
    job = None
explanations = (read_report(folder) or {}).get("explanations")
explained = list(chosen.probabilities)[chosen.class_index]


def draw_map(where, used: str, heat) -> None:
    with where.container():
        if used == OUTLINE_VIEW:
            st.image(chosen.outline_image(), caption=OUTLINE_CAPTION, width="stretch")
            if chosen.refused:
                st.caption(chosen.outline_text())
            st.caption(outline_note(read_report(folder, TUMOUR_MAPS_FILE)))
            return
        st.image(overlay_heatmap(chosen.display, heat, opacity), caption=f"{used} for '{explained}'", width="stretch")
        st.caption(trust_note(explanations, used))


def pdf_report() -> bytes:
    """Made when the button is pressed (on another thread), with the costly map if it is ready by then."""
    if used == OUTLINE_VIEW:  # the outline and its area, which a tumour-map network's report always carries
        return case_report_pdf(case, chosen, None, None, card.name, card.sha256)
    final, shown = (method, job.result()) if job is not None and job.done and not job.future.exception() else (used, heat)
    return case_report_pdf(case, chosen, overlay_heatmap(chosen.display, shown, opacity), final, card.name,
                           card.sha256, heat_map_note=trust_note(explanations, final))


original, overlaid, chart = st.columns([1, 1, 1.2])
original.image(chosen.display, caption=f"{chosen.label_text} (cropped to the head)", clamp=True, width="stretch")
drawn = overlaid.empty()
draw_map(drawn, used, heat)
progress = overlaid.empty()
if not chosen.refused:  # native bars: drawn at once, with no charting library for the browser to load first
    chart.markdown("**Class probabilities** (calibrated)")
    for name, p in sorted(chosen.probabilities.items(), key=lambda item: item[1], reverse=True):
        chart.progress(min(1.0, max(0.0, p)), text=f"{name}: {p:.1%}")
    if note := chosen.decision_note():  # the card's rule (tumour first) called another class than the largest
        chart.caption(note)
chart.download_button("PDF report", pdf_report, f"brain-cnn-report-{case_label(case).replace(' ', '_')}-{index + 1}.pdf",
                      "application/pdf", key="pdf", on_click="ignore")

# Last, so everything above is on screen while the costly map is computed; a rerun meanwhile
# (another slice, another opacity) leaves the job running in the queue and picks it up again.
if job is not None:
    while not job.done:
        ahead = maps_ahead(folder, job)
        progress.progress(job.progress, text=f"{method} for '{explained}': " + (
            f"waiting for {ahead} other map{'s' * (ahead > 1)} first" if ahead else f"{job.progress:.0%} done"))
        time.sleep(0.2)
    progress.empty()
    if job.future.exception() is None:
        draw_map(drawn, method, job.result())
    else:
        st.error(f"The {method} map could not be computed ({job.future.exception()}); showing {used}.",
                 icon=":material/error:")

"""Diagnose: upload scans, see the call, the probabilities and where the network looked."""

import streamlit as st

from brain_cnn.app_support import (
    DISCLAIMER,
    assess_series_upload,
    assess_upload,
    heatmap_for,
    predictor_for,
    read_report,
)
from brain_cnn.dashboards import probability_bars, slice_profile_figure
from brain_cnn.errors import BrainCnnError
from brain_cnn.explain import DEFAULT_METHOD, METHODS, overlay_heatmap
from brain_cnn.explain_eval import trust_note
from brain_cnn.report import case_report_pdf
from brain_cnn.scan import AXES, group_series, is_dicom, is_nifti
from brain_cnn.worklist import worklist_csv, worklist_row

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
method = left.selectbox("Explanation method", list(METHODS), index=list(METHODS).index(DEFAULT_METHOD),
                        help="; ".join(f"{m.name}: {m.description}" for m in METHODS.values()))
opacity = right.slider("Heat-map opacity", 0.0, 1.0, 0.45, 0.05)

if not uploads:
    st.info("Upload a scan to see the model's call and its heat map.")
    st.stop()

files = [(u.name, u.getvalue()) for u in uploads]
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

if len(cases) > 1:
    st.subheader("Worklist")
    rows = [worklist_row(c) for c in cases]
    st.dataframe(rows, hide_index=True, column_config={
        "probability": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
        "tumour probability": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1)})
    st.download_button("Download worklist (CSV)", worklist_csv(rows), "brain-cnn-worklist.csv", "text/csv")

card = predictor_for(str(folder)).card
for number, case in enumerate(cases):
    st.divider()
    st.subheader(case.name)
    if case.header:
        st.caption(" | ".join(f"{k}: {v}" for k, v in case.header.items()))
    for note in case.notes:
        st.warning(note, icon=":material/warning:")
    index = 0
    if case.kind == "nifti":
        st.radio("Plane", list(AXES), key=f"axis-{case.name}", horizontal=True)
    if case.is_volume:
        key = f"slice-{case.sha256}-{len(case.slices)}"
        st.session_state.setdefault(key, case.start_index())
        suspicious = case.most_suspicious(3)
        if suspicious:
            buttons = st.columns(len(suspicious) + 1)
            buttons[0].markdown("**Most suspicious slices**")
            for cell, i in zip(buttons[1:], suspicious):
                p = case.slices[i].tumour_probability
                if cell.button(f"slice {i + 1} (tumour {p:.0%})", key=f"jump-{key}-{i}"):
                    st.session_state[key] = i
        index = st.slider("Slice", 0, len(case.slices) - 1, key=key, format="%d")
        st.plotly_chart(slice_profile_figure(case, index), key=f"profile-{number}")
    chosen = case.slices[index]
    if chosen.refused:
        st.error(chosen.summary(), icon=":material/block:")
    else:
        (st.warning if chosen.warnings else st.success)(chosen.summary())
    for note in chosen.warnings:
        st.warning(note, icon=":material/warning:")
    with st.spinner(f"Computing {method} ..."):
        heatmap = heatmap_for(folder, chosen, f"{case.sha256}-{index}", method)
    overlay = overlay_heatmap(chosen.display, heatmap, opacity)
    original, overlaid, chart = st.columns([1, 1, 1.2])
    original.image(chosen.display, caption=f"{chosen.label_text} (cropped to the head)", clamp=True, width="stretch")
    explained = list(chosen.probabilities)[chosen.class_index]
    overlaid.image(overlay, caption=f"{method} for '{explained}'", width="stretch")
    worth = trust_note((read_report(folder) or {}).get("explanations"), method)
    overlaid.caption(worth)
    if not chosen.refused:
        chart.plotly_chart(probability_bars(chosen.probabilities), key=f"bars-{number}")
    chart.download_button(
        "PDF report", case_report_pdf(case, chosen, overlay, method, card.name, card.sha256, heat_map_note=worth),
        f"brain-cnn-report-{case.sha256[:12]}-{index + 1}.pdf", "application/pdf", key=f"pdf-{number}")

"""Follow-up: the current and the prior study of one patient, each tumour measured as one, and the change."""

import streamlit as st

from brain_cnn.app_support import DISCLAIMER, assess_study_upload, predictor_for, read_report, study_model_folder
from brain_cnn.errors import BrainCnnError
from brain_cnn.model.card import STUDIES_FILE
from brain_cnn.inference.study import DifferentPatients, compare, measure_case
from brain_cnn.reports.deidentify import case_label
from brain_cnn.reports.follow_up import (RANO_NOTE, change_sentence, follow_up_pdf, largest_slice_image, measure_rows,
                                         trust_sentence)
from brain_cnn.scan.limits import within_session_limits

st.title("Follow-up")
st.warning(DISCLAIMER, icon=":material/info:")
folder = study_model_folder(st.session_state.get("model_folder"))
if folder is None:
    st.info("A study is measured with a tumour-map model, and none is installed.")
    st.stop()
st.caption(f"Measured with {folder.name}: the tumour map of every slice, regions joined across neighbouring "
           "slices (an outline on one slice alone is left out), the volume from the file's spacing, and on the "
           "slice where the tumour is largest its longest diameter and the longest one perpendicular to it.")
st.info(trust_sentence(read_report(folder, STUDIES_FILE)), icon=":material/straighten:")

HELP = "A NIfTI volume, a ZIP of a DICOM series, or the DICOM files of one series"
left, right = st.columns(2)
current_files = left.file_uploader("Current study", accept_multiple_files=True, help=HELP, key="current-study")
prior_files = right.file_uploader("Prior study (optional)", accept_multiple_files=True, help=HELP, key="prior-study")
if not current_files:
    st.info("Upload the current study (and a prior one of the same patient to see the change).")
    st.stop()

uploads = list(current_files) + list(prior_files or [])
_, over_limit = within_session_limits([u.size for u in uploads])
if over_limit:
    st.error(over_limit, icon=":material/error:")
    st.stop()

studies = {}
for title, files in (("current", current_files), ("prior", prior_files)):
    if not files:
        continue
    try:
        case = assess_study_upload(folder, [(u.name, u.getvalue()) for u in files])
        studies[title] = (case, measure_case(case))
    except BrainCnnError as error:
        st.error(f"The {title} study cannot be measured. {error}", icon=":material/error:")
if "current" not in studies:
    st.stop()

change = None
if "prior" in studies:
    try:
        change = compare(studies["current"][1], studies["prior"][1])
    except DifferentPatients as error:
        st.error(f"{error}.", icon=":material/block:")
        if st.checkbox("They are the same patient: compare them", key="same-patient"):
            change = compare(studies["current"][1], studies["prior"][1], same_patient_confirmed=True)
if change is not None:
    (st.warning if change.warnings else st.success)(change_sentence(change))
    for warning in change.warnings:
        st.warning(warning, icon=":material/warning:")
    st.caption(RANO_NOTE)

shown = [(t, *studies[t]) for t in ("prior", "current") if t in studies]
for column, (title, case, measure) in zip(st.columns(len(shown)), shown):
    column.markdown(f"**{title.capitalize()} study**: {case.name}, {len(case.slices)} slices"
                    + (f", {case.sequence}" if case.sequence else ""))
    image = largest_slice_image(case, measure)
    if image is None:
        column.info("No tumour outlined on any slice.")
    else:
        column.image(image, width="stretch", caption=f"Slice {measure.largest_slice + 1}: outline (yellow), longest "
                     "diameter (red), perpendicular (blue)")
    for note in measure.notes:
        column.caption(note)
st.dataframe(measure_rows(studies["current"][1], studies["prior"][1] if change else None, change), hide_index=True)

current_case = studies["current"][0]
card = predictor_for(folder).card


def pdf() -> bytes:
    return follow_up_pdf(studies["current"], studies["prior"] if change else None, change, card.name, card.sha256,
                         trust=trust_sentence(read_report(folder, STUDIES_FILE)))


st.download_button("PDF report", pdf, f"brain-cnn-follow-up-{case_label(current_case).replace(' ', '_')}.pdf",
                   "application/pdf", key="follow-up-pdf", on_click="ignore")

"""brain-cnn: the clinician's app. Run with `streamlit run app.py`.

The pages live in app_pages/, not pages/: Streamlit's legacy discovery of a
pages/ folder would serve a page without this entry point on the first
request after a restart (a bookmarked /evaluation came up blank). Still so in
Streamlit 1.67: PagesManager sets ``uses_pages_directory`` when a pages/ folder
exists, and the script runner takes the old multipage path (``_mpa_v1``) until
``st.navigation`` has run once and cleared it; see the review of
streamlit/streamlit#10276 ("with a pages folder + MPAv2 [...] directly access
an URL path [...] sometimes it completely switch back to MPAv1").
"""

import streamlit as st

from brain_cnn.app_support import DISCLAIMER, choose_model, keep_models_between_reruns, model_service

keep_models_between_reruns()
st.set_page_config(page_title="brain-cnn", page_icon=":material/neurology:", layout="wide")

pages = [
    st.Page("app_pages/diagnose.py", title="Diagnose", icon=":material/radiology:", default=True),
    st.Page("app_pages/evaluation.py", title="Evaluation", icon=":material/monitoring:"),
    st.Page("app_pages/dataset.py", title="Dataset", icon=":material/photo_library:"),
    st.Page("app_pages/model_card.py", title="Model card", icon=":material/description:"),
    st.Page("app_pages/audit_log.py", title="Audit log", icon=":material/history:"),
]
navigation = st.navigation(pages)
st.session_state["model_folder"] = choose_model()
if st.session_state["model_folder"] is not None:
    # Loads in the background (once per process) while the user picks a file.
    model_service(str(st.session_state["model_folder"]))
st.session_state["audit_on"] = st.sidebar.toggle(
    "Record assessments in the audit log", value=st.session_state.get("audit_on", True),
    help="Time, input checksum, model and result; never the image or patient data")
st.sidebar.caption(DISCLAIMER)
navigation.run()

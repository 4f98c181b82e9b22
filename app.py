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

from brain_cnn.app_access import admit, sidebar_identity
from brain_cnn.app_support import DISCLAIMER, audit_identity, choose_model, keep_models_between_reruns, model_service
from brain_cnn.reports.audit import record_event


def record_switch() -> None:
    """Switching the trail off or on is itself recorded."""
    on = st.session_state["audit_switch"]
    try:
        record_event("recording on" if on else "recording off", **audit_identity())
    except OSError as error:
        st.sidebar.warning(f"The audit trail could not be written ({error}).")


keep_models_between_reruns()
st.set_page_config(page_title="brain-cnn", page_icon=":material/neurology:", layout="wide")
granted = admit()  # the login, or the local single-user mode; stops here for anyone not let in

pages = {
    "diagnose": dict(title="Diagnose", icon=":material/radiology:"),
    "follow_up": dict(title="Follow-up", icon=":material/timeline:"),
    "evaluation": dict(title="Evaluation", icon=":material/monitoring:"),
    "dataset": dict(title="Dataset", icon=":material/photo_library:"),
    "model_card": dict(title="Model card", icon=":material/description:"),
    "audit_log": dict(title="Audit log", icon=":material/history:"),
}
shown = granted.pages
navigation = st.navigation([st.Page(f"app_pages/{page}.py", default=page == shown[0], **pages[page])
                            for page in shown])
st.session_state["model_folder"] = choose_model()
if st.session_state["model_folder"] is not None and granted.may_see("diagnose"):
    # Loads in the background (once per process) while the user picks a file.
    model_service(str(st.session_state["model_folder"]))
if granted.may_stop_recording:
    st.session_state["audit_on"] = st.sidebar.toggle(
        "Record assessments in the audit log", value=st.session_state.get("audit_on", True),
        on_change=record_switch, key="audit_switch",
        help="User, address, time, input checksum, model and result; never the image or patient data")
else:
    st.session_state["audit_on"] = True
sidebar_identity(granted)
st.sidebar.caption(DISCLAIMER)
navigation.run()

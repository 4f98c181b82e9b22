"""Audit log: every assessment this installation recorded (no images, no identifiers), its chain checked."""

import streamlit as st

from brain_cnn.app_access import app_settings
from brain_cnn.reports.audit import audit_path, verify
from brain_cnn.reports.worklist import worklist_csv

st.title("Audit log")
path = audit_path()
st.caption(f"Append-only file: {path}. Each line: time, user, client address, session, case label, SHA-256 of "
           "the input, model and its checksum, result and flags, chained to the line before.")
trail = verify(path, app_settings().get("audit_key"))
if not trail.intact:
    st.error("The audit trail has been changed outside the app: " + "; ".join(trail.problems))
if trail.legacy:
    st.info(f"{trail.legacy} lines from before the chain existed are shown but cannot be checked.")
if not trail.records:
    st.info("No assessments recorded yet.")
    st.stop()
st.dataframe(list(reversed(trail.records)), hide_index=True)
st.download_button("Download the audit log (CSV)", worklist_csv(trail.records), "brain-cnn-audit.csv", "text/csv")

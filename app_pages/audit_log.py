"""Audit log: every assessment this installation recorded (no images, no identifiers)."""

import streamlit as st

from brain_cnn.reports.audit import audit_path, read_records
from brain_cnn.reports.worklist import worklist_csv

st.title("Audit log")
path = audit_path()
st.caption(f"Append-only file: {path}. Each line: time, SHA-256 of the input, model and its checksum, "
           "result and flags. Switch recording off in the sidebar.")
records = read_records(path)
if not records:
    st.info("No assessments recorded yet.")
    st.stop()
st.dataframe(list(reversed(records)), hide_index=True)
st.download_button("Download the audit log (CSV)", worklist_csv(records), "brain-cnn-audit.csv", "text/csv")

"""Dataset: what a data folder holds, class by class."""

import plotly.graph_objects as go
import streamlit as st

from brain_cnn.app_support import PROJECT, default_data_dir, models_dir
from brain_cnn.data.leakage import KINDS, audit_folders
from brain_cnn.data.roots import confine, data_roots
from brain_cnn.data.summary import summarise
from brain_cnn.errors import BrainCnnError

st.title("Dataset")
folder = st.session_state.get("model_folder")
suggested = default_data_dir()
if folder is not None:
    from brain_cnn.app_support import card_for

    trained_on = card_for(folder).dataset.get("name")
    if trained_on and (default_data_dir(trained_on)).is_dir():
        suggested = default_data_dir(trained_on)
roots = data_roots([default_data_dir(), PROJECT.parent / "shared" / "data"], models_dir(), PROJECT)
typed = st.text_input("Data folder (ROOT/<split>/<class>/* or ROOT/<class>/*)", value=str(suggested),
                      help="A folder in one of this installation's data folders: "
                           + (", ".join(str(root) for root in roots) or "none (set BRAIN_CNN_DATA)"))
path = confine(typed, roots)
if path is None:
    st.info("No data set to show: only this installation's data folders can be browsed (BRAIN_CNN_DATA, the "
            "shared data folder, the folders the model cards name).")
    st.stop()
path = str(path)


@st.cache_data(show_spinner="Reading the folder ...", max_entries=8, ttl=3600)
def cached_summary(path: str):
    return summarise(path)


try:
    summary = cached_summary(path)
except BrainCnnError:
    st.info("No data set to show in that folder: it holds no folder-per-class data set.")
    st.stop()

counts = summary.counts()
total = sum(sum(c.values()) for c in counts.values())
st.caption(f"{total} images in {len(summary.folder.classes)} classes; splits: {', '.join(counts)}."
           + (f" Skipped: {dict(summary.folder.skipped)}." if summary.folder.skipped else ""))
figure = go.Figure([go.Bar(name=split, x=list(c), y=list(c.values())) for split, c in counts.items()])
figure.update_layout(barmode="stack", title="Images per class", template="plotly_white", height=380)
st.plotly_chart(figure, key="distribution")

left, right = st.columns(2)
left.markdown(f"**Formats and modes** (of {summary.inspected} files inspected)")
left.dataframe([{"format": f, "mode": m, "files": n} for (f, m), n in summary.formats.most_common()], hide_index=True)
right.markdown("**Most common sizes**")
right.dataframe([{"width": w, "height": h, "files": n} for (w, h), n in summary.sizes.most_common(10)], hide_index=True)

st.subheader("Examples")
for name, files in summary.examples.items():
    st.markdown(f"**{name}**")
    cells = st.columns(len(files) or 1)
    for cell, file in zip(cells, files):
        cell.image(str(file), width="stretch")

st.subheader("Copies of one slice")
st.caption("The same slice, as it is, mirrored, flipped or rotated, found by a hash of the head in its eight "
           "orientations (`brain-cnn audit`). A test image with a copy in training says little about new patients.")


@st.cache_data(show_spinner="Hashing every image of the folder in eight orientations ...", max_entries=4)
def cached_audit(path: str):
    return audit_folders([path])["data"][0]


if st.toggle("Look for copies", key="audit_copies",
             help=f"Reads every image once: about half a minute for {total} images on two cores"):
    try:
        audit = cached_audit(path)
    except BrainCnnError as error:
        st.error(f"The folder could not be audited: {error}")
        st.stop()
    findings = {f"{split} within itself": found for split, found in audit["within"].items()}
    findings |= {pair.replace(" in ", " images with a copy in "): found for pair, found in audit["across"].items()}
    st.dataframe([{"finding": name, "images with a copy": found["images_with_copy"], "of": found["of"],
                   **{kind: found["by_kind"].get(kind, 0) for kind in KINDS}} for name, found in findings.items()],
                 hide_index=True)
    with_pairs = {name: found for name, found in findings.items() if found["examples"]}
    if with_pairs:
        left, right = st.columns(2)
        name = left.selectbox("Finding", list(with_pairs), key="audit_finding")
        kind = right.radio("Kind", list(with_pairs[name]["examples"]), horizontal=True, key="audit_kind")
        for first, second, bits in with_pairs[name]["examples"][kind][:3]:
            a, b = st.columns(2)
            a.image(str(summary.folder.root / first), caption=first, width="stretch")
            b.image(str(summary.folder.root / second), caption=f"{second} ({kind}, {bits} of 256 bits apart)",
                    width="stretch")

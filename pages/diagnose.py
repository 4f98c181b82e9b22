"""Diagnose: upload scans, see the call, the probabilities and where the network looked."""

import streamlit as st

from brain_cnn.app_support import DISCLAIMER, assess_upload, digest, heatmap_for
from brain_cnn.dashboards import probability_bars
from brain_cnn.decode import MAX_BYTES
from brain_cnn.errors import BrainCnnError
from brain_cnn.explain import DEFAULT_METHOD, METHODS, overlay_heatmap

st.title("Diagnose")
st.warning(DISCLAIMER, icon=":material/info:")

folder = st.session_state.get("model_folder")
if folder is None:
    st.stop()

uploads = st.file_uploader(
    "Upload one or more brain MRI slices (JPEG, PNG, WebP, BMP, TIFF, GIF)",
    type=["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"],
    accept_multiple_files=True,
)
left, right = st.columns(2)
method = left.selectbox("Explanation method", list(METHODS), index=list(METHODS).index(DEFAULT_METHOD),
                        help="; ".join(f"{m.name}: {m.description}" for m in METHODS.values()))
opacity = right.slider("Heat-map opacity", 0.0, 1.0, 0.45, 0.05)

if not uploads:
    st.info("Upload a scan to see the model's call and its heat map.")

for upload in uploads or []:
    st.divider()
    st.subheader(upload.name)
    data = upload.getvalue()
    try:
        if len(data) > MAX_BYTES:
            raise BrainCnnError(f"{upload.name}: the file is larger than {MAX_BYTES // 2**20} MB")
        result = assess_upload(folder, data, upload.name)
    except BrainCnnError as error:
        st.error(f"Cannot assess this file. {error}", icon=":material/error:")
        continue
    (st.warning if result.warnings else st.success)(result.summary())
    for note in result.warnings:
        st.warning(note, icon=":material/warning:")
    with st.spinner(f"Computing {method} ..."):
        heatmap = heatmap_for(folder, result, digest(data), method)
    original, overlaid, chart = st.columns([1, 1, 1.2])
    original.image(result.display, caption="Scan (cropped to the head)", clamp=True, width="stretch")
    overlaid.image(overlay_heatmap(result.display, heatmap, opacity),
                   caption=f"{method} for '{result.label}'", width="stretch")
    chart.plotly_chart(probability_bars(result.probabilities), key=f"bars-{upload.file_id}")

"""Model card: the selected model, for a human reader."""

import streamlit as st

from brain_cnn.app_support import card_for
from brain_cnn.errors import BrainCnnError
from brain_cnn.reports.sentences import combination_text, conformal_text, decision_rule

st.title("Model card")
folder = st.session_state.get("model_folder")
if folder is None:
    st.stop()
try:
    card = card_for(folder)
except BrainCnnError as error:
    st.error(str(error))
    st.stop()

st.header(card.name)
st.markdown(f"**Intended use.** {card.intended_use}")
st.markdown(f"**Classes** (output order): {', '.join(card.classes)}")
st.markdown(f"**Input**: {card.image_size}x{card.image_size}, {card.channels} channel(s), "
            f"cropped to the head; preprocessing v{card.preprocessing_version}")

st.subheader("Data")
st.markdown(f"Data set **{card.dataset.get('name', '?')}**; split: {card.dataset.get('split', '?')}.")
counts = card.dataset.get("counts", {})
if counts:
    classes = sorted({c for split in counts.values() for c in split})
    st.dataframe([{"class": c, **{s: counts[s].get(c, 0) for s in counts}} for c in classes], hide_index=True)

st.subheader("Metrics")
if card.metrics:
    rows = []
    for split, figures in card.metrics.items():
        unseen = figures.get("unseen")
        if unseen:  # the figure for new patients first, the whole split beside it
            rows.append({"split": f"{split}, unseen", **unseen})
        rows.append({"split": split if not unseen else f"{split}, all",
                     **{k: v for k, v in figures.items() if k not in ("unseen", "without_near_duplicates")}})
    st.dataframe(rows, hide_index=True)
    st.caption("Test figures are on images held out from training and checkpoint selection; \"unseen\" are the test "
               "images with no copy of any kind (identical, mirrored, flipped or rotated) among the images it "
               "trained or validated on.")
else:
    st.info("No metrics yet: run `brain-cnn evaluate`.")

st.caption(f"Probabilities are temperature-scaled with T = {card.temperature} (fitted on the validation split).")
st.markdown(f"**Decision rule** ({card.decision}). {decision_rule(card.decision)}")
st.markdown(conformal_text(card.conformal))

st.subheader("Validated on")
statements = card.validated_on
st.markdown(f"Test split of {card.dataset.get('name', '?')} (see Metrics).")
for line in statements:
    st.markdown(("    - " if line.startswith("  ") else "- ") + line.strip())
if not statements:
    st.markdown("- No other data set yet: not validated on other scanners, sequences or hospitals.")

st.subheader("Limitations")
for item in card.limitations or ["None recorded."]:
    st.markdown(f"- {item}")

st.subheader("Training")
st.json(card.training, expanded=False)
teacher = card.training.get("teacher")
if teacher:
    st.markdown(f"**Distilled** from `{teacher['name']}`: its training targets blend the labels with that model's "
                f"probabilities (weight {card.training.get('teacher_weight')}, temperature "
                f"{card.training.get('teacher_temperature')}). SHA-256 of the teacher's weights: `{teacher['sha256']}`")
st.markdown(f"Created {card.created}; libraries: " + ", ".join(f"{k} {v}" for k, v in card.versions.items()))
rule = card.training.get("combination")
if card.members and rule:
    st.markdown(combination_text(rule) + " SHA-256 of each member's model.keras:")
    st.code("\n".join(f"{m['folder']}  {m['sha256']}  {m.get('role', 'classifier')}" for m in card.members),
            language=None)
elif card.members:
    st.markdown("**An ensemble**: the mean of its members' probabilities. SHA-256 of each member's model.keras:")
    st.code("\n".join(f"{m['folder']}  {m['sha256']}" for m in card.members), language=None)
else:
    st.markdown("**SHA-256 of model.keras**")
    st.code(card.sha256, language=None)

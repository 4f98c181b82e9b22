"""Evaluation: how far to trust the selected model, from its own reports."""

import streamlit as st

from brain_cnn.reports import dashboards
from brain_cnn.app_support import (
    assess_upload,
    card_for,
    digest,
    heatmap_for,
    read_history,
    read_report,
    resolve_data_root,
)
from brain_cnn.errors import BrainCnnError
from brain_cnn.explain.overlay import overlay_heatmap
from brain_cnn.model.card import EXTERNAL_FILE, LOSO_FILE, TUMOUR_MAPS_FILE
from brain_cnn.reports.sentences import outline_note
from brain_cnn.reports.tables import coverage_rows, screening_rows, tumour_map_rows

GALLERY_METHOD = "Grad-CAM"  # a tenth of a second a map, so a grid of errors draws at once
SCREENING_COLUMNS = {k: st.column_config.NumberColumn(format="percent") for k in ("sensitivity", "specificity")}


def gallery(folder, cases: list[dict], root, caption, heat: bool = False, shown: int = 12) -> None:
    """The first ``shown`` cases' scans (``case["file"]`` under ``root``) in a grid, with a heat map if asked."""
    if not root.is_dir():
        st.info(f"The data folder {root} is not reachable from this machine, so the images cannot be shown: "
                + ", ".join(c["file"] for c in cases[:shown]))
        return
    grid = st.columns(4)
    for i, case in enumerate(cases[:shown]):
        cell = grid[i % 4]
        try:
            data = (root / case["file"]).read_bytes()
            scan = assess_upload(folder, data, case["file"], audited=False).slices[0]
            picture = (overlay_heatmap(scan.display, heatmap_for(folder, scan, digest(data), GALLERY_METHOD), 0.4)
                       if heat else scan.display)
        except (OSError, BrainCnnError) as error:
            cell.error(f"{case['file']}: {error}")
            continue
        cell.image(picture, width="stretch", caption=caption(case))


st.title("Evaluation")
folder = st.session_state.get("model_folder")
if folder is None:
    st.stop()
report = read_report(folder)
if report is None:
    st.info(f"{folder.name} has no evaluation.json yet. Run `brain-cnn evaluate --model {folder}`.")
    st.stop()

card = card_for(folder)
splits = list(report["splits"])
split_name = st.radio("Split", splits, horizontal=True,
                      help="test: held out from training and tuning; validation: used to pick the checkpoint")
split = report["splits"][split_name]
st.caption(f"{split['count']} images of {report['data']} ({report['source']}); evaluated {report['created']}.")

unseen = split.get("unseen")
if not (unseen and unseen.get("accuracy") is not None):
    unseen = None
shown = split
if unseen:
    # The headline is what it does on slices it has never seen: most official test slices of the public sets
    # are plain or mirrored copies of training slices, and flip augmentation shows it both.
    view = st.radio("Test images", [f"unseen ({unseen['count']})", f"all ({split['count']})"], horizontal=True,
                    help="unseen: no copy of any kind (identical, mirrored, flipped or rotated) among the images it "
                         "trained or validated on")
    shown = unseen if view.startswith("unseen") else split

columns = st.columns(7)
beside = shown is not split
columns[0].metric("Accuracy", f"{shown['accuracy']:.2%}",
                  help=f"all {split['count']} test images: {split['accuracy']:.2%}" if beside else None)
columns[1].metric("Macro F1", f"{shown['macro']['f1']:.3f}",
                  help=f"all {split['count']} test images: {split['macro']['f1']:.3f}" if beside else None)
# Ranking and calibration figures are reported on the whole split only.
columns[2].metric("Macro ROC AUC" + (" (all)" if beside else ""),
                  f"{split['macro_roc_auc']:.4f}" if split["macro_roc_auc"] else "n/a")
before = split.get("calibration_before_scaling", split["calibration"])["ece"]
columns[3].metric("Calibration error (ECE)" + (" (all)" if beside else ""), f"{split['calibration']['ece']:.4f}",
                  help=f"after temperature scaling (T = {report.get('temperature', 1.0)}); before: {before:.4f}")
screen = shown.get("screening")
if screen and screen["sensitivity"] is not None:
    columns[4].metric("Tumour sensitivity", dashboards.share(screen["true_positive"], screen["false_negative"]),
                      help=f"{screen['false_negative']} tumour scans called no tumour")
    columns[5].metric("Tumour specificity", dashboards.share(screen["true_negative"], screen["false_positive"]),
                      help=f"{screen['false_positive']} no-tumour scans called tumour")

gate = split.get("gate")
if gate:
    columns[6].metric("Refused by the gate", f"{gate['refused_rate']:.2%}",
                      help=f"{gate['refused']} of {split['count']} real scans answered 'cannot assess'; "
                           f"accuracy on the rest {gate['accuracy_on_accepted']:.2%}")

if unseen:
    kinds = ", ".join(f"{n} {kind}" for kind, n in unseen.get("removed_by_kind", {}).items())
    st.info(
        f"**Copies left out.** {unseen['removed']} of {split['count']} test images are copies of images it trained "
        f"or validated on ({kinds or 'by an earlier check'}). On the other {unseen['count']}, which it never saw in "
        f"any orientation: accuracy **{unseen['accuracy']:.2%}**, macro F1 {unseen['macro_f1']:.3f} (all "
        f"{split['count']}: {split['accuracy']:.2%}). The unseen figure is the one for new patients.",
        icon=":material/content_copy:")

external = read_report(folder, EXTERNAL_FILE) or {}
sets = coverage_rows(shown.get("conformal"), external)
if sets:
    st.subheader("Prediction sets and the screening threshold")
    level = next(k for k in sets[0] if k.endswith("set covers the class"))
    st.caption(f"How often the conformal set held the true class ({level.split()[0]} promised on scans like the "
               "calibration scans), held tumour for a tumour and no tumour for a normal slice, and how many tumours "
               "fell below the screening threshold, on images it never trained on or was calibrated on "
               "(docs/conformal.md).")
    st.dataframe(sets, hide_index=True)
    short = [f"{r['data']} ({r['group']})" for r in sets if r.get("short of the level")]
    if short:
        st.warning(f"The sets held the true answer less often than promised, by more than chance, on "
                   f"{', '.join(short)}: those scans are not like the calibration scans, and the guarantee does not "
                   "hold for them.", icon=":material/warning:")
loso = read_report(folder, LOSO_FILE)
if external or loso:
    st.subheader("Tumour screening on other data sets")
    st.caption("Tumour vs no tumour on data sets from other sources, per MRI sequence where the folder names say it "
               "(`brain-cnn evaluate --data OTHER`), on the images that are not copies (in any orientation) of the "
               "model's training images. Goal: sensitivity and specificity of at least 90 % on each.")
    rows = screening_rows(external)
    if rows:
        st.markdown("**This model**")
        st.dataframe(rows, hide_index=True, column_config=SCREENING_COLUMNS)
        failing = sorted({r["data set"] for r in rows if r["goal met"] is False})
        if failing:
            st.warning(f"Below the goal on {', '.join(failing)}: it misses tumours or flags normal scans there. "
                       "Do not rely on it for scans like those.", icon=":material/warning:")
    with_errors = {n: r for n, r in external.items() if r.get("errors", {}).get("missed_count")
                   or r.get("errors", {}).get("flagged_count")}
    if with_errors:
        st.markdown("**What it gets wrong there** (images it did not train on; the most confident mistakes first)")
        left, right = st.columns(2)
        name = left.selectbox("Data set", list(with_errors), key="screening_errors_set")
        errors = with_errors[name]["errors"]
        missed = f"tumours called no tumour ({errors['missed_count']})"
        wanted = right.radio("Show", [missed, f"normal scans called tumour ({errors['flagged_count']})"],
                             horizontal=True, key="screening_errors_kind")
        cases = errors["missed_tumours"] if wanted == missed else errors["flagged_normals"]
        gallery(folder, cases, resolve_data_root(with_errors[name].get("data_root", with_errors[name]["data"])),
                lambda case: f"{case['folder']}: P(tumour) {case['tumour_score']:.2f}")
    if loso:
        st.markdown("**Leave one source out** (the same recipe trained without the data set it is tested on, "
                    "`brain-cnn loso`)")
        st.dataframe(screening_rows({f"without {n}": f for n, f in loso["folds"].items()}), hide_index=True,
                     column_config=SCREENING_COLUMNS)

measured = read_report(folder, TUMOUR_MAPS_FILE)
if measured:
    st.subheader("Tumour maps on held-out data")
    st.caption("The tumour map against expert masks, and tumour vs no tumour, on data this network never trained or "
               "validated on (`python -m brain_cnn.evaluation.tumour_maps`; the LGG test patients' tumour-free slices "
               "stand in for normals). Goals: Dice at least 0.80; sensitivity at least 95 % at specificity 90 %.")
    map_rows, held_out_rows = tumour_map_rows(measured)
    st.dataframe(map_rows, hide_index=True)
    st.dataframe(held_out_rows, hide_index=True, column_config=SCREENING_COLUMNS)
    st.caption(outline_note(measured))

left, right = st.columns(2)
normalise = left.toggle("Row-normalised", value=False)
left.plotly_chart(dashboards.confusion_matrix_figure(shown, card.classes, normalise), key="confusion")
right.markdown("**Per class**" + (f" (the {unseen['count']} unseen test images)" if shown is not split else ""))
right.dataframe(dashboards.per_class_rows(shown), hide_index=True,
                column_config={k: st.column_config.NumberColumn(format="%.3f") for k in ("precision", "recall", "f1")})

merged = split.get("by_type")
if merged:
    st.markdown(f"**Sequences merged** ({len(merged['types'])} types; the probability of a type is the sum over "
                f"its T1, T1C+ and T2 classes): accuracy **{merged['accuracy']:.2%}**, macro F1 "
                f"{merged['macro_f1']:.3f}" + (f", top-3 {merged['top3_accuracy']:.2%}" if "top3_accuracy" in merged
                                              else "") + (f"; unmerged top-3 {split['top3_accuracy']:.2%}"
                                                          if "top3_accuracy" in split else ""))
    st.plotly_chart(dashboards.confusion_matrix_figure(merged, merged["types"], normalise), key="confusion-types")

left, right = st.columns(2)
left.plotly_chart(dashboards.roc_figure(split), key="roc")
right.plotly_chart(dashboards.precision_recall_figure(split), key="pr")
left, right = st.columns(2)
left.plotly_chart(dashboards.reliability_figure(split), key="reliability")

history = read_history(folder)
if history:
    right.plotly_chart(dashboards.history_figure(history, "accuracy"), key="history-acc")
    left.plotly_chart(dashboards.history_figure(history, "loss"), key="history-loss")

explanations = report.get("explanations")
if explanations:
    st.subheader("Do the heat maps point at the tumour?")
    st.caption(f"{len(explanations['per_image'])} test images with expert tumour boxes ({explanations.get('boxes', '')}); "
               "pointing game: the heat map's maximum falls inside the box; energy: share of the heat map inside "
               "the box; IoU: the half-maximum region against the box; peak off brain: the maximum falls on the "
               "skull, the scalp or outside the head, where no brain tumour can be.")
    st.dataframe([{"method": m, **v} for m, v in explanations["methods"].items()], hide_index=True)
    if explanations.get("by_class"):
        st.caption("Pointing game by tumour type (images):")
        st.dataframe(dashboards.pointing_by_class(explanations["by_class"]), hide_index=True)
        if any(row.get("peak_off_brain") is not None for rows in explanations["by_class"].values()
               for row in rows.values()):
            st.caption("Peak off the brain by tumour type (images):")
            st.dataframe(dashboards.pointing_by_class(explanations["by_class"], "peak_off_brain"), hide_index=True)
    if explanations.get("removal"):
        st.caption("Does the call need the tumour? How often an image keeps its class with the tumour's box painted "
                   "over from the tissue around it, against a box of the same size painted over elsewhere in the "
                   "brain. A call that survives the tumour's removal is made from the rest of the slice, and no "
                   "heat map can point at a tumour the network does not use.")
        st.dataframe(dashboards.removal_rows(explanations["removal"]), hide_index=True)
    box_root = resolve_data_root(explanations.get("boxes", "")).parent
    examples = explanations.get("examples", [])
    if examples and box_root.is_dir():
        from brain_cnn.explain.explainer import DEFAULT_METHOD
        from brain_cnn.explain.overlay import draw_box

        cells = st.columns(len(examples))
        for cell, example in zip(cells, examples):
            try:
                data = (box_root / example["file"]).read_bytes()
                shown = assess_upload(folder, data, example["file"], audited=False).slices[0]
                with st.spinner(f"Computing {DEFAULT_METHOD} for {example['file'].split('/')[-1]} ..."):
                    heat = heatmap_for(folder, shown, digest(data))
            except (OSError, BrainCnnError):
                continue
            hit = example["scores"].get(DEFAULT_METHOD, {}).get("hit")  # None: a report made before the method
            verdict = {None: "", 0.0: "miss: ", 1.0: "hit: "}[hit]
            cell.image(draw_box(overlay_heatmap(shown.model_input[..., 0], heat, 0.45), example["box"]),
                       caption=f"{verdict}{example['file'].split('/')[-1]}", width="stretch")

st.subheader(f"Misclassified {split_name} images ({len(split.get('misclassified', []))})")
wrong = split.get("misclassified", [])
if not wrong:
    st.write("None.")
else:
    # Twelve maps at once: the fast method here; Diagnose offers every method for one scan.
    st.caption(f"Heat maps: {GALLERY_METHOD}, for the predicted class.")
    gallery(folder, wrong, resolve_data_root(report["data"]),
            lambda case: f"true {case['true']}, predicted {case['predicted']} "
                         f"({case['probabilities'][case['predicted']]:.0%})", heat=True)
    if len(wrong) > 12:
        st.caption(f"Showing 12 of {len(wrong)}; all are listed in evaluation.json.")

"""The sentences shown to clinicians and written on the model card, from a model's reports.

Pure functions of the JSON reports (``evaluation.json``, ``external.json``,
``loso.json``): what a heat map is worth, how the model did on a scan's MRI
sequence, where it was validated, and where its figures stop holding. They
import nothing of the package, so the case assessment, the evaluation and the
PDF can all say the same thing in the same words.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GOAL", "shown_figures", "sequence_note", "validation_statements", "limitations", "trust_note", "outline_note",
           "DECISION_RULES", "decision_rule", "decision_note", "combination_text", "conformal_text"]

GOAL = {"sensitivity": 0.90, "specificity": 0.90}  # per held-out source and sequence

# What each decision rule of brain_cnn.inference.decision means, by its name on the model card.
DECISION_RULES = {
    "top class": "Each slice is called its most probable class.",
    "tumour first": "Tumour first: a slice is called a tumour when the tumour classes together hold at least as much "
                    "as no tumour (at least 50 %), then its most probable tumour class; otherwise its most probable "
                    "no-tumour class. A tumour is not called \"no tumour\" only because no tumour is the single "
                    "largest class.",
}


def conformal_text(conformal: dict) -> str:
    """The model's conformal calibration (:mod:`brain_cnn.inference.conformal`), for the model card."""
    if not conformal:
        return ("**Prediction sets**: none; this model was trained without a calibration split "
                "(docs/conformal.md).")
    per_class = ", ".join(f"{c} {n}" for c, n in conformal.get("per_class", {}).items())
    text = (f"**Prediction sets** ({conformal.get('method', 'split conformal')}): calibrated on "
            f"{conformal.get('calibration_images')} images that no network of this model trained on or chose its "
            f"checkpoint on ({per_class}). On scans like those, the {conformal.get('coverage', 0.9):.0%} set holds "
            "the true class for at least that share of them; the Metrics table gives the share it held on the test "
            "images, and other scanners or sequences may fall short.")
    always = conformal.get("always_in_set")
    if always:
        text += f" Too few calibration images to ever leave out: {', '.join(always)}."
    screening = conformal.get("screening", {})
    if "threshold" in screening:
        text += (f" Screening mode flags \"tumour possible\" at a tumour probability of {screening['threshold']:.1%} "
                 f"or more, which lets at most {screening['missed_rate']:.0%} of such scans' tumours through.")
    elif screening.get("unavailable"):
        text += f" No screening mode: {screening['unavailable']}."
    return text


def combination_text(rule: dict) -> str:
    """How a combined model (:mod:`brain_cnn.model.combined`) joins its members, for the model card."""
    def numbers(part: dict) -> str:
        a, b = part["weights"]
        d, e = part["type_weights"]
        c = float(part["intercept"])
        return (f"whether there is a tumour = sigmoid({a:.3f} × the classifiers' tumour log-odds + {b:.3f} × the "
                f"tumour-map network's {'+' if c >= 0 else '−'} {abs(c):.3f}); the type from both networks' type probabilities "
                f"(weights {d:.3f} and {e:.3f}, a weighted geometric mean)")

    fitted = rule.get("fitted_on", {})
    if rule.get("familiar"):
        home = ", ".join(rule.get("look", {}).get("home", [])) or "their training source"
        body = (f"how much a slice looks like the classifiers' training source ({home}) is read off the first "
                f"classifier's features, and the rule moves between two sets of numbers by it (chosen over one rule "
                f"for every look by cross-validation). For that look, {numbers(rule['familiar'])}; for other "
                f"looks, {numbers(rule)}")
    else:
        body = numbers(rule)
    return (f"**A combined model**: {body}; the outline from the map. Fitted on {fitted.get('images', 'its')} "
            f"validation images no member trained on.")


def decision_rule(rule: str) -> str:
    """How a model with decision rule ``rule`` (its card's) makes its call, for the model card."""
    return DECISION_RULES.get(rule, f"Decision rule: {rule}.")


def decision_note(called: str, tumour: float, no_tumour: float, tumour_called: bool) -> str:
    """Why the call ``called`` is not the most probable class: the tumour classes together outweighed no tumour
    (``tumour_called``), or no tumour outweighed them.

    Example:
        >>> decision_note("glioma", 0.6, 0.4, True)
        'Called glioma: the tumour classes together hold 60%, more than no tumour (40%).'
    """
    tie = abs(tumour - no_tumour) < 1e-9
    # Two different figures that round alike would read as a tie: one decimal more for them.
    digits = 1 if f"{tumour:.0%}" == f"{no_tumour:.0%}" and not tie else 0
    t, n = f"{tumour:.{digits}%}", f"{no_tumour:.{digits}%}"
    if tumour_called:
        than = "as much as" if tie else "more than"
        return f"Called {called}: the tumour classes together hold {t}, {than} no tumour ({n})."
    return f"Called {called}: no tumour holds {n}, more than the tumour classes together ({t})."


def sequence_note(sequence: str, evidence: str, external: dict[str, Any], trained_on: set[str]) -> str:
    """What a reader of one scan should know of the model on that scan's MRI sequence.

    Taken from the model's screening reports (``external.json``): the figures on
    that sequence of another source, one the model did not train on when there
    is one, without the images it trained on.
    """
    found = sorted(((name, report) for name, report in external.items()
                    if sequence in shown_figures(report).get("by_sequence", {})),
                   key=lambda item: item[1].get("data_name") in trained_on)
    head = f"{sequence} scan ({evidence})."
    if not found:
        return (f"{head} This model has not been screened on {sequence} slices of another source, so how well it "
                "finds tumours on them is not known.")
    name, report = found[0]
    g = shown_figures(report)["by_sequence"][sequence]
    source = ("a source it was partly trained on" if report.get("data_name") in trained_on
              else "a source it was not trained on")
    found_kept = []
    if g["sensitivity"] is not None:
        found_kept.append(f"found {g['sensitivity']:.0%} of {g['tumour']} tumour slices")
    if g["specificity"] is not None:
        found_kept.append(f"kept {g['specificity']:.0%} of {g['no_tumour']} normal slices normal")
    text = f"{head} On {sequence} slices of {name} ({source}) this model {' and '.join(found_kept)}."
    if g["sensitivity"] is not None and g["sensitivity"] < GOAL["sensitivity"]:
        text += " A 'no tumour' call on this scan does not rule a tumour out."
    return text


def shown_figures(report: dict[str, Any]) -> dict[str, Any]:
    """A screening report's figures to show: without the images the model was trained on, when some were."""
    return report.get("without_training_duplicates", report) if report.get("seen_in_training") else report


def validation_statements(external: dict[str, Any], loso: dict[str, Any] | None,
                          trained_on: set[str] | None = None) -> list[str]:
    """Plain sentences for the model card: where the model (or its recipe) was screened, and how it did.

    ``trained_on`` names the data sets whose images (some of them) the model trained on: screening
    their other images is not validation on an independent source, and the sentence says so.
    """
    def figures(g):
        sens = "n/a" if g["sensitivity"] is None else f"{g['sensitivity']:.1%}"
        spec = "n/a" if g["specificity"] is None else f"{g['specificity']:.1%}"
        verdict = {True: "goal met", False: "below the 90%/90% goal", None: "goal not assessable"}[g["meets_goal"]]
        return f"sensitivity {sens}, specificity {spec} ({verdict})"

    lines = []
    for name, report in external.items():
        seen = report["seen_in_training"]
        # Images the model was trained on say nothing about new patients: report without them.
        shown = shown_figures(report)
        lines.append(f"Screened on {name} ({report['count']} images"
                     + (f"; {seen} copies of its training images, in any orientation, left out" if seen else "")
                     + f"): {figures(shown['overall'])}"
                     + (" (a source it was partly trained on, so not independent)."
                        if report.get("data_name") in (trained_on or set()) else "."))
        for sequence, g in shown.get("by_sequence", {}).items():
            lines.append(f"  {name} {sequence}: {figures(g)}.")
    for name, fold in (loso or {}).get("folds", {}).items():
        lines.append(f"Same recipe trained without {name} ({', '.join(fold['trained_on'])}), screening {name}: "
                     f"{figures(fold['overall'])}.")
    return lines


def limitations(card: dict[str, Any], report: dict[str, Any], tumour_maps: dict[str, Any] | None = None) -> list[str]:
    """What the model card must say about where the figures stop holding, from the report's facts (and, for a
    tumour-map network, from its held-out figures, ``tumour_maps.json``)."""
    dataset = card.get("dataset", {})
    name = dataset.get("name", "its data set")
    added = [s["name"] for s in dataset.get("sources", []) if "label_map" in s]
    trained = f"Trained on {name}" + (f" with {', '.join(added)} added to its training split" if added else "")
    notes = [
        "Classifies one 2-D slice at a time; it does not see the rest of the study.",
        f"{trained}; tested on {dataset.get('test', name + chr(39) + 's test split')}. "
        + ("Other data sets it was screened on are listed under 'validated on'; it was not validated on any "
           "other scanner, sequence or hospital." if card.get("validated_on") else
           "Not validated on other scanners, sequences or hospitals."),
    ]
    test = report["splits"].get("test", {})
    clean = test.get("unseen")
    if clean and clean.get("accuracy") is not None:
        kinds = ", ".join(f"{n} {k}" for k, n in clean.get("removed_by_kind", {}).items())
        notes.append(f"{clean['removed']} of {test['count']} test images are copies of images it trained or validated "
                     f"on ({kinds}); on the other {clean['count']}, unseen in any orientation, the accuracy is "
                     f"{clean['accuracy']:.1%} (on all {test['count']}: {test['accuracy']:.1%}).")
    notes.append(f"Probabilities are temperature-scaled (T = {report['temperature']}) on the validation split; "
                 "on data unlike it they may be over- or under-confident.")
    removal = (report.get("explanations") or {}).get("removal", {}).get("by_class", {})
    kept = ", ".join(f"{row['called_tumour_hidden']:.0%} of the {label} images" for label, row in removal.items()
                     if (row.get("called_tumour_hidden") or 0) >= 0.5)
    if kept:
        notes.append("With the tumour painted out of the slice (explain-eval's removal test on test images with "
                     f"expert tumour boxes), it still made the same call for {kept}: for these types it "
                     "decides mostly from the rest of the slice, so such a call is not evidence that a tumour is "
                     "visible, and its heat maps cannot show one.")
    if test.get("gate"):
        notes.append(f"The out-of-distribution gate refuses {test['gate']['refused_rate']:.1%} of real test scans by "
                     "design and cannot be relied on to catch every image that is not a brain MRI slice.")
    return notes + _map_limitations(tumour_maps or {})


def _map_limitations(measured: dict[str, Any]) -> list[str]:
    """A tumour-map network's limits, from its held-out figures."""
    notes = []
    official = measured.get("official_test_masks") or {}
    if official.get("mean_dice") is not None:
        lgg = (measured.get("lgg_test_masks") or {}).get("mean_dice")
        notes.append(f"Its tumour outline (the map at 50 %, at half the input's resolution) overlaps expert masks with a "
                     f"mean Dice of {official['mean_dice']:.2f} on {official['images']} official test tumours (peak "
                     f"inside the tumour {official['peak_inside']:.0%})" + (f" and {lgg:.2f} on lower-grade gliomas of "
                                                                           "held-out patients" if lgg is not None else "")
                     + ": read it as where the network found tumour, not as a margin.")
    removal = measured.get("official_test_removal") or {}
    below = removal.get("tumour_probability_below_half_when_painted_out")
    if below is not None and below < 0.9:
        notes.append(f"With the tumour painted out of the slice, the tumour probability stayed above 50 % for "
                     f"{1 - below:.0%} of {removal['images']} official test tumours: the map also fires on the rest of "
                     "such slices, so a call is not proof that the outlined region is the tumour.")
    held = [(label, (measured.get(key) or {}).get("overall") or {}) for key, label in
            (("yes_no_screening", "the yes/no set"), ("c44_test_screening", "the 44-class test split"),
             ("lgg_test_screening", "the LGG test patients"))]
    figures = "; ".join(f"{label} {g['sensitivity']:.0%} / {g['specificity']:.0%}" for label, g in held
                        if g.get("sensitivity") is not None and g.get("specificity") is not None)
    if figures:
        notes.append(f"Tumour sensitivity / specificity on sources and patients it never trained on: {figures} "
                     "(tumour_maps.json).")
    return notes


def _by_type(explanations: dict[str, Any], method: str, key: str, least: float = 0.0) -> str:
    values = {label: figures.get(method, {}).get(key) for label, figures in explanations.get("by_class", {}).items()}
    return ", ".join(f"{label} {v:.0%}" for label, v in values.items() if v is not None and v >= least)


def trust_note(explanations: dict[str, Any] | None, method: str) -> str:
    """What a heat map of ``method`` is worth, from a model's measured ``explanations`` (evaluation.json)."""
    measured = (explanations or {}).get("methods", {}).get(method)
    if not measured or measured.get("pointing_game") is None:
        return (f"{method} has not been measured against expert tumour boxes for this model. Read the map as the "
                "region that mattered to the call, not as an outline of a tumour.")
    by_type = _by_type(explanations, method, "pointing_game")
    note = (f"Against expert tumour boxes, the peak of {method} fell inside the tumour for "
            f"{measured['pointing_game']:.0%} of {measured['images']} test images" + (f" ({by_type})" if by_type else ""))
    # Only worth a reader's time when it happens often enough to mislead: a tenth of one type.
    off_types = _by_type(explanations, method, "peak_off_brain", least=0.10)
    if off_types:
        note += (f", and on the skull, the scalp or outside the head for {measured['peak_off_brain']:.0%} "
                 f"({off_types})")
    note += ". "
    # A type whose call mostly survives painting the tumour out is decided from elsewhere in the slice.
    kept = {label: row.get("called_tumour_hidden")
            for label, row in (explanations.get("removal") or {}).get("by_class", {}).items()}
    survives = ", ".join(f"{label} {v:.0%}" for label, v in kept.items() if v is not None and v >= 0.5)
    if survives:
        note += (f"With the tumour painted out of the slice, the network still made the same call ({survives} of "
                 "those images): for these types it decides mostly from the rest of the slice, and no heat map "
                 "can show a tumour it does not use. ")
    return note + "Read the map as the region that mattered to the call, not as an outline of a tumour."


def outline_note(measured: dict[str, Any] | None) -> str:
    """What a tumour-map model's outline is worth, from its held-out figures (``tumour_maps.json``)."""
    official = (measured or {}).get("official_test_masks") or {}
    if official.get("mean_dice") is None:
        return ("This outline has not been measured against expert tumour masks for this model. Read it as where "
                "the network found tumour, not as a measured margin.")
    note = (f"Against expert masks of {official['images']} official test tumours the outline's Dice overlap was "
            f"{official['mean_dice']:.2f} (1 is a perfect match), and its peak lay inside the tumour for "
            f"{official['peak_inside']:.0%}")
    lgg = (measured.get("lgg_test_masks") or {}).get("mean_dice")
    if lgg is not None:
        note += f"; on lower-grade gliomas of patients it never saw, {lgg:.2f}"
    note += ". "
    removed = (measured.get("official_test_removal") or {}).get("tumour_probability_below_half_when_painted_out")
    if removed is not None:
        note += (f"With the tumour painted out of the slice, the tumour probability fell below 50 % for {removed:.0%} "
                 "of those images. ")
    return note + "Read it as where the network found tumour, not as a measured margin."

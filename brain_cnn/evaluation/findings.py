"""What the evaluations found, written onto the model card.

Each function loads the card, sets the fields it owns and saves it through
:meth:`~brain_cnn.model.card.ModelCard.save`, the one writer of ``card.json``:
the headline figures, temperature, flip averaging and decision rule of ``evaluation.json``;
the out-of-distribution gate; and the sentences on where the model was
validated and where its figures stop holding (``external.json``, ``loso.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from brain_cnn.files import read_json
from brain_cnn.model.card import CARD_FILE, EVALUATION_FILE, TUMOUR_MAPS_FILE, load_card, read_external, read_loso
from brain_cnn.reports.sentences import limitations, validation_statements

__all__ = ["record_conformal", "record_evaluation", "record_gate", "refresh_card"]


def _headline(result: dict[str, Any]) -> dict[str, Any]:
    """The card's figures of one evaluated split."""
    entry = {
        "images": result["count"],
        "accuracy": result["accuracy"],
        **({"log_loss": result["log_loss"]} if "log_loss" in result else {}),
        "macro_f1": result["macro"]["f1"],
        "macro_roc_auc": result["macro_roc_auc"],
        "ece": result["calibration"]["ece"],
        "ece_before_scaling": result["calibration_before_scaling"]["ece"],
    }
    if result.get("screening"):
        entry["tumour_sensitivity"] = result["screening"]["sensitivity"]
        entry["tumour_specificity"] = result["screening"]["specificity"]
    if result.get("gate"):
        entry["refused_by_gate"] = result["gate"]["refused_rate"]
    entry.update(_set_figures(result.get("conformal")))
    clean = result.get("unseen")
    if clean and clean.get("accuracy") is not None:
        entry["unseen"] = {"images": clean["count"], "accuracy": clean["accuracy"], "macro_f1": clean["macro_f1"],
                           **({"tumour_sensitivity": clean["screening"]["sensitivity"],
                               "tumour_specificity": clean["screening"]["specificity"]}
                              if clean.get("screening") else {}), **_set_figures(clean.get("conformal"))}
    return entry


def _set_figures(conformal: dict[str, Any] | None) -> dict[str, Any]:
    """The card's figures of the conformal sets on one split: realised coverage and mean size at the level."""
    if not conformal or conformal.get("coverage") is None:
        return {}
    level = f"{conformal['coverage_level']:.0%}"
    return {f"{level} set coverage": conformal["coverage"], f"{level} set mean size": conformal["mean_set_size"]}


def record_evaluation(folder: str | Path, report: dict[str, Any]) -> None:
    """Copy the temperature, flip averaging, decision rule and headline figures of the model's own report into
    its card (a report written before the rule was recorded leaves the card's)."""
    card = load_card(folder)
    card.temperature = report["temperature"]
    card.flip_averaging = report["flip_averaging"]
    card.decision = report.get("decision", card.decision)
    # Keep headline figures of splits not evaluated this time.
    card.metrics = {**card.metrics, **{split: _headline(result) for split, result in report["splits"].items()}}
    card.limitations = limitations(card.to_dict(), report, read_json(Path(folder, TUMOUR_MAPS_FILE), default=None))
    card.save(folder)


def record_gate(folder: str | Path, gate: dict[str, Any]) -> None:
    """Name the fitted out-of-distribution gate (file, checksum, threshold, how it was fitted) in the card."""
    card = load_card(folder)
    card.gate = gate
    card.save(folder)


def record_conformal(folder: str | Path, conformal: dict[str, Any]) -> None:
    """Name the conformal calibration (file, checksum, what it was calibrated on, its sizes) in the card."""
    card = load_card(folder)
    card.conformal = conformal
    card.save(folder)


def refresh_card(folder: str | Path) -> None:
    """Write the card's "validated_on" sentences from ``external.json`` and ``loso.json``, and its limitations."""
    folder = Path(folder)
    if not (folder / CARD_FILE).is_file():
        return
    card = load_card(folder)
    card.validated_on = validation_statements(read_external(folder), read_loso(folder), card.trained_data_sets())
    report = read_json(folder / EVALUATION_FILE, default=None)
    if report is not None:  # the limitations mention where it was validated
        card.limitations = limitations(card.to_dict(), report, read_json(Path(folder, TUMOUR_MAPS_FILE), default=None))
    card.save(folder)

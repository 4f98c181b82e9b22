"""Plain-text tables for the terminal and table rows for the app, from a model's reports."""

from __future__ import annotations

from typing import Any

from brain_cnn.reports.sentences import shown_figures

__all__ = ["summary_table", "screening_table", "screening_rows", "coverage_rows", "loso_table"]

def summary_table(report: dict[str, Any]) -> str:
    """A short plain-text summary for the terminal."""
    lines = [f"model {report['model']} on {report['data']} ({report['source']}); "
             f"temperature {report['temperature']} ({report['temperature_fitted_on']}); "
             f"flip averaging {'on' if report['flip_averaging'] else 'off'}; "
             f"calls by the {report.get('decision', 'top class')} rule"]
    for split, result in report["splits"].items():
        line = (f"{split:<10} n={result['count']:<5} accuracy {result['accuracy']:.4f}  "
                + (f"log-loss {result['log_loss']:.4f}  " if "log_loss" in result else "")
                + f"macro F1 {result['macro']['f1']:.4f}  ECE {result['calibration']['ece']:.4f} "
                f"(before scaling {result['calibration_before_scaling']['ece']:.4f})")
        screen = result.get("screening")
        if screen and screen["sensitivity"] is not None and screen["specificity"] is not None:
            line += f"  tumour sens {screen['sensitivity']:.4f} spec {screen['specificity']:.4f}"
        if "top3_accuracy" in result:
            line += f"  top-3 {result['top3_accuracy']:.4f}"
        if result.get("by_type"):
            merged = result["by_type"]
            line += (f"\n{'':<10} sequences merged ({len(merged['types'])} types): accuracy {merged['accuracy']:.4f}"
                     f"  macro F1 {merged['macro_f1']:.4f}"
                     + (f"  top-3 {merged['top3_accuracy']:.4f}" if "top3_accuracy" in merged else ""))
        if result.get("gate"):
            line += f"  refused {result['gate']['refused']} ({result['gate']['refused_rate']:.2%})"
        clean = result.get("unseen")
        if clean and clean.get("accuracy") is not None:
            kinds = ", ".join(f"{n} {k}" for k, n in clean.get("removed_by_kind", {}).items())
            line += (f"\n{'':<10} unseen (no copy in any orientation among training and validation images): "
                     f"n={clean['count']} accuracy {clean['accuracy']:.4f}  macro F1 {clean['macro_f1']:.4f}  "
                     f"({clean['removed']} copies left out: {kinds})")
        for name, figures in (("", result.get("conformal")), ("unseen ", (clean or {}).get("conformal"))):
            if figures and figures.get("coverage") is not None:
                line += f"\n{'':<10} {name}{_sets_line(figures)}"
        if result["unreadable"]:
            line += f"  ({len(result['unreadable'])} unreadable skipped)"
        lines.append(line)
    first = next(iter(report["splits"]))
    per_class = report["splits"][first]["per_class"]
    width = max(12, *(len(c) for c in per_class))
    lines.append(f"\nper class ({first}):")
    lines.append(f"  {'class':<{width}} precision  recall  f1      support")
    for name, row in per_class.items():
        lines.append(f"  {name:<{width}} {row['precision']:.4f}     {row['recall']:.4f}  {row['f1']:.4f}  {row['support']}")
    return "\n".join(lines)


def _sets_line(figures: dict[str, Any]) -> str:
    """The conformal sets' figures on a split, in one line (:func:`brain_cnn.evaluation.coverage.set_figures`)."""
    line = (f"{figures['coverage_level']:.0%} sets: coverage {figures['coverage']:.4f}"
            + (" (short of the level by more than chance)" if figures.get("coverage_short") else "")
            + f", mean size {figures['mean_set_size']:.2f}, {figures['empty_sets']} empty")
    screening = figures.get("screening") or {}
    if "threshold" in screening:
        line += (f"; screening at P(tumour) >= {screening['threshold']:.4f}: {screening['missed']} of "
                 f"{screening['tumours']} tumours missed (bound {screening['missed_rate_bound']:.0%}), "
                 f"{screening['normals_flagged']} of {screening['normals']} normals flagged")
    return line


ERRORS_PRINTED = 5


def _line(name: str, figures: dict[str, Any]) -> str:
    def pct(v):
        return "   -  " if v is None else f"{v:6.1%}"

    auc = "  -  " if figures["roc_auc"] is None else f"{figures['roc_auc']:.3f}"
    return (f"  {name:<22} tumour {figures['tumour']:>5}  normal {figures['no_tumour']:>5}  "
            f"sens {pct(figures['sensitivity'])}  spec {pct(figures['specificity'])}  AUC {auc}")


def screening_table(report: dict[str, Any]) -> str:
    """A short plain-text summary for the terminal."""
    lines = [f"screening: model {report['model']} on {report['data']} ({report['count']} images; "
             f"{report['seen_in_training']} are copies, in some orientation, of its training or validation images)",
             _line("all", report["overall"])]
    lines += [_line(f"sequence {s}", f) for s, f in report.get("by_sequence", {}).items()]
    clean = report.get("without_training_duplicates")
    if clean:
        lines.append(_line("unseen by training", clean["overall"]))
    lines.append("  called tumour, per class folder:")
    lines += [f"    {name:<26} {row['kind']:<9} n={row['count']:<4} {row['called_tumour']:6.1%}"
              for name, row in report["by_class"].items()]
    errors = report.get("errors", {})
    for kind, count, what in (("missed_tumours", "missed_count", "tumours called no tumour"),
                              ("flagged_normals", "flagged_count", "normal scans called tumour")):
        if errors.get(count):
            worst = ", ".join(f"{e['file']} ({e['tumour_score']:.2f})" for e in errors[kind][:ERRORS_PRINTED])
            lines.append(f"  {errors[count]} {what} (unseen by training); most confident: {worst}")
    return "\n".join(lines)


def _rows(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    shown = shown_figures(report)
    groups = [("all", shown["overall"])] + list(shown.get("by_sequence", {}).items())
    return [{"data set": name, "sequence": sequence, "tumour": g["tumour"], "no tumour": g["no_tumour"],
             "sensitivity": g["sensitivity"], "specificity": g["specificity"], "ROC AUC": g["roc_auc"],
             "goal met": g["meets_goal"], "left out (in training)": report.get("seen_in_training", 0)}
            for sequence, g in groups]


def screening_rows(external: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows, one per data set and MRI sequence, of a model's screening reports."""
    return [row for name, report in external.items() for row in _rows(name, report)]


def _coverage_row(name: str, group: str, figures: dict[str, Any]) -> dict[str, Any]:
    screening = figures.get("screening", {})
    return {"data": name, "group": group, "images": figures["images"],
            f"{figures['coverage_level']:.0%} set covers the class": figures.get("coverage"),
            "covers tumour / no tumour": figures.get("presence_coverage"),
            "mean set size": figures.get("mean_set_size"), "empty sets": figures.get("empty_sets"),
            f"tumours missed (bound {screening.get('missed_rate_bound', 0):.0%})": screening.get("missed_rate"),
            "normals flagged": screening.get("normals_flagged_rate"),
            "short of the level": bool(figures.get("coverage_short") or figures.get("presence_coverage_short"))}


def coverage_rows(test: dict[str, Any] | None, external: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows of how the conformal sets and the screening threshold did (:mod:`brain_cnn.evaluation.coverage`):
    the test split's figures (``test``: a split's ``conformal`` entry) overall and per class, then each screened
    data set's overall and per sequence."""
    rows = []
    if test:
        rows.append(_coverage_row("test split", "all", test))
        rows += [{"data": "test split", "group": name, "images": c["images"],
                  f"{test['coverage_level']:.0%} set covers the class": c["coverage"], "mean set size": c["mean_set_size"]}
                 for name, c in test.get("per_class", {}).items()]
    for name, report in external.items():
        conformal = report.get("conformal")
        if not conformal:
            continue
        rows.append(_coverage_row(name, "all", conformal["overall"]))
        rows += [_coverage_row(name, sequence, figures) for sequence, figures in conformal.get("by_sequence", {}).items()]
    return rows


def loso_table(results: dict[str, Any]) -> str:
    """The held-out-source matrix as plain text."""
    def pct(v):
        return "   -  " if v is None else f"{v:6.1%}"

    lines = [f"{'held out':<28} {'tumour':>6} {'normal':>6}  {'sens':>6}  {'spec':>6}  AUC    goal"]
    for source, fold in results["folds"].items():
        rows = [(source, fold["overall"])] + [(f"  {source} {s}", f) for s, f in fold["by_sequence"].items()]
        for name, f in rows:
            auc = "  -  " if f["roc_auc"] is None else f"{f['roc_auc']:.3f}"
            goal = {True: "met", False: "NOT met", None: "-"}[f["meets_goal"]]
            lines.append(f"{name:<28} {f['tumour']:>6} {f['no_tumour']:>6}  {pct(f['sensitivity'])}  "
                         f"{pct(f['specificity'])}  {auc}  {goal}")
    return "\n".join(lines)


HELD_OUT = (("yes_no_screening", "brain-tumor-yes-no"), ("c44_test_screening", "brain-tumor-44c test split"),
            ("lgg_test_screening", "brain-tumor-lgg test patients"))


def tumour_map_rows(measured: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A tumour-map network's held-out figures (``tumour_maps.json``) as table rows: the maps against expert
    masks, and tumour vs no tumour per held-out source and sequence."""
    maps = [{"masks": name, "images": m["images"], "mean Dice": m["mean_dice"], "median Dice": m["median_dice"],
             "peak inside the tumour": m["peak_inside"]}
            for key, name in (("official_test_masks", "brain-tumor-mri official Testing"),
                              ("lgg_test_masks", "brain-tumor-lgg test patients"))
            if (m := measured.get(key)) and m.get("images")]
    screening = []
    for key, name in HELD_OUT:
        report = measured.get(key)
        if not report:
            continue
        groups = [("all", report["overall"])] + list(report.get("by_sequence", {}).items())
        screening += [{"data set": name, "sequence": sequence, "tumour": g["tumour"], "no tumour": g["no_tumour"],
                       "sensitivity": g["sensitivity"], "specificity": g["specificity"], "ROC AUC": g["roc_auc"],
                       "left out (in training)": report.get("left_out_as_copies", 0)} for sequence, g in groups]
    return maps, screening

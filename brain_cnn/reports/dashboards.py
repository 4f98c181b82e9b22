"""Plotly figures of an evaluation report and a training history.

Built from ``evaluation.json`` and ``history.json`` only, so any model folder,
ours or a user's, gets the same dashboards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

__all__ = [
    "probability_bars",
    "confusion_matrix_figure",
    "roc_figure",
    "precision_recall_figure",
    "reliability_figure",
    "history_figure",
    "per_class_rows",
    "pointing_by_class",
    "slice_profile_figure",
    "share",
]

# Plotly's first two default colours: a run's train and validation curves, the same in both runs of a fine-tune.
_COLOURS = ("#636efa", "#ef553b")
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=40, b=10), height=420)


def probability_bars(probabilities: dict[str, float], called: str | None = None) -> go.Figure:
    """Horizontal bars of every class probability, the called class highlighted (``called``: the call under the
    model card's decision rule; by default the top class)."""
    names = list(probabilities)
    values = [probabilities[n] for n in names]
    top = names.index(called) if called is not None else int(np.argmax(values))
    colours = ["#2a6f97" if i == top else "#a9bcd0" for i in range(len(names))]
    figure = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=colours,
                              text=[f"{v:.1%}" for v in values], textposition="auto",
                              hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    figure.update_layout(**{**_LAYOUT, "height": 60 + 28 * len(names)}, title="Class probabilities",
                         xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed"))
    return figure


def confusion_matrix_figure(split: dict[str, Any], classes: list[str], normalise: bool = False) -> go.Figure:
    """Confusion matrix heat map (rows: true class); hover shows the count and the row share."""
    counts = np.asarray(split["confusion_matrix"], dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    z = share if normalise else counts
    text = [[f"{share[i, j]:.1%}" if normalise else f"{int(counts[i, j])}" for j in range(len(classes))]
            for i in range(len(classes))]
    custom = np.dstack([counts, share])
    figure = go.Figure(go.Heatmap(
        z=z, x=classes, y=classes, colorscale="Blues", text=text, texttemplate="%{text}" if len(classes) <= 15 else None,
        customdata=custom,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata[0]:.0f} images (%{customdata[1]:.1%} of row)<extra></extra>",
    ))
    figure.update_layout(**{**_LAYOUT, "height": max(420, 22 * len(classes) + 120)},
                         title="Confusion matrix" + (" (row-normalised)" if normalise else " (counts)"),
                         xaxis_title="predicted", yaxis_title="true", yaxis=dict(autorange="reversed"))
    return figure


def roc_figure(split: dict[str, Any]) -> go.Figure:
    """One-vs-rest ROC curves with their AUC in the legend."""
    figure = go.Figure()
    for name, curve in split["roc"].items():
        figure.add_trace(go.Scatter(x=curve["fpr"], y=curve["tpr"], mode="lines",
                                    name=f"{name} (AUC {curve['auc']:.3f})"))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                                name="chance", hoverinfo="skip"))
    figure.update_layout(**_LAYOUT, title="ROC curves (one vs rest)", xaxis_title="false positive rate",
                         yaxis_title="true positive rate")
    return figure


def precision_recall_figure(split: dict[str, Any]) -> go.Figure:
    figure = go.Figure()
    for name, curve in split["precision_recall"].items():
        figure.add_trace(go.Scatter(x=curve["recall"], y=curve["precision"], mode="lines",
                                    name=f"{name} (AP {curve['average_precision']:.3f})"))
    figure.update_layout(**_LAYOUT, title="Precision-recall curves", xaxis_title="recall", yaxis_title="precision")
    return figure


def reliability_figure(split: dict[str, Any]) -> go.Figure:
    """Reliability diagram: accuracy against confidence per bin, with bin counts on hover."""
    bins = [b for b in split["calibration"]["bins"] if b["count"]]
    centres = [(b["lower"] + b["upper"]) / 2 for b in bins]
    figure = go.Figure()
    figure.add_trace(go.Bar(x=centres, y=[b["accuracy"] for b in bins], width=[b["upper"] - b["lower"] for b in bins],
                            name="accuracy", marker_color="#2a6f97", customdata=[b["count"] for b in bins],
                            hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.3f}<br>%{customdata} images<extra></extra>"))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                                name="perfect calibration"))
    figure.update_layout(**_LAYOUT, title=f"Reliability (ECE {split['calibration']['ece']:.4f})",
                         xaxis=dict(title="confidence", range=[0, 1]), yaxis=dict(title="accuracy", range=[0, 1]))
    return figure


def history_figure(history: dict[str, Any], metric: str = "accuracy") -> go.Figure:
    """Training and validation ``metric`` per epoch; the best epoch is marked.

    A fine-tuned model's history names the run it started from
    (``initialised_from``): that run is drawn faintly, and this one's epochs
    continue from the starting run's kept epoch.
    """
    figure = go.Figure()
    start = history.get("initialised_from") or {}
    offset = (start.get("best_epoch") or 0) if start.get("epochs") else 0
    runs = [(start, f" (start: {start.get('name', 'earlier run')})", 0, 0.35)] if offset else []
    runs.append((history, "", offset, 1.0))
    for run, suffix, shift, opacity in runs:
        epochs = [e["epoch"] + shift for e in run["epochs"]]
        for key, label, colour in ((metric, "train", _COLOURS[0]), (f"val_{metric}", "validation", _COLOURS[1])):
            figure.add_trace(go.Scatter(x=epochs, y=[e.get(key) for e in run["epochs"]], mode="lines+markers",
                                        name=label + suffix, opacity=opacity, line=dict(color=colour)))
    if offset:
        figure.add_vline(x=offset, line_dash="dash", line_color="grey", annotation_text="continued from here",
                         annotation_position="bottom right")
    if history.get("best_epoch"):
        figure.add_vline(x=history["best_epoch"] + offset, line_dash="dot", line_color="grey",
                         annotation_text="kept", annotation_position="top")
    figure.update_layout(**_LAYOUT, title=metric.capitalize() + " per epoch", xaxis_title="epoch", yaxis_title=metric)
    return figure


def per_class_rows(split: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for a per-class precision/recall/F1/support table, with the averages last."""
    rows = [{"class": name, **values} for name, values in split["per_class"].items()]
    for average in ("macro", "weighted"):
        rows.append({"class": f"{average} average", **split[average], "support": split["count"]})
    return rows


def pointing_by_class(by_class: dict[str, dict[str, dict[str, Any]]], key: str = "pointing_game") -> list[dict[str, Any]]:
    """Rows for a table of the pointing game (or another ``key`` of explain-eval): one per tumour type, a column per method."""
    return [{"tumour type": label, "images": next(iter(rows.values()))["images"],
             **{method: row.get(key) for method, row in rows.items()}}
            for label, rows in by_class.items()]


def removal_rows(removal: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for a table of explain-eval's removal test: per tumour type and overall, how often the call survives."""
    rows = {**removal.get("by_class", {}), "all": removal.get("all", {})}
    return [{"tumour type": label, "images": row.get("images"), "same call, intact": row.get("called_intact"),
             "tumour painted out": row.get("called_tumour_hidden"),
             "same box painted out elsewhere": row.get("called_elsewhere_hidden")}
            for label, row in rows.items()]


def slice_profile_figure(case, selected: int | None = None) -> go.Figure:
    """Class probabilities along the slices of a volume; refused slices are gaps.

    A tumour-map network's case also has the area of its outline along the
    slices (right axis; mm² where the scan gives its pixel spacing).
    """
    names = list(case.slices[0].probabilities)
    x = list(range(1, len(case.slices) + 1))
    figure = go.Figure()
    for name in names:
        y = [None if s.refused else s.probabilities[name] for s in case.slices]
        figure.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, connectgaps=False,
                                    customdata=[s.label_text for s in case.slices],
                                    hovertemplate=f"{name}: %{{y:.1%}}<br>slice %{{x}} (%{{customdata}})<extra></extra>"))
    refused = [i + 1 for i, s in enumerate(case.slices) if s.refused]
    if refused:
        figure.add_trace(go.Scatter(x=refused, y=[0] * len(refused), mode="markers", name="cannot assess",
                                    marker=dict(symbol="x", color="grey")))
    if selected is not None:
        figure.add_vline(x=selected + 1, line_dash="dot", line_color="grey")
    figure.update_layout(**{**_LAYOUT, "height": 300}, title="Class probability per slice",
                         xaxis_title="slice", yaxis=dict(title="probability", range=[0, 1], tickformat=".0%"))
    if case.has_map:
        areas = [s.tumour_area for s in case.slices]
        unit = "mm²" if any(a is not None and a.mm2 is not None for a in areas) else "pixels"
        y = [None if a is None else (a.mm2 if unit == "mm²" else a.pixels) for a in areas]
        figure.add_trace(go.Scatter(x=x, y=y, mode="lines", name="tumour area", yaxis="y2", connectgaps=False,
                                    line=dict(color="black", dash="dash"),
                                    hovertemplate=f"tumour area: %{{y:,.0f}} {unit}<br>slice %{{x}}<extra></extra>"))
        figure.update_layout(title="Class probability and tumour area per slice",
                             yaxis2=dict(title=f"tumour area ({unit})", overlaying="y", side="right", rangemode="tozero",
                                         showgrid=False))
    return figure


# Below this many images a percentage hides how little it rests on: "2 of 2" says it.
FEW = 20


def share(right: int, wrong: int) -> str:
    """A rate for a metric tile: a percentage, or "k of n" when it rests on fewer than :data:`FEW` images."""
    total = right + wrong
    if not total:
        return "n/a"
    return f"{right} of {total}" if total < FEW else f"{right / total:.2%}"

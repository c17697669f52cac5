"""Plots of what a detector found: metrics, scores, threshold, events and root causes; the causal graph.

matplotlib is imported on first use (with no display it draws with its Agg backend, so the functions
work in scripts and CI as well as in notebooks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.errors import ParameterError


def literal(text: Any) -> str:
    """``text`` as matplotlib should draw it: literally (a ``$`` in a metric name such as
    ``smb{share="C$"}`` would otherwise start math text, and two of them fail to render)."""
    return str(text).replace("$", r"\$")


def _pyplot() -> Any:
    import matplotlib.pyplot as plt  # picks Agg by itself when there is no display

    return plt


def _shade(ax: Any, runs: list[tuple[Any, Any]], color: str, alpha: float, label: str, half: Any = 0) -> None:
    """Shade each run from half a step before its first row to half a step after its last, so a
    one-row run is as wide as a row, never an invisible line."""
    for i, (start, end) in enumerate(runs):
        ax.axvspan(start - half, end + half, color=color, alpha=alpha, lw=0, label=label if i == 0 else None)


def _half_step(index: pd.Index) -> Any:
    """Half the typical spacing of ``index`` (a Timedelta for times), 0 for a single row."""
    if len(index) < 2:
        return pd.Timedelta(0) if isinstance(index, pd.DatetimeIndex) else 0
    steps = np.diff(index.to_numpy())
    return (
        pd.Timedelta(np.median(steps)) / 2
        if isinstance(index, pd.DatetimeIndex)
        else float(np.median(steps)) / 2
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _label_runs(labels: pd.Series) -> list[tuple[Any, Any]]:
    from tsdiff.results import run_slices

    values = labels.to_numpy()
    return [(labels.index[s.start], labels.index[s.stop - 1]) for s in run_slices(values)]


def plot_detection(
    data: pd.DataFrame,
    result: Any,
    metrics: int | list[str] = 4,
    true_labels: pd.Series | None = None,
    path: str | Path | None = None,
    title: str | None = None,
    max_events: int = 5,
) -> Any:
    """One figure: the metrics most implicated (top), the score with its threshold (bottom).

    Detected events are shaded red in every panel; ``true_labels`` (0/1 per row), when given, are
    shaded green under them. The ``max_events`` highest events are annotated with their root causes
    (or top metrics when the detector names no causes).

    Parameters
    ----------
    data
        The scored frame (same index as ``result.scores``).
    result
        The :class:`~tsdiff.results.DetectionResult` of ``data``.
    metrics
        Metric names to draw, or how many of those most often named by events (by total feature
        score when there are no events).
    path
        Write the figure here (PNG, SVG, PDF by suffix) as well as returning it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    if not data.index.equals(result.scores.index):
        raise ParameterError("data and result must share one index (pass the frame that was scored)")
    names = _pick_metrics(data, result, metrics)
    fig, axes = plt.subplots(
        len(names) + 1,
        1,
        sharex=True,
        figsize=(12, 1.6 * len(names) + 2.6),
        gridspec_kw={"height_ratios": [1] * len(names) + [1.6]},
        squeeze=False,
    )
    axes = axes[:, 0]
    half = _half_step(data.index)
    detected = _label_runs(result.labels)
    truth = (
        _label_runs(pd.Series(np.asarray(true_labels), index=data.index)) if true_labels is not None else []
    )
    for ax, name in zip(axes[:-1], names, strict=True):
        ax.plot(data.index, data[name].to_numpy(), lw=0.7, color="tab:blue")
        ax.set_ylabel(literal(name), rotation=0, ha="right", va="center", fontsize=8)
        _shade(ax, truth, "tab:green", 0.2, "labelled", half)
        _shade(ax, detected, "tab:red", 0.25, "detected", half)
    ax = axes[-1]
    scores = result.scores
    ax.plot(scores.index, scores.to_numpy(), lw=0.8, color="black", label="score")
    for name, series in result.components.items():
        ax.plot(series.index, series.to_numpy(), lw=0.6, alpha=0.6, label=literal(f"{name} (calibrated)"))
    ax.axhline(result.threshold, color="tab:red", ls="--", lw=0.8, label="threshold")
    flagged = result.labels.to_numpy() == 1
    # every flagged row as a dot: a single flagged row stays visible however long the series
    ax.plot(
        scores.index[flagged], scores.to_numpy()[flagged], "o", ms=2.5, color="tab:red", label="flagged row"
    )
    _shade(ax, truth, "tab:green", 0.2, "labelled anomaly", half)
    _shade(ax, detected, "tab:red", 0.25, "detected event", half)
    ax.set_ylabel("score", rotation=0, ha="right", va="center", fontsize=8)
    ax.set_xlabel(literal(data.index.name or ("time" if isinstance(data.index, pd.DatetimeIndex) else "row")))
    events = result.events
    if len(events):
        top = events.sort_values("peak_score", ascending=False).head(max_events)
        for _, ev in top.iterrows():
            names_ = ev["root_causes"] if len(ev["root_causes"]) else ev["top_metrics"]
            ax.annotate(
                literal(", ".join(map(str, names_[:3]))),
                xy=(ev["peak"], ev["peak_score"]),
                xytext=(0, 6),
                textcoords="offset points",
                fontsize=7,
                ha="center",
                color="tab:red",
                annotation_clip=False,
            )
        peak = float(np.nanmax(top["peak_score"].to_numpy(dtype=float)))
        low, high = ax.get_ylim()
        ax.set_ylim(low, max(high, peak + 0.15 * (peak - low)))  # room above the highest label
    # the legend below the panels, where it covers neither the scores nor their labels
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), fontsize=7, ncol=6, frameon=False)
    summary = (
        f"{_plural(len(events), 'event')}, {_plural(int(flagged.sum()), 'flagged row')}; "
        f"threshold {result.threshold:.3g} ({result.threshold_method})"
    )
    axes[0].set_title(literal(title or summary))
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _pick_metrics(data: pd.DataFrame, result: Any, metrics: int | list[str]) -> list[str]:
    if not isinstance(metrics, int):
        missing = [m for m in metrics if m not in data.columns]
        if missing:
            raise ParameterError(f"metrics not in the data: {missing}")
        return list(metrics)
    if metrics < 1:
        raise ParameterError("metrics must be a positive count or a list of names")
    counts: dict[str, float] = {}
    for ev in result.events.itertuples(index=False):
        for rank, name in enumerate([*ev.root_causes, *ev.top_metrics]):
            counts[name] = counts.get(name, 0.0) + float(ev.peak_score) / (1 + rank)
    ranked = sorted(counts, key=counts.get, reverse=True)
    rest = result.feature_scores.sum().sort_values(ascending=False).index
    ranked += [m for m in rest if m not in ranked]
    return [m for m in ranked if m in data.columns][:metrics]


def plot_graph(graph: Any, path: str | Path | None = None, min_strength: float = 0.0) -> Any:
    """Draw a :class:`~tsdiff.causal.graph.CausalGraph` (or a fitted detector's ``graph_``)."""
    plt = _pyplot()
    graph = getattr(graph, "graph_", graph)
    fig, ax = plt.subplots(figsize=(7, 7))
    graph.plot(ax=ax, min_strength=min_strength)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig

"""The one return type of ``detect``: scores, labels, threshold, per-metric scores and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

EVENT_COLUMNS = ["start", "end", "peak", "peak_score", "n_rows", "top_metrics", "root_causes"]


@dataclass
class DetectionResult:
    """What a detector found in one input.

    Attributes
    ----------
    scores
        One anomaly score per input row (higher is more anomalous), indexed like the input.
    labels
        0/1 per row: 1 where the score is above ``threshold``.
    threshold
        The score above which a row is labelled anomalous.
    threshold_method
        How ``threshold`` was set (e.g. ``"pot"``, ``"quantile"``, ``"quantile (pot fallback)"``);
        always fitted on training data, never on labels.
    feature_scores
        Per-row, per-metric contribution (same index as ``scores``, one column per metric).
    events
        One row per run of consecutive anomalous rows: ``start`` and ``end`` (index labels, both
        inclusive), ``peak`` (label of the highest score), ``peak_score``, ``n_rows``,
        ``top_metrics`` (metric names ranked by mean feature score over the event) and
        ``root_causes`` (metric names whose own mechanism broke, ranked; empty for detectors that
        do not model causes).
    components
        Component scores for detectors built from several models (name -> per-row Series).
    """

    scores: pd.Series
    labels: pd.Series
    threshold: float
    threshold_method: str
    feature_scores: pd.DataFrame
    events: pd.DataFrame
    components: dict[str, pd.Series] = field(default_factory=dict)

    def to_frame(self, feature_scores: bool = True) -> pd.DataFrame:
        """One row per input row: ``score``, ``label``, component scores, and ``score:<metric>`` columns."""
        parts: list[pd.Series | pd.DataFrame] = [self.scores.rename("score"), self.labels.rename("label")]
        parts += [s.rename(f"score_{name}") for name, s in self.components.items()]
        if feature_scores:
            parts.append(self.feature_scores.rename(columns=lambda c: f"score:{c}"))
        return pd.concat(parts, axis=1)

    def event_metrics(self, column: str = "root_causes") -> pd.Series:
        """Per row, the ``;``-joined metric names (``column``: ``"root_causes"`` or ``"top_metrics"``)
        of the event the row belongs to; ``""`` outside events."""
        out = np.full(len(self.labels), "", dtype=object)
        runs = run_slices(self.labels.to_numpy())
        for names, rows in zip(self.events[column], runs, strict=True):
            out[rows] = ";".join(map(str, names))
        return pd.Series(out, index=self.labels.index, name=column)

    def __repr__(self) -> str:
        n = len(self.scores)
        k = int(self.labels.sum())
        return (
            f"DetectionResult({n} rows, {k} anomalous ({k / max(n, 1):.2%}), {len(self.events)} events, "
            f"threshold={self.threshold:.4g} [{self.threshold_method}])"
        )


def find_events(
    scores: pd.Series,
    labels: pd.Series,
    feature_scores: pd.DataFrame,
    top_k: int = 3,
    root_causes: list[list[Any]] | None = None,
) -> pd.DataFrame:
    """Group consecutive anomalous rows into events and rank the metrics behind each.

    Parameters
    ----------
    scores, labels, feature_scores
        Per-row outputs of a detector, sharing one index.
    top_k
        How many metrics to list in ``top_metrics``.
    root_causes
        Optional ranked root-cause metric names, one list per event (from a causal model).
    """
    index = scores.index
    s = scores.to_numpy()
    fs = feature_scores.to_numpy()
    names = list(feature_scores.columns)
    rows = []
    for i, run in enumerate(run_slices(labels.to_numpy())):
        a, b = run.start, run.stop
        peak = a + int(np.nanargmax(s[a:b])) if np.isfinite(s[a:b]).any() else a
        if fs.size:
            mean = np.nanmean(np.where(np.isfinite(fs[a:b]), fs[a:b], np.nan), axis=0)
            mean = np.where(np.isnan(mean), -np.inf, mean)
            order = np.argsort(-mean, kind="stable")[:top_k]
            top = [names[j] for j in order]
        else:
            top = []
        rows.append(
            {
                "start": index[a],
                "end": index[b - 1],
                "peak": index[peak],
                "peak_score": float(s[peak]),
                "n_rows": int(b - a),
                "top_metrics": top,
                "root_causes": list(root_causes[i]) if root_causes is not None else [],
            }
        )
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def run_slices(flags: np.ndarray) -> list[slice]:
    """Half-open row ranges of the runs of consecutive non-zero ``flags``."""
    edges = np.diff(np.concatenate([[0], (np.asarray(flags) != 0).astype(np.int8), [0]]))
    return [
        slice(int(a), int(b))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
    ]

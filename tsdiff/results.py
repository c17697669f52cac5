"""The one return type of ``detect``: scores, labels, threshold, per-metric scores and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

EVENT_COLUMNS = ["start", "end", "peak", "peak_score", "n_rows", "n_flagged", "top_metrics", "root_causes"]
#: flagged runs closer than this many rows form one event, and events shorter than
#: ``EVENT_MIN_ROWS`` rows are dropped. Chosen on the development split (benchmarks/RESULTS.md,
#: "Event merging"): the best mean event F1 over SMD, SKAB, synthetic and MSL among gaps up to
#: 120 rows and minimum lengths 1-10
EVENT_MERGE_GAP = 120
EVENT_MIN_ROWS = 3


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
        One row per event: a run of anomalous rows, merged with the runs that follow it within
        ``merge_gap`` rows, kept when it spans at least ``min_rows`` rows (see
        :meth:`~tsdiff.base.BaseDetector.detect`). Columns: ``start`` and ``end`` (index labels,
        both inclusive), ``peak`` (label of the highest score), ``peak_score``, ``n_rows`` (rows
        spanned), ``n_flagged`` (anomalous rows among them), ``top_metrics`` (metric names ranked
        by mean feature score over the event) and ``root_causes`` (likely origins first; empty for
        detectors that do not model causes).
    components
        Component scores for detectors built from several models (name -> per-row Series).
    explanations
        One :class:`~tsdiff.causal.explain.Explanation` per event (a ranked table of the metrics
        with their evidence, onsets and causal roles, and the event's causal subgraph), from
        detectors with a causal model; None otherwise. See :meth:`explain`.
    """

    scores: pd.Series
    labels: pd.Series
    threshold: float
    threshold_method: str
    feature_scores: pd.DataFrame
    events: pd.DataFrame
    components: dict[str, pd.Series] = field(default_factory=dict)
    explanations: list[Any] | None = None

    def explain(self, event: int) -> Any:
        """The :class:`~tsdiff.causal.explain.Explanation` of event number ``event`` (0-based, the
        row of :attr:`events`; negative numbers count from the end)."""
        from tsdiff.errors import ParameterError

        if self.explanations is None:
            raise ParameterError("this detector has no causal model, so its events carry no explanation")
        n = len(self.explanations)
        if isinstance(event, bool) or not isinstance(event, (int, np.integer)) or not -n <= event < n:
            raise ParameterError(f"event must be an integer in [0, {n}), got {event!r}")
        return self.explanations[int(event)]

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
        position = pd.Series(np.arange(len(self.labels)), index=self.labels.index)
        for names, start, end in zip(
            self.events[column], self.events["start"], self.events["end"], strict=True
        ):
            rows = position.loc[start:end].to_numpy()
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
    merge_gap: int = EVENT_MERGE_GAP,
    min_rows: int = EVENT_MIN_ROWS,
) -> pd.DataFrame:
    """Group anomalous rows into events and rank the metrics behind each.

    Parameters
    ----------
    scores, labels, feature_scores
        Per-row outputs of a detector, sharing one index.
    top_k
        How many metrics to list in ``top_metrics``.
    root_causes
        Optional ranked root-cause metric names, one list per event (from a causal model).
    merge_gap, min_rows
        See :func:`event_slices`.
    """
    index = scores.index
    s = scores.to_numpy()
    fs = feature_scores.to_numpy()
    names = list(feature_scores.columns)
    rows = []
    flags = labels.to_numpy()
    for i, run in enumerate(event_slices(flags, merge_gap, min_rows)):
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
                "n_flagged": int(np.count_nonzero(flags[a:b])),
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


def event_slices(
    flags: np.ndarray, merge_gap: int = EVENT_MERGE_GAP, min_rows: int = EVENT_MIN_ROWS
) -> list[slice]:
    """Half-open row ranges of events: runs of non-zero ``flags`` merged with the next run when at
    most ``merge_gap`` rows lie between them, then kept when they span at least ``min_rows`` rows."""
    from tsdiff.errors import ParameterError

    for name, value, least in (("merge_gap", merge_gap, 0), ("min_rows", min_rows, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ParameterError(f"{name} must be an integer >= {least}, got {value!r}")
    merged: list[list[int]] = []
    for run in run_slices(flags):
        if merged and run.start - merged[-1][1] <= merge_gap:
            merged[-1][1] = run.stop
        else:
            merged.append([run.start, run.stop])
    return [slice(a, b) for a, b in merged if b - a >= min_rows]

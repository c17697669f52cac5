"""The one return type of ``detect``: scores, labels, threshold, per-metric scores and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.segmentation import EVENT_MERGE_GAP, EVENT_MIN_ROWS, SegmentRules, segment_rows

EVENT_COLUMNS = [
    "start",
    "end",
    "peak",
    "peak_score",
    "n_rows",
    "n_flagged",
    "top_metrics",
    "root_causes",
    "affected",
]
__all__ = [
    "EVENT_COLUMNS",
    "EVENT_MERGE_GAP",
    "EVENT_MIN_ROWS",
    "DetectionResult",
    "event_slices",
    "find_events",
]


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
        One row per event: flagged rows cut into stretches with one explanation each
        (:mod:`tsdiff.segmentation`: runs merged across short gaps, and across gaps up to
        ``merge_gap`` rows only when they blame the same metrics), kept when they span at least
        ``min_rows`` rows (see
        :meth:`~tsdiff.base.BaseDetector.detect`). Columns: ``start`` and ``end`` (index labels,
        both inclusive), ``peak`` (label of the highest score), ``peak_score``, ``n_rows`` (rows
        spanned), ``n_flagged`` (anomalous rows among them), ``top_metrics`` (the top metrics by
        mean feature score over the event), ``root_causes`` (every metric: the involved ones
        first, likely origins first, then the others; empty for detectors that do not model
        causes) and ``affected`` (every metric, by its largest deviation for a causal model, by
        mean feature score otherwise).
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

    @property
    def flagged_share(self) -> float:
        """Share of rows labelled anomalous (far above the model's ``risk``: drift; see
        :class:`~tsdiff.errors.DriftWarning`)."""
        return float(self.labels.mean()) if len(self.labels) else 0.0

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
    spans: list[slice] | None = None,
    explanations: list[Any] | None = None,
    rules: SegmentRules | None = None,
) -> pd.DataFrame:
    """The events table of a batch (see :attr:`DetectionResult.events`).

    Parameters
    ----------
    scores, labels, feature_scores
        Per-row outputs of a detector, sharing one index.
    top_k
        How many metrics to list in ``top_metrics``.
    spans
        The events' half-open row ranges; by default the flagged rows cut by ``rules`` with the
        feature scores as each row's blame (:func:`~tsdiff.segmentation.segment_rows`).
    explanations
        One :class:`~tsdiff.causal.explain.Explanation` per span (a causal model's): they give
        ``root_causes`` and ``affected``.
    """
    from tsdiff.incidents import rank_by_mean

    index = scores.index
    s = scores.to_numpy()
    fs = feature_scores.to_numpy()
    names = list(feature_scores.columns)
    flags = labels.to_numpy()
    if spans is None:
        spans = segment_rows(flags, fs if fs.size else None, rules)
    rows = []
    for i, run in enumerate(spans):
        a, b = run.start, run.stop
        peak = a + int(np.nanargmax(s[a:b])) if np.isfinite(s[a:b]).any() else a
        ranked = rank_by_mean(fs[a:b], names) if fs.size else []
        explanation = explanations[i] if explanations is not None else None
        rows.append(
            {
                "start": index[a],
                "end": index[b - 1],
                "peak": index[peak],
                "peak_score": float(s[peak]),
                "n_rows": int(b - a),
                "n_flagged": int(np.count_nonzero(flags[a:b])),
                "top_metrics": ranked[:top_k],
                "root_causes": [] if explanation is None else list(explanation.root_causes),
                "affected": ranked if explanation is None else list(explanation.affected),
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
    """Half-open row ranges of events by time alone: runs of non-zero ``flags`` merged with the
    next run when at most ``merge_gap`` rows lie between them, then kept when they span at least
    ``min_rows`` rows (:func:`~tsdiff.segmentation.segment_rows` without blame)."""
    return segment_rows(flags, None, SegmentRules(merge_gap=merge_gap, min_rows=min_rows))

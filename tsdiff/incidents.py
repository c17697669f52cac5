"""Incidents, not rows: an alerting layer on top of a stream's final rows.

:class:`IncidentTracker` turns final rows (time, score, label, and the row's per-metric scores and
evidence) into incidents with the same rule that cuts a batch into events
(:mod:`tsdiff.segmentation`), so a live stream and :meth:`~tsdiff.base.BaseDetector.detect` over
the same rows agree on every event's span, and for detectors with a causal model on its
explanation:

* an incident **opens** once its event spans ``min_rows`` rows;
* it **ends** when the event does: after ``merge_gap`` quiet rows (the cooldown), or when a run of
  flags after more than ``bridge`` quiet rows blames other metrics (that run starts the next
  incident); its ``end`` is its last flagged row, as a batch event's;
* a row without data (a gap) is neither flagged nor quiet: it neither extends nor ends;
* it carries its peak, ``top_metrics``, and complete rankings: ``root_causes`` (involved metrics
  first, likely origins first, then every other metric) and ``affected`` (every metric by
  deviation), explained over its rows as :meth:`~tsdiff.base.BaseDetector.detect` explains an
  event (for incidents longer than ``max_rows`` rows, over their first ``max_rows``).

It also watches for **drift**: when the share of flagged rows over the last ``drift_window``
rows is above ``drift_factor`` times the model's ``risk`` (the share of normal rows it was
fitted to flag), the model is likely stale; :attr:`IncidentTracker.drifting` says so.

:func:`alertmanager_alert` renders an incident as an Alertmanager alert (the JSON that
Alertmanager's ``/api/v2/alerts`` accepts).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.errors import ParameterError
from tsdiff.segmentation import EventSegmenter, Segment, SegmentRules

#: rows of evidence an open incident keeps for its explanation (about a week of one-minute rows)
MAX_INCIDENT_ROWS = 10_000
#: how many times the model's risk the flagged share may reach before drift is reported
DRIFT_FACTOR = 20.0


@dataclass
class Incident:
    """One incident: its rows' span, peak, rankings, and whether it is still open."""

    id: int
    start: Any
    last_flag: Any
    peak_time: Any
    peak_score: float
    flagged_rows: int = 1
    span_rows: int = 1  # rows from its start to its last flag, as a batch event's n_rows
    root_causes: list[Any] = field(default_factory=list)
    affected: list[Any] = field(default_factory=list)
    top_metrics: list[Any] = field(default_factory=list)
    end: Any = None  # its last flagged row, set when it has ended
    resolved_at: Any = None  # the row at which it was known to have ended

    @property
    def open(self) -> bool:
        return self.end is None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in TIMES:
            out[key] = None if out[key] is None else str(out[key])
        out["open"] = self.open
        return out


TIMES = ("start", "last_flag", "peak_time", "end", "resolved_at")


@dataclass
class _Row:
    position: int
    time: Any
    score: float
    flagged: bool
    blame: np.ndarray | None
    evidence: np.ndarray | None


class IncidentTracker:
    """Group a stream's final rows into incidents (see the module docstring).

    Parameters
    ----------
    detector
        The fitted detector whose rows these are: it names the metrics and explains incidents
        (those of a detector with a causal model get ``root_causes``). None: no rankings.
    rules
        The event segmentation (:class:`~tsdiff.segmentation.SegmentRules`; default: the one
        :meth:`~tsdiff.base.BaseDetector.detect` uses). ``min_rows`` and ``merge_gap``, when
        given, replace its fields of the same names.
    risk, drift_window, drift_factor
        The model's target share of flagged normal rows, the rows the drift check looks back
        over, and how many times ``risk`` that share may reach before :attr:`drifting` is set.
    top_k
        Metrics named in ``top_metrics``.
    """

    def __init__(
        self,
        detector: Any = None,
        rules: SegmentRules | None = None,
        *,
        min_rows: int | None = None,
        merge_gap: int | None = None,
        risk: float | None = None,
        drift_window: int = 1440,
        drift_factor: float = DRIFT_FACTOR,
        top_k: int = 3,
        max_rows: int = MAX_INCIDENT_ROWS,
    ) -> None:
        rules = rules or SegmentRules()
        overrides = {k: v for k, v in (("min_rows", min_rows), ("merge_gap", merge_gap)) if v is not None}
        if overrides:
            rules = SegmentRules(**{**rules.__dict__, **overrides})
        if int(drift_window) < 1 or int(max_rows) < 1:
            raise ParameterError("drift_window and max_rows must be >= 1")
        self.detector = detector
        self.rules = rules
        self.segmenter = EventSegmenter(rules)
        fitted_risk = getattr(detector, "risk", 1e-3) if detector is not None else 1e-3
        self.risk = float(fitted_risk if risk is None else risk)
        self.drift_factor = float(drift_factor)
        self.top_k = int(top_k)
        self.max_rows = int(max_rows)
        self.recent: deque[int] = deque(maxlen=int(drift_window))
        self.incidents_opened = 0
        self.current: Incident | None = None  # open, or still gathering its first rows
        self.current_start = -1  # the segmenter's position of its first row
        self.position = 0  # rows seen, gaps included (the segmenter's row counter)
        lookback = 0 if detector is None else int(detector.explain_lookback())
        self.lookback = lookback
        # the rows an explanation may read: the current incident's from `lookback` rows before its
        # start (at most max_rows), or the last rows a new one would reach back to
        self.rows: list[_Row] = []

    # ----------------------------------------------------------------- properties
    @property
    def flagged_share(self) -> float:
        """Share of flagged rows among the last ``drift_window`` rows with data."""
        return sum(self.recent) / len(self.recent) if self.recent else 0.0

    @property
    def drifting(self) -> bool:
        """Far more rows flagged than the model's risk: a stale model, or drift."""
        full = len(self.recent) >= min(self.recent.maxlen or 1, 100)
        return full and self.flagged_share > self.drift_factor * self.risk

    @property
    def open_incident(self) -> Incident | None:
        """The open incident, if any (one still gathering its first rows is not open yet)."""
        cur = self.current
        return cur if cur is not None and cur.span_rows >= self.rules.min_rows and cur.open else None

    # ----------------------------------------------------------------- rows in
    def update(
        self, time: Any, score: float, label: Any, blame: Any = None, evidence: Any = None, stale: Any = None
    ) -> list[tuple[str, Incident]]:
        """Add one final row; returns the changes it made: ``("opened", incident)`` and
        ``("resolved", incident)``. A row whose label is missing (NaN, None: no data) changes
        nothing but the row count. ``blame`` is the row's per-metric scores, ``evidence`` its
        :attr:`~tsdiff.base.ScoreParts.evidence` row. ``stale``: whether the model's own fitted
        threshold flags the row, when the label comes from a threshold that adapts (the drift check
        judges the model, not the alerting; None: ``label``)."""
        position = self.position
        self.position += 1
        if label is None or (isinstance(label, float) and np.isnan(label)):
            self._keep(_Row(position, time, float("nan"), False, None, None))
            return []
        flagged = bool(label)
        self.recent.append(int(flagged if stale is None else bool(stale)))
        self._keep(
            _Row(
                position,
                time,
                float(score),
                flagged,
                None if blame is None else np.asarray(blame, dtype=np.float64),
                None if evidence is None else np.asarray(evidence, dtype=np.float64),
            )
        )
        closed = self.segmenter.update(position, flagged, self.rows[-1].blame)
        changes = [change for seg in closed for change in self._end(seg, time)]
        now = self.segmenter.current
        if now is not None and (self.current is None or self.current_start != now.start):
            self._begin(now)
        if now is not None and self.current is not None and now.flagged != self.current.flagged_rows:
            changes += self._grow(now)
        self._trim()
        return changes

    def close(self, time: Any = None) -> list[tuple[str, Incident]]:
        """The end of the input: the incident in progress ends at its last flagged row."""
        changes = [change for seg in self.segmenter.close() for change in self._end(seg, time)]
        self._trim()
        return changes

    # ----------------------------------------------------------------- the incident in progress
    def _begin(self, segment: Segment) -> None:
        first = next(r for r in self.rows if r.position == segment.start)
        self.current = Incident(
            id=self.incidents_opened + 1,
            start=first.time,
            last_flag=first.time,
            peak_time=first.time,
            peak_score=first.score,
            flagged_rows=0,  # counted by _grow
        )
        self.current_start = segment.start

    def _grow(self, segment: Segment) -> list[tuple[str, Incident]]:
        """The incident gained flagged rows (up to ``segment.last_flag``): span, peak, rankings."""
        cur = self.current
        if cur is None:
            return []
        was_open = cur.span_rows >= self.rules.min_rows
        span = [r for r in self.rows if segment.start <= r.position <= segment.last_flag]
        cur.last_flag = span[-1].time
        cur.span_rows = segment.span()
        cur.flagged_rows = segment.flagged
        peak = max((r for r in span if np.isfinite(r.score)), key=lambda r: r.score, default=span[0])
        cur.peak_time, cur.peak_score = peak.time, peak.score
        changes: list[tuple[str, Incident]] = []
        if cur.span_rows >= self.rules.min_rows:
            if not was_open:
                self.incidents_opened += 1
                cur.id = self.incidents_opened
                changes.append(("opened", cur))
            self._rank(cur, segment)
        return changes

    def _end(self, segment: Segment, time: Any) -> list[tuple[str, Incident]]:
        """The segmenter closed ``segment`` (the incident in progress)."""
        cur = self.current
        if cur is None or not self.segmenter.kept(segment):
            self.current = None
            return []
        changes = self._grow(segment)  # the flags of a streak that rejoined it, if any
        cur.end = cur.last_flag
        cur.resolved_at = time
        self.current = None
        return [*changes, ("resolved", cur)]

    def _rank(self, incident: Incident, segment: Segment) -> None:
        """``top_metrics``, ``root_causes`` and ``affected`` over the incident's rows, as a batch
        event's (see :func:`~tsdiff.results.find_events`)."""
        det = self.detector
        if det is None:
            return
        names = list(det.feature_names_in_)
        block = [r for r in self.rows if segment.start - self.lookback <= r.position <= segment.last_flag]
        a = next(i for i, r in enumerate(block) if r.position >= segment.start)
        blame = np.vstack([_vector(r.blame, len(names)) for r in block[a:]])
        incident.top_metrics = rank_by_mean(blame, names)[: self.top_k]
        if det.names_root_causes():
            width = next((len(r.evidence) for r in block if r.evidence is not None), 0)
            evidence = np.vstack([_vector(r.evidence, width) for r in block])
            index = pd.Index([r.time for r in block])
            explanation = det.explain_events(evidence, [slice(a, len(block))], index)[0]
            incident.root_causes = list(explanation.root_causes)
            incident.affected = list(explanation.affected)
        else:
            incident.affected = rank_by_mean(blame, names)

    def _keep(self, row: _Row) -> None:
        self.rows.append(row)

    def _trim(self) -> None:
        """Keep the rows an explanation may still read: from ``lookback`` rows before the
        incident in progress (at most ``max_rows`` of them, and the latest ones a probed run may
        start the next incident from), or the last ``lookback`` rows when there is none."""
        seg = self.segmenter.current
        first = self.position - self.lookback if seg is None else seg.start - self.lookback
        self.rows = [r for r in self.rows if r.position >= first]
        keep = self.max_rows + self.lookback
        tail = self.rules.probe + self.lookback + 1
        if seg is not None and len(self.rows) > keep + tail:  # a very long incident: its first rows
            self.rows = self.rows[:keep] + self.rows[-tail:]

    # ----------------------------------------------------------------- persistence
    def state(self) -> dict[str, Any]:
        cur = self.current
        return {
            "recent": list(self.recent),
            "opened": self.incidents_opened,
            "position": self.position,
            "segmenter": self.segmenter.state(),
            "current": None
            if cur is None
            else {
                **{k: _label_out(v) if k in TIMES else v for k, v in asdict(cur).items()},
                "segment_start": self.current_start,
            },
            "rows": [
                [r.position, _label_out(r.time), r.score, r.flagged, _list(r.blame), _list(r.evidence)]
                for r in self.rows
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (as written, or after a trip through JSON)."""
        self.recent.clear()
        self.recent.extend(int(x) for x in state["recent"])
        self.incidents_opened = int(state["opened"])
        self.position = int(state["position"])
        self.segmenter.restore(state["segmenter"])
        cur = state["current"]
        if cur is None:
            self.current = None
        else:
            fields = {k: _label_in(v) if k in TIMES else v for k, v in cur.items() if k != "segment_start"}
            self.current = Incident(**fields)
            self.current_start = int(cur["segment_start"])
        self.rows = [
            _Row(
                int(p),
                _label_in(t),
                float("nan") if s is None else float(s),
                bool(f),
                None if b is None else np.asarray(b, dtype=np.float64),
                None if e is None else np.asarray(e, dtype=np.float64),
            )
            for p, t, s, f, b, e in state["rows"]
        ]


def rank_by_mean(values: np.ndarray, names: list[Any]) -> list[Any]:
    """Every name, by decreasing mean of its column (NaN cells ignored; an empty column last)."""
    with np.errstate(all="ignore"):
        finite = np.where(np.isfinite(values), values, np.nan)
        mean = np.nanmean(finite, axis=0) if len(values) else np.full(len(names), np.nan)
    mean = np.where(np.isnan(mean), -np.inf, mean)
    return [names[j] for j in np.argsort(-mean, kind="stable")]


def _vector(values: np.ndarray | None, width: int) -> np.ndarray:
    return np.full(width, np.nan) if values is None else values


def _list(values: np.ndarray | None) -> list[float | None] | None:
    if values is None:
        return None
    return [None if not np.isfinite(v) else float(v) for v in values]


def _label_out(value: Any) -> Any:
    """A row label as JSON: a timestamp tagged (it comes back a Timestamp), anything else as is."""
    if isinstance(value, pd.Timestamp):
        return {"time": value.isoformat()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _label_in(value: Any) -> Any:
    return pd.Timestamp(value["time"]) if isinstance(value, dict) else value


def alertmanager_alert(
    incident: Incident, labels: dict[str, str] | None = None, top_k: int = 3
) -> dict[str, Any]:
    """An incident as an Alertmanager alert object (``startsAt``, and ``endsAt`` once it has
    ended: its last flagged row); annotations name its top ``top_k`` root causes (or, for a
    detector without a causal model, its top metrics)."""

    def rfc3339(value: Any) -> str:
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    named = incident.root_causes or incident.top_metrics
    alert: dict[str, Any] = {
        "labels": {"alertname": "TsdiffAnomaly", "incident": str(incident.id), **(labels or {})},
        "annotations": {
            "summary": f"anomaly from {incident.start}, peak {incident.peak_score:.4g}",
            "root_causes": ", ".join(map(str, named[:top_k])),
            "affected": ", ".join(map(str, incident.affected[:top_k])),
            "peak_score": f"{incident.peak_score:.6g}",
        },
        "startsAt": rfc3339(incident.start),
    }
    if incident.end is not None:
        alert["endsAt"] = rfc3339(incident.end)
    return alert

"""Incidents, not rows: an alerting layer on top of a stream's final row labels.

:class:`IncidentTracker` turns final rows (score, label, root causes) into incidents, the way
:meth:`~tsdiff.base.BaseDetector.detect` groups a batch's flagged rows into events, so a live
stream and a batch over the same rows agree:

* an incident **opens** once its flags (with at most ``merge_gap`` quiet rows between
  consecutive ones) span ``min_rows`` rows;
* flags closer than ``merge_gap`` quiet rows **merge** into the open incident;
* it **resolves** after ``merge_gap`` + 1 quiet rows (the cooldown);
* a row without data (a gap) is neither flagged nor quiet: it neither extends nor resolves;
* it carries its peak (time and score) and the root causes of its most anomalous row.

The defaults are the event defaults chosen on the development split
(:data:`~tsdiff.results.EVENT_MERGE_GAP`, :data:`~tsdiff.results.EVENT_MIN_ROWS`).

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

import pandas as pd

from tsdiff.errors import ParameterError
from tsdiff.results import EVENT_MERGE_GAP, EVENT_MIN_ROWS


@dataclass
class Incident:
    """One incident: its rows' span, peak, root causes, and whether it is still open."""

    id: int
    start: Any
    last_flag: Any
    peak_time: Any
    peak_score: float
    flagged_rows: int = 1
    span_rows: int = 1  # rows from its start to its last flag, as a batch event's n_rows
    root_causes: list[Any] = field(default_factory=list)
    end: Any = None  # set when resolved

    @property
    def open(self) -> bool:
        return self.end is None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("start", "last_flag", "peak_time", "end"):
            out[key] = None if out[key] is None else str(out[key])
        out["open"] = self.open
        return out


class IncidentTracker:
    """Group a stream's final rows into incidents (see the module docstring).

    Parameters
    ----------
    min_rows, merge_gap
        Flagged rows before an incident opens, and quiet rows that still merge (the cooldown is
        ``merge_gap`` + 1 quiet rows).
    risk, drift_window, drift_factor
        The model's target share of flagged normal rows, the rows the drift check looks back
        over, and how many times ``risk`` that share may reach before :attr:`drifting` is set.
    """

    def __init__(
        self,
        min_rows: int = EVENT_MIN_ROWS,
        merge_gap: int = EVENT_MERGE_GAP,
        risk: float = 1e-3,
        drift_window: int = 1440,
        drift_factor: float = 20.0,
    ) -> None:
        if int(min_rows) < 1 or int(merge_gap) < 0 or int(drift_window) < 1:
            raise ParameterError("min_rows and drift_window must be >= 1 and merge_gap >= 0")
        self.min_rows, self.merge_gap = int(min_rows), int(merge_gap)
        self.risk, self.drift_factor = float(risk), float(drift_factor)
        self.recent: deque[int] = deque(maxlen=int(drift_window))
        self.incidents_opened = 0
        self.current: Incident | None = None  # open, or still gathering its first rows
        self.quiet = 0  # quiet rows since the last flag

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
        return cur if cur is not None and cur.span_rows >= self.min_rows and cur.open else None

    def update(
        self, time: Any, score: float, label: Any, root_causes: list[Any] | None = None
    ) -> list[tuple[str, Incident]]:
        """Add one final row; returns the changes it made: ``("opened", incident)`` and
        ``("resolved", incident)``. A row whose label is missing (NaN, None: no data) changes
        nothing."""
        if label is None or (isinstance(label, float) and pd.isna(label)):
            return []
        flagged = bool(label)
        self.recent.append(int(flagged))
        changes: list[tuple[str, Incident]] = []
        cur = self.current
        if not flagged:
            if cur is None:
                return changes
            self.quiet += 1
            if self.quiet > self.merge_gap:  # the cooldown is over
                if cur.span_rows >= self.min_rows:
                    cur.end = time
                    changes.append(("resolved", cur))
                self.current, self.quiet = None, 0
            return changes
        if cur is None:
            self.current = cur = Incident(
                id=self.incidents_opened + 1,
                start=time,
                last_flag=time,
                peak_time=time,
                peak_score=float(score),
                root_causes=list(root_causes or []),
            )
            was_open = False
        else:
            was_open = cur.span_rows >= self.min_rows
            cur.flagged_rows += 1
            cur.span_rows += self.quiet + 1
            cur.last_flag = time
            if float(score) > cur.peak_score:
                cur.peak_time, cur.peak_score = time, float(score)
                cur.root_causes = list(root_causes or cur.root_causes)
        self.quiet = 0
        if not was_open and cur.span_rows >= self.min_rows:
            self.incidents_opened += 1
            cur.id = self.incidents_opened
            changes.append(("opened", cur))
        return changes

    def close(self, time: Any) -> list[tuple[str, Incident]]:
        """End of the input at row ``time``: the open incident, if any, resolves there (its alert
        gets an ``endsAt``); one still gathering its first rows is dropped, as in a batch."""
        cur, self.current, self.quiet = self.current, None, 0
        if cur is None or cur.span_rows < self.min_rows:
            return []
        cur.end = time
        return [("resolved", cur)]

    # ----------------------------------------------------------------- persistence
    def state(self) -> dict[str, Any]:
        return {
            "recent": list(self.recent),
            "opened": self.incidents_opened,
            "quiet": self.quiet,
            "current": None
            if self.current is None
            else {k: _label_out(v) if k in TIMES else v for k, v in asdict(self.current).items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (as written, or after a trip through JSON)."""
        self.recent.clear()
        self.recent.extend(int(x) for x in state["recent"])
        self.incidents_opened = int(state["opened"])
        self.quiet = int(state["quiet"])
        cur = state["current"]
        if cur is None:
            self.current = None
        else:
            self.current = Incident(**{k: _label_in(v) if k in TIMES else v for k, v in cur.items()})


TIMES = ("start", "last_flag", "peak_time", "end")


def _label_out(value: Any) -> Any:
    """A row label as JSON: a timestamp tagged (it comes back a Timestamp), anything else as is."""
    return {"time": value.isoformat()} if isinstance(value, pd.Timestamp) else value


def _label_in(value: Any) -> Any:
    return pd.Timestamp(value["time"]) if isinstance(value, dict) else value


def alertmanager_alert(incident: Incident, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """An incident as an Alertmanager alert object (``startsAt``, and ``endsAt`` once resolved)."""

    def rfc3339(value: Any) -> str:
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    alert: dict[str, Any] = {
        "labels": {"alertname": "TsdiffAnomaly", "incident": str(incident.id), **(labels or {})},
        "annotations": {
            "summary": f"anomaly from {incident.start}, peak {incident.peak_score:.4g}",
            "root_causes": ", ".join(map(str, incident.root_causes[:5])),
            "peak_score": f"{incident.peak_score:.6g}",
        },
        "startsAt": rfc3339(incident.start),
    }
    if incident.end is not None:
        alert["endsAt"] = rfc3339(incident.end)
    return alert

"""Cutting flagged rows into events, each with one explanation.

A row-by-row state machine, :class:`EventSegmenter`, decides where events start and end; batch
:meth:`~tsdiff.base.BaseDetector.detect` runs it over all rows and a live
:class:`~tsdiff.incidents.IncidentTracker` feeds it one final row at a time, so a stream and a
batch over the same rows cut the same events. Each flagged row brings its *blame*: which metrics
carry its evidence (the detector's per-metric scores, scaled to unit length); an event's profile is
the sum of the blames of its flagged rows. The rules (:class:`SegmentRules`):

* up to ``bridge`` quiet rows (not flagged) between two flags keep one event (a score that dips
  under the threshold for a while within one anomaly);
* after a longer gap, the next run of flags joins the event only when it has the same explanation:
  among its top metrics by blame over its first ``probe`` flagged rows, one is among the event's
  top metrics, ``near_top`` of each after a gap of at most ``near_gap`` rows, ``far_top`` (stricter)
  after a gap of up to ``merge_gap`` rows (the decision waits for those rows, or the end of the
  run); otherwise the event ends and the run starts the next one;
* beyond ``merge_gap`` quiet rows the event has ended; an event spanning fewer than ``min_rows``
  rows is dropped; a row without data (a gap) is neither flagged nor quiet.

:meth:`SegmentRules.time_only` is the rule of time alone (every run within ``merge_gap`` rows
joins), the default before this module. The defaults were chosen on the development split
(``benchmarks/RESULTS.md``, "Events and their root causes").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tsdiff.errors import ParameterError

EVENT_MERGE_GAP = 120
EVENT_MIN_ROWS = 3
EVENT_BRIDGE = 30
EVENT_NEAR_GAP = 120
EVENT_NEAR_TOP = 3
EVENT_FAR_TOP = 3
EVENT_PROBE = 10


@dataclass(frozen=True)
class SegmentRules:
    """The parameters of event segmentation (see the module docstring); a ``near_top`` or
    ``far_top`` of 0 merges those gaps whatever the next run blames."""

    merge_gap: int = EVENT_MERGE_GAP
    min_rows: int = EVENT_MIN_ROWS
    bridge: int = EVENT_BRIDGE
    near_gap: int = EVENT_NEAR_GAP
    near_top: int = EVENT_NEAR_TOP
    far_top: int = EVENT_FAR_TOP
    probe: int = EVENT_PROBE

    def __post_init__(self) -> None:
        for name in ("merge_gap", "min_rows", "bridge", "near_gap", "near_top", "far_top", "probe"):
            value, least = getattr(self, name), 1 if name in ("min_rows", "probe") else 0
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ParameterError(f"{name} must be an integer >= {least}, got {value!r}")

    @classmethod
    def time_only(cls, merge_gap: int = 120, min_rows: int = EVENT_MIN_ROWS) -> SegmentRules:
        """Runs within ``merge_gap`` rows form one event, whatever they blame."""
        return cls(merge_gap=merge_gap, min_rows=min_rows, bridge=0, near_top=0, far_top=0)

    def with_merge_gap(self, merge_gap: Any, step_seconds: float | None = None) -> SegmentRules:
        """These rules with ``merge_gap`` replaced: a number of rows, or a duration (``"30m"``,
        a :class:`~pandas.Timedelta`) that ``step_seconds``, the spacing of the rows, turns into
        rows (rounded up). ``bridge`` and ``near_gap`` shrink with it when it is shorter."""
        rows = rows_in(merge_gap, step_seconds, "merge_gap")
        return SegmentRules(
            **{
                **self.__dict__,
                "merge_gap": rows,
                "bridge": min(self.bridge, rows),
                "near_gap": min(self.near_gap, rows),
            }
        )

    def top_after(self, gap: int) -> int:
        """How many top metrics a run after ``gap`` quiet rows and its event compare (0: none)."""
        return 0 if gap <= self.bridge else self.near_top if gap <= self.near_gap else self.far_top


def rows_in(value: Any, step_seconds: float | None, what: str) -> int:
    """``value`` as a number of rows: an integer (or its text) as it is; a duration (``"30m"``,
    ``"90s"``, a :class:`~pandas.Timedelta`) divided by ``step_seconds``, rounded up. A duration
    without a step is a :class:`~tsdiff.errors.ParameterError` (the rows' spacing is unknown)."""
    import math

    import pandas as pd

    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        rows = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        rows = int(value.strip())
    else:
        try:
            seconds = pd.Timedelta(value).total_seconds()
        except (ValueError, TypeError):
            raise ParameterError(
                f"{what} must be a number of rows or a duration such as 30m, got {value!r}"
            ) from None
        if not seconds > 0:
            raise ParameterError(f"{what} must be a positive duration, got {value!r}")
        if step_seconds is None:
            raise ParameterError(
                f"{what} {value!r} is a duration, but the spacing of the rows is unknown: give it in rows, "
                "or the rows' frequency (--freq)"
            )
        rows = math.ceil(seconds / float(step_seconds) - 1e-9)
    if rows < 0:
        raise ParameterError(f"{what} must be >= 0 rows, got {value!r}")
    return rows


@dataclass
class Segment:
    """One event as the segmenter holds it (positions are the caller's row counter)."""

    start: int
    last_flag: int
    flagged: int = 0
    profile: np.ndarray | None = None  # sum of the unit blames of its flagged rows

    def span(self) -> int:
        return self.last_flag - self.start + 1

    def add(self, position: int, blame: np.ndarray | None) -> None:
        self.last_flag = position
        self.flagged += 1
        if blame is not None:
            self.profile = blame.copy() if self.profile is None else self.profile + blame


@dataclass
class _Probe:
    """A run after a gap, whose first flagged rows decide whether it joins the event."""

    top: int  # top metrics compared (by the gap before it)
    rows: list[tuple[int, np.ndarray | None]] = field(default_factory=list)

    def profile(self) -> np.ndarray | None:
        blames = [b for _, b in self.rows if b is not None]
        return np.sum(blames, axis=0) if blames else None


def unit_blame(values: Any) -> np.ndarray | None:
    """A row's per-metric evidence as a non-negative unit vector (None: no evidence to compare)."""
    if values is None:
        return None
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    v = np.maximum(v, 0.0)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else None


def _top(profile: np.ndarray, k: int) -> set[int]:
    return set(np.argsort(-profile, kind="stable")[:k].tolist())


class EventSegmenter:
    """Feed rows in order with :meth:`update`; it returns the events each row closed, in order.
    :attr:`current` is the event in progress (None: none); :meth:`kept` says whether a closed
    event counts."""

    def __init__(self, rules: SegmentRules | None = None) -> None:
        self.rules = rules or SegmentRules()
        self.current: Segment | None = None
        self.quiet = 0  # quiet rows since the last flag of the event (or of the probe)
        self.probe: _Probe | None = None

    def update(self, position: int, flagged: bool | None, blame: Any = None) -> list[Segment]:
        """One row: ``flagged`` True, False, or None (no data: changes nothing)."""
        if flagged is None:
            return []
        rules = self.rules
        closed: list[Segment] = []
        if not flagged:
            if self.probe is not None:  # the probed run ended before `probe` flags: decide now
                closed += self._decide()
            if self.current is None:
                return closed
            self.quiet += 1
            if self.quiet > rules.merge_gap:  # the cooldown is over
                closed.append(self.current)
                self.current, self.quiet = None, 0
            return closed
        unit = unit_blame(blame)
        if self.probe is not None:
            self.probe.rows.append((position, unit))
            if len(self.probe.rows) >= rules.probe:
                closed += self._decide()
        elif self.current is None:
            self.current = self._start(position, unit)
        elif rules.top_after(self.quiet) == 0:
            self.current.add(position, unit)
        else:  # a run after a longer gap: its first flags decide whether it is the same event
            self.probe = _Probe(rules.top_after(self.quiet), [(position, unit)])
            if rules.probe <= 1:
                closed += self._decide()
        self.quiet = 0
        return closed

    def close(self) -> list[Segment]:
        """The end of the input: the event in progress ends at its last flag."""
        closed = self._decide() if self.probe is not None else []
        if self.current is not None:
            closed.append(self.current)
        self.current, self.quiet = None, 0
        return closed

    def kept(self, segment: Segment) -> bool:
        """Whether a closed event counts (it spans at least ``min_rows`` rows)."""
        return segment.span() >= self.rules.min_rows

    def _decide(self) -> list[Segment]:
        """The probed run joins the event when they share a top metric; else it starts the next."""
        probe, cur = self.probe, self.current
        self.probe = None
        assert probe is not None and cur is not None
        mine, theirs = probe.profile(), cur.profile
        same = mine is None or theirs is None or bool(_top(mine, probe.top) & _top(theirs, probe.top))
        if same:
            for p, b in probe.rows:
                cur.add(p, b)
            return []
        self.current = new = self._start(*probe.rows[0])
        for p, b in probe.rows[1:]:
            new.add(p, b)
        return [cur]

    def _start(self, position: int, unit: np.ndarray | None) -> Segment:
        segment = Segment(start=position, last_flag=position)
        segment.add(position, unit)
        return segment

    # ----------------------------------------------------------------- persistence
    def state(self) -> dict[str, Any]:
        def vector(v: np.ndarray | None) -> list[float] | None:
            return None if v is None else [float(x) for x in v]

        cur = self.current
        return {
            "quiet": self.quiet,
            "current": None
            if cur is None
            else {
                "start": cur.start,
                "last_flag": cur.last_flag,
                "flagged": cur.flagged,
                "profile": vector(cur.profile),
            },
            "probe": None
            if self.probe is None
            else {"top": self.probe.top, "rows": [[p, vector(b)] for p, b in self.probe.rows]},
        }

    def restore(self, state: dict[str, Any]) -> None:
        def vector(v: Any) -> np.ndarray | None:
            return None if v is None else np.asarray(v, dtype=np.float64)

        self.quiet = int(state["quiet"])
        cur = state["current"]
        self.current = (
            None
            if cur is None
            else Segment(
                int(cur["start"]), int(cur["last_flag"]), int(cur["flagged"]), vector(cur["profile"])
            )
        )
        probe = state["probe"]
        self.probe = None
        if probe is not None:
            self.probe = _Probe(int(probe["top"]), [(int(p), vector(b)) for p, b in probe["rows"]])


def segment_rows(flags: Any, blame: Any = None, rules: SegmentRules | None = None) -> list[slice]:
    """Half-open row ranges of the events of a batch: ``flags`` (0/1 per row) and ``blame``
    (rows x metrics, or None for the rule of time alone) through one :class:`EventSegmenter`."""
    segmenter = EventSegmenter(rules)
    out: list[slice] = []
    for i, flag in enumerate(np.asarray(flags)):
        row = None if blame is None else blame[i]
        out += [
            slice(s.start, s.last_flag + 1) for s in segmenter.update(i, bool(flag), row) if segmenter.kept(s)
        ]
    out += [slice(s.start, s.last_flag + 1) for s in segmenter.close() if segmenter.kept(s)]
    return out

"""The watcher: poll a Prometheus source, score the rows that are complete, keep what is exported.

:class:`Watcher` reads, at every poll, the rows from the next unread one up to the last complete
one by the server's clock (:meth:`~tsdiff.sources.prometheus.PrometheusSource.complete_until`),
feeds them to a :class:`~tsdiff.stream.StreamScorer`, tracks incidents, appends every final row to
the ``--output`` log (:class:`~tsdiff.watch.rowlog.RowLog`) and saves its state atomically. What it
guarantees under faults:

* **kill (even SIGKILL) or a failed state save**: the state is saved after the log; a restart
  resumes from the last saved state, scores the rows after it again, and writes to the log only
  the rows after its last line. No row is lost, none logged twice; no line is ever deleted.
* **a second watcher** on the same state or the same log is refused (exit 2 on the command line):
  both are held under exclusive locks while the watcher runs.
* **a server outage** is retried with back-off and reported in ``tsdiff_source_up``; no row is
  skipped, the rows are read when the server is back.
* **a clock ahead of (or behind) the server's**: only the server's clock and samples decide which
  rows are read, so no row is read before it is complete.
* **a series that disappears** (a label change, a renamed metric, a target down) is reported in
  ``tsdiff_series_missing{column}`` and a warning; its cells are missing, the other columns still
  score. A row with no data at all is a gap: no score, no label, it never resolves an incident.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.errors import ParameterError, SourceError
from tsdiff.fileio import FileLock, write_atomic

logger = logging.getLogger(__name__)

STATE_FORMAT = "tsdiff-watch-state"
STATE_VERSION = 2


#: labels of tsdiff's own on the exported series: a target label may not take their names
OWN_LABELS = ("metric", "column", "rank", "detector", "version", "fitted_from", "fitted_to")
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def target_labels(shared: Mapping[str, str], given: Mapping[str, str]) -> dict[str, str]:
    """The labels of every exported series: those the model's columns share (less any that would
    clash with tsdiff's own), then the ``given`` ones (checked: a clash is an error)."""
    for key in given:
        if not LABEL_NAME.fullmatch(str(key)) or str(key).startswith("__") or key in OWN_LABELS:
            raise ParameterError(
                f"{key!r} cannot be a label of the exported series (a Prometheus label name, not "
                f"__-prefixed, not one of {', '.join(OWN_LABELS)})"
            )
    kept = {k: v for k, v in shared.items() if k not in OWN_LABELS}
    return {**kept, **{str(k): str(v) for k, v in given.items()}}


class Watcher:
    """Poll a Prometheus source, score the new rows, keep the values ``/metrics`` exports.

    Parameters
    ----------
    detector
        A fitted, streamable detector whose columns are the source's series.
    source
        A :class:`~tsdiff.sources.prometheus.PrometheusSource` (the model's, by default).
    state_path
        File the scorer's state is written to after each poll and resumed from (held under an
        exclusive lock while the watcher runs).
    output
        Optional JSON-lines log of every final row (as ``tsdiff stream`` writes them).
    start
        Time of the first row when there is no state to resume (default: now). A relative time
        (``now``, ``now-1h``) is taken on the server's clock at the first poll.
    delay
        How far behind the server's clock a poll reads (a duration). None: rows of series
        selectors are read once every series has a later sample (they cannot change any more),
        rows of computed queries one step behind (see
        :meth:`~tsdiff.sources.prometheus.PrometheusSource.complete_until`). The watcher's own
        clock is never used, so a clock ahead of the server's reads no row early.
    top_k
        Metrics named per row and root causes exported per open incident.
    batch
        Most rows one poll reads (a watcher catching up after downtime reads in batches).
    adapt
        ``"dspot"`` or ``"spot"``: the threshold follows the stream (see
        :class:`~tsdiff.stream.StreamScorer`); None: the model's fitted threshold.
    refit_after, refit_window
        Durations. When set, a model whose incident tracker reports drift for ``refit_after`` is
        refitted in the background on the last ``refit_window`` of rows
        (:class:`~tsdiff.watch.refit.Refitter`) and swapped in between two polls; the new model is
        saved beside the state (``<state>.model``) and a restart goes on with it.
    refit_every
        A duration: refit the same way on a schedule too, every ``refit_every`` of rows (drift or
        not; a weekly refit follows slow change without waiting for a drift warning).
    merge_gap
        Quiet rows that end an incident: a number of rows or a duration (``"15m"``; default:
        :class:`~tsdiff.segmentation.SegmentRules`' 120 rows). A watcher resumed from its state
        keeps the rules it was started with.
    labels
        Labels put on every exported series, naming what is monitored (``{"instance": "web-1"}``),
        over those every model column shares (a selector's ``instance`` and ``job``), so alerts
        name and route by the host; the metric labels then name the rest of each column.
    warm_start
        At the first poll of a new scorer, read the rows the server holds just before the first row
        to score (as many as :meth:`~tsdiff.stream.StreamScorer.warm_rows`) and warm the scorer
        with them, so the first rows are final ``latency`` rows later instead of once the model's
        window has filled; False scores the first rows as if nothing came before them.

    Call :meth:`close` (or use it as a context manager) to release the state and log locks.
    """

    def __init__(
        self,
        detector: Any,
        source: Any,
        state_path: str | Path | None = None,
        output: str | Path | None = None,
        start: Any = "now",
        delay: Any = None,
        top_k: int = 3,
        batch: int = 1440,
        adapt: str | None = None,
        refit_after: Any = None,
        refit_window: Any = "1d",
        labels: Mapping[str, str] | None = None,
        merge_gap: Any = None,
        refit_every: Any = None,
        warm_start: bool = True,
    ) -> None:
        from tsdiff.segmentation import SegmentRules
        from tsdiff.sources.prometheus import common_labels, parse_duration, parse_time
        from tsdiff.stream import StreamScorer
        from tsdiff.watch.rowlog import RowLog

        self.detector = detector
        self.source = source
        self.shared_labels = common_labels(detector.feature_names_in_)  # left out of metric names
        self.labels = target_labels(self.shared_labels, labels or {})
        self.state_path = None if state_path is None else Path(state_path)
        self.delay = None if delay is None else 0.0 if str(delay) in ("0", "0s") else parse_duration(delay)
        if isinstance(top_k, bool) or int(top_k) < 1:
            raise ParameterError(f"top_k must be >= 1, got {top_k!r}")
        self.top_k = int(top_k)
        if isinstance(batch, bool) or int(batch) < 1:
            raise ParameterError(f"batch must be >= 1, got {batch!r}")
        self.batch = int(batch)
        self.step_ns = round(source.step * 1e9)
        rules = None if merge_gap is None else SegmentRules().with_merge_gap(merge_gap, source.step)
        self.adapt = adapt
        self.refit_after = None if refit_after is None else parse_duration(refit_after)
        self.refit_every = None if refit_every is None else parse_duration(refit_every)
        self.warm_start = bool(warm_start)
        self.refit_window = parse_duration(refit_window)
        self.refitter: Any = None
        self.refitted = False
        self.lock = threading.Lock()
        self.source_up = 1
        self.source_errors = 0
        self.rows_scored = 0  # final rows with data
        self.rows_without_data = 0  # final rows without any value (gaps)
        self.last: dict[str, Any] | None = None  # the last final row with data
        self.last_was_gap = False
        self.missing: list[str] = []  # model columns without a series in the last poll
        self.last_poll_ok = time.time()
        self.was_drifting = False
        relative = isinstance(start, str) and start.strip().startswith("now")
        # how far before the server's "now" the first row lies, for a relative start
        self._start_back_ns = -parse_time(start, now=0.0).value if relative else 0
        self.next_ns: int | None = None if relative else self._on_grid(parse_time(start).value)
        self._state_lock = None if self.state_path is None else FileLock(f"{self.state_path}.lock")
        self.log = None if output is None else RowLog(output)
        try:
            saved = self._lock_and_read_state()
            if saved is None:
                self.scorer = StreamScorer(detector, top_k=self.top_k, adapt=adapt, segmentation=rules)
            else:
                self._resume(saved)  # the scorer (and a refitted model) come from the snapshot
            if self.log is not None:
                self.log.open(saved.get("output") if saved else None)
            if self.refit_after is not None or self.refit_every is not None:
                from tsdiff.watch.refit import Refitter

                def rows(seconds: float | None) -> int | None:
                    return None if seconds is None else max(1, math.ceil(seconds / source.step))

                window = max(1, round(self.refit_window / source.step))
                self.refitter = Refitter(
                    self.detector, rows(self.refit_after), window, rows(self.refit_every)
                )
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- state
    def _lock_and_read_state(self) -> dict[str, Any] | None:
        if self._state_lock is None or self.state_path is None:
            return None
        if not self.state_path.parent.is_dir():
            raise ParameterError(f"the state folder {self.state_path.parent} does not exist")
        if not self._state_lock.acquire(blocking=False):
            raise ParameterError(
                f"the state {self.state_path} is in use by another tsdiff watch "
                f"(process {self._state_lock.holder()})"
            )
        if not self.state_path.exists():
            return None
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError) as exc:
            raise ParameterError(f"cannot resume from {self.state_path}: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ParameterError(f"{self.state_path} is not a tsdiff watch state")
        if state.get("format_version") != STATE_VERSION:
            raise ParameterError(
                f"{self.state_path} was written by another version of tsdiff watch "
                f"(format {state.get('format_version')!r}, this one reads {STATE_VERSION})"
            )
        return state

    def _resume(self, state: dict[str, Any]) -> None:
        from tsdiff.stream import StreamScorer

        if state.get("model") is not None:  # a refitted model took over
            import tsdiff

            self.detector, self.refitted = tsdiff.load(state["model"]), True
        try:
            self.scorer = StreamScorer.from_state(self.detector, state["scorer"])
            self.next_ns = int(state["next_ns"])
            self.rows_scored = int(state["rows_scored"])
            self.rows_without_data = int(state["rows_without_data"])
            self.last = state.get("last")
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ParameterError):
                raise
            raise ParameterError(f"cannot resume from {self.state_path}: {exc}") from None
        logger.info("resumed from %s at %s", self.state_path, pd.Timestamp(self.next_ns, tz="UTC"))

    def _save(self) -> None:
        if self.state_path is None:
            return
        state = {
            "format": STATE_FORMAT,
            "format_version": STATE_VERSION,
            "scorer": self.scorer.state(),
            "next_ns": int(self.next_ns),
            "rows_scored": self.rows_scored,
            "rows_without_data": self.rows_without_data,
            "last": self.last,
            "output": None if self.log is None else self.log.identity(),
            "model": None if self.refitted_path is None else str(self.refitted_path),
        }
        write_atomic(self.state_path, json.dumps(state))

    @property
    def refitted_path(self) -> Path | None:
        """Where a refitted model is saved (beside the state), once one has taken over."""
        if self.state_path is None or not self.refitted:
            return None
        return self.state_path.with_name(self.state_path.name + ".model")

    def close(self) -> None:
        """Release the state and log locks (another watcher may then take them over)."""
        if self.log is not None:
            self.log.close()
        if self._state_lock is not None:
            self._state_lock.release()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- polling
    def poll(self, now: Any = None, until: Any = None) -> int:
        """Read and score the rows from the next unread one up to the last complete one (or
        ``until``); returns how many rows were read. ``now`` replaces the server's view with a
        given clock (rows up to ``now - delay``: a replay or a benchmark). A server failure raises
        :class:`~tsdiff.errors.SourceError` (see :meth:`run` for the retries)."""
        from tsdiff.sources.prometheus import parse_time

        if self.refitter is not None:
            refitted = self.refitter.take()
            if refitted is not None:
                self._swap(refitted)
        if self.next_ns is None:  # "now" (or "now-1h") on the server's clock, at the first poll
            clock = self.source.server_time() if now is None else parse_time(now)
            self.next_ns = self._on_grid(clock.value - self._start_back_ns)
            self._save()  # a restart goes on from this first row, not from a later "now"
        if self.warm_start and self.scorer.rows_received == 0:
            self._warm_from_history()
        if now is None:
            end_ns = self.source.complete_until(self.delay).value
        else:
            end_ns = parse_time(now).value - round((self.delay or 0.0) * 1e9)
        if until is not None:
            end_ns = min(end_ns, parse_time(until).value)
        end_ns = (end_ns // self.step_ns) * self.step_ns
        end_ns = min(end_ns, self.next_ns + (self.batch - 1) * self.step_ns)  # catch up in batches
        if end_ns < self.next_ns:
            return 0
        start = pd.Timestamp(self.next_ns, tz="UTC")
        names = [str(c) for c in self.detector.feature_names_in_]
        frame = self.source.read(start, pd.Timestamp(end_ns, tz="UTC"), columns=names)
        self._report_missing([c for c in names if c not in frame.columns or frame[c].isna().all()])
        frame = frame.reindex(columns=names)
        frame.columns = list(self.detector.feature_names_in_)
        out = self.scorer.update(frame)
        self._record(out, self.scorer.changes)
        self.next_ns = end_ns + self.step_ns
        if self.refitter is not None:
            self.refitter.observe(frame, self.incidents.drifting)
        self._save()
        return len(frame)

    def _warm_from_history(self) -> None:
        """A new scorer is warmed with the rows the server holds before the first row to score,
        so the first rows' scores are final ``latency`` rows later, as any row's, instead of once
        the model's window has filled (``min_rows``), and are those of a longer series."""
        assert self.next_ns is not None
        rows = self.scorer.warm_rows()
        start = pd.Timestamp(self.next_ns - rows * self.step_ns, tz="UTC")
        end = pd.Timestamp(self.next_ns - self.step_ns, tz="UTC")
        names = [str(c) for c in self.detector.feature_names_in_]
        frame = self.source.read(start, end, columns=names).reindex(columns=names)
        if frame.notna().any().any():
            frame.columns = list(self.detector.feature_names_in_)
            self.scorer.warm(frame)
            logger.info("warmed the scorer with %d rows before %s", len(frame), end)

    def _swap(self, model: Any) -> None:
        """Put a refitted model in charge between two polls, losing and repeating no row: the old
        scorer finalises the rows it holds (as at the end of a stream) and ends its incident; the
        new one is warmed with the rows before the next one (their scores are not emitted again)."""
        from tsdiff.stream import StreamScorer

        old = self.scorer
        out = old.flush()
        self._record(out, old.changes)
        last = old.incidents.rows[-1].time if old.incidents.rows else None
        self._record(out.iloc[:0], old.incidents.close(last))
        scorer = StreamScorer(model, top_k=self.top_k, adapt=self.adapt, segmentation=old.incidents.rules)
        geometry = model.stream_geometry()
        reach = geometry.history + geometry.period if geometry is not None else 0
        warm = list(self.refitter.rows)[-reach:] if reach else []
        if warm:
            scorer.warm(
                pd.DataFrame(
                    np.vstack([r for _, r in warm]),
                    index=pd.DatetimeIndex([t for t, _ in warm]),
                    columns=list(model.feature_names_in_),
                )
            )
        scorer.incidents.incidents_opened = old.incidents.incidents_opened  # ids go on, never reused
        with self.lock:
            self.scorer, self.detector, self.refitted = scorer, model, True
        if self.refitted_path is not None:
            model.save(self.refitted_path)
        self._save()
        logger.warning("the refitted model took over (refit %d)", self.refitter.refits)

    def _on_grid(self, ns: int) -> int:
        return (int(ns) // self.step_ns) * self.step_ns

    def finish(self) -> None:
        """Score the rows still waiting for later rows (the end of a replay)."""
        self._record(self.scorer.flush(), self.scorer.changes)
        self._save()

    def _report_missing(self, missing: list[str]) -> None:
        gone = sorted(set(missing) - set(self.missing))
        back = sorted(set(self.missing) - set(missing))
        if gone:
            logger.warning("no series for the model's column(s) %s: their cells are missing", gone)
        if back:
            logger.warning("the series of %s are back", back)
        with self.lock:
            self.missing = list(missing)

    def _record(self, out: pd.DataFrame, changes: list[tuple[str, Any]]) -> None:
        from tsdiff.watch.rowlog import final_records

        records = final_records(out, detail=True)
        with self.lock:
            for record in records:
                gap = record["gap"]
                self.last_was_gap = gap
                if gap:  # no data: no score, no label, and nothing an incident could learn
                    self.rows_without_data += 1
                    continue
                self.rows_scored += 1
                self.last = record
            for change, incident in changes:
                causes = ", ".join(map(str, (incident.root_causes or incident.top_metrics)[:3]))
                logger.warning(
                    "incident %d %s (peak %.4g; root causes %s)",
                    incident.id,
                    change,
                    incident.peak_score,
                    causes,
                )
            drifting = self.incidents.drifting
            if drifting and not self.was_drifting:
                logger.warning(
                    "%.1f%% of the last rows flagged, far above the model's risk: a stale model or drift",
                    100 * self.incidents.flagged_share,
                )
            self.was_drifting = drifting
        if self.log is not None:
            self.log.append(records)

    def run(self, stop: threading.Event, until: Any = None, interval: float | None = None) -> None:
        """Poll every ``interval`` seconds (default: every step, and at once while catching up)
        until ``stop`` is set, or until the rows up to ``until`` are scored. Server failures are
        retried with back-off (up to five minutes between tries), never raised."""
        from tsdiff.sources.prometheus import parse_time

        if interval is not None and not (math.isfinite(float(interval)) and float(interval) > 0):
            raise ParameterError(f"the poll interval must be a positive number of seconds, got {interval!r}")
        backoff = 1.0
        while not stop.is_set():
            try:
                read = self.poll(until=until)
                self.source_up, backoff = 1, 1.0
                self.last_poll_ok = time.time()
            except SourceError as exc:
                self.source_up = 0
                self.source_errors += 1
                logger.warning("polling failed (%s); retrying in %.0fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 300.0)
                continue
            if until is not None and self.next_ns is not None and self.next_ns > parse_time(until).value:
                self.finish()
                return
            if interval is not None:
                stop.wait(float(interval))
            elif read < self.batch:  # a full batch: more rows are waiting, no pause
                stop.wait(self.source.step)

    @property
    def incidents(self) -> Any:
        """The :class:`~tsdiff.incidents.IncidentTracker` of the scorer (saved with its state)."""
        return self.scorer.incidents

    def healthy(self) -> bool:
        """The source answered within the last three steps (or five minutes, if longer)."""
        return time.time() - self.last_poll_ok < max(3 * self.source.step, 300.0)

    def collect(self) -> Any:
        """The current values as Prometheus metric families (a prometheus-client collector)."""
        from tsdiff.watch.exposition import families

        return families(self)


def ratio(score: float, threshold: float) -> float:
    """Score / threshold (1: at the threshold), also for a threshold of 0."""
    if threshold > 0:
        return score / threshold
    return float(np.sign(score - threshold) + 1.0)  # a threshold of 0: 0, 1 at it, 2 above

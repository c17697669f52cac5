"""``tsdiff watch``: score a Prometheus server's metrics as they arrive and export the result.

:class:`Watcher` polls the server every step for the rows that arrived since the last poll (with
the queries saved in the model at ``fit --prometheus`` time), feeds them to a
:class:`~tsdiff.stream.StreamScorer`, and keeps the latest final values for an HTTP endpoint that
Prometheus scrapes (``/metrics``, exposition format by the official ``prometheus-client``; and
``/healthz``):

* ``tsdiff_anomaly_score``, ``tsdiff_anomaly`` (0/1 by the model's own threshold) and
  ``tsdiff_score_ratio`` (score / threshold: 1 means "alert", whatever the model's units), for the
  last row whose score is final, stamped with that row's time (so Prometheus stores each row's
  score at the row's time, and a range query gives back the batch scores);
  ``tsdiff_last_scored_timestamp_seconds`` is that time;
* ``tsdiff_metric_contribution{metric=...}`` for the top metrics of that row, and
  ``tsdiff_root_cause{metric=...}`` (rank 1 = likely origin) while it is anomalous;
* ``tsdiff_rows_scored_total``, ``tsdiff_rows_dropped_total``, ``tsdiff_source_up``,
  ``tsdiff_source_errors_total``, ``tsdiff_model_info{detector, version, fitted_from,
  fitted_to}``.

After each poll the scorer's state is written atomically (with the size of the ``--output`` log
at that moment), so a restarted watcher resumes where the snapshot was taken: no row lost, none
scored twice (log lines written after the snapshot are cut before the rows are scored again). A
failing server is retried with exponential back-off and reported in ``tsdiff_source_up``; it never
stops the watcher.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.errors import ParameterError, SourceError

logger = logging.getLogger(__name__)

STATE_FORMAT = "tsdiff-watch-state"
STATE_VERSION = 1


class Watcher:
    """Poll a Prometheus source, score the new rows, keep the values ``/metrics`` exports.

    Parameters
    ----------
    detector
        A fitted, streamable detector whose columns are the source's series.
    source
        A :class:`~tsdiff.sources.prometheus.PrometheusSource` (the model's, by default).
    state_path
        File the scorer's state is written to after each poll and resumed from.
    output
        Optional JSON-lines log of every final row (as ``tsdiff stream`` writes them).
    start
        Time of the first row when there is no state to resume (default: now).
    batch
        Most rows one poll reads (a watcher catching up after downtime reads in batches).
    delay
        How far behind the server's clock a poll reads (a duration). None: rows of series
        selectors are read once every series has a later sample (they cannot change any more),
        rows of computed queries one step behind (see
        :meth:`~tsdiff.sources.prometheus.PrometheusSource.complete_until`). The watcher's own
        clock is never used, so a clock ahead of the server's reads no row early.
    """

    def __init__(
        self,
        detector: Any,
        source: Any,
        state_path: str | Path | None = None,
        output: str | Path | None = None,
        start: Any = "now",
        delay: Any = None,
        top_k: int = 5,
        batch: int = 1440,
    ) -> None:
        from tsdiff.sources.prometheus import parse_duration, parse_time
        from tsdiff.stream import StreamScorer

        self.detector = detector
        self.source = source
        self.state_path = None if state_path is None else Path(state_path)
        self.output = None if output is None else Path(output)
        self.delay = None if delay is None else 0.0 if str(delay) in ("0", "0s") else parse_duration(delay)
        self.top_k = int(top_k)
        if int(batch) < 1:
            raise ParameterError(f"batch must be >= 1, got {batch!r}")
        self.batch = int(batch)
        self.step_ns = round(source.step * 1e9)
        self.lock = threading.Lock()
        self.source_up = 1
        self.source_errors = 0
        self.rows_scored = 0
        self.last: dict[str, Any] | None = None  # the last final row
        self.last_poll_ok = time.time()
        from tsdiff.incidents import IncidentTracker

        self.incidents = IncidentTracker(risk=float(getattr(detector, "risk", 1e-3)))
        self.was_drifting = False
        self.next_ns = (parse_time(start).value // self.step_ns) * self.step_ns
        if self.state_path is not None and self.state_path.exists():
            self._resume()  # the scorer comes from the snapshot
        else:
            self.scorer = StreamScorer(detector, top_k=self.top_k)

    # ----------------------------------------------------------------- state
    def _resume(self) -> None:
        from tsdiff.stream import StreamScorer

        try:
            state = json.loads(self.state_path.read_text())  # type: ignore[union-attr]
            if state.get("format") != STATE_FORMAT or state.get("format_version") != STATE_VERSION:
                raise ParameterError(f"{self.state_path} is not a tsdiff watch state")
            self.scorer = StreamScorer.from_state(self.detector, state["scorer"])
            self.next_ns = int(state["next_ns"])
            self.rows_scored = int(state["rows_scored"])
            self.last = state.get("last")
            self.incidents.restore(state["incidents"])
            written = int(state["output_bytes"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ParameterError):
                raise
            raise ParameterError(f"cannot resume from {self.state_path}: {exc}") from None
        if self.output is not None and self.output.exists() and self.output.stat().st_size > written:
            with open(self.output, "r+b") as handle:  # lines after the snapshot are scored again
                handle.truncate(written)
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
            "last": self.last,
            "incidents": self.incidents.state(),
            "output_bytes": _size(self.output),
        }
        text = json.dumps(state)
        folder = self.state_path.parent
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{self.state_path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.state_path)

    # ----------------------------------------------------------------- polling
    def poll(self, now: Any = None, until: Any = None) -> int:
        """Read and score the rows from the next unread one up to the last complete one (or
        ``until``); returns how many rows were read. ``now`` replaces the server's view with a
        given clock (rows up to ``now - delay``: a replay or a benchmark). A server failure raises
        :class:`~tsdiff.errors.SourceError` (see :meth:`run` for the retries)."""
        from tsdiff.sources.prometheus import parse_time

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
        frame = self.source.read(start, pd.Timestamp(end_ns, tz="UTC"))
        frame = frame.reindex(columns=[str(c) for c in self.detector.feature_names_in_])
        frame.columns = list(self.detector.feature_names_in_)
        out = self.scorer.update(frame)
        self._record(out)
        self.next_ns = end_ns + self.step_ns
        self._save()
        return len(frame)

    def finish(self) -> None:
        """Score the rows still waiting for later rows (the end of a replay)."""
        self._record(self.scorer.flush())
        self._save()

    def _record(self, out: pd.DataFrame) -> None:
        final = out[out["final"].astype(bool)] if len(out) else out
        lines = []
        with self.lock:
            for stamp, row in final.iterrows():
                self.rows_scored += 1
                score = row["score"]
                self.last = {
                    "time": pd.Timestamp(stamp).isoformat(),
                    "seconds": pd.Timestamp(stamp).value / 1e9,
                    "score": None if pd.isna(score) else float(score),
                    "label": None if pd.isna(row["label"]) else int(row["label"]),
                    "top_metrics": [str(m) for m in row["top_metrics"]],
                    "root_causes": [str(m) for m in row["root_causes"]],
                }
                lines.append(json.dumps(self.last))
                for change, incident in self.incidents.update(
                    stamp, score, row["label"], self.last["root_causes"]
                ):
                    logger.warning("incident %d %s (peak %.4g)", incident.id, change, incident.peak_score)
            drifting = self.incidents.drifting
            if drifting and not self.was_drifting:
                logger.warning(
                    "%.1f%% of the last rows flagged, far above the model's risk: a stale model or drift",
                    100 * self.incidents.flagged_share,
                )
            self.was_drifting = drifting
        if self.output is not None and lines:
            with open(self.output, "a") as handle:
                handle.write("\n".join(lines) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def run(self, stop: threading.Event, until: Any = None, interval: float | None = None) -> None:
        """Poll every ``interval`` seconds (default: every step, and at once while catching up)
        until ``stop`` is set, or until the rows up to ``until`` are scored. Server failures are
        retried with back-off (up to five minutes between tries), never raised."""
        from tsdiff.sources.prometheus import parse_time

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
            if until is not None and self.next_ns > parse_time(until).value:
                self.finish()
                return
            if interval is not None:
                stop.wait(float(interval))
            elif read < self.batch:  # a full batch: more rows are waiting, no pause
                stop.wait(self.source.step)

    # ----------------------------------------------------------------- exposition
    def collect(self) -> Any:
        """The current values as Prometheus metric families (a prometheus-client collector)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        det = self.detector
        with self.lock:
            last = None if self.last is None else dict(self.last)
            scored, dropped = self.rows_scored, self.scorer.dropped_
        info = GaugeMetricFamily(
            "tsdiff_model_info",
            "The model scoring (value 1).",
            labels=["detector", "version", "fitted_from", "fitted_to"],
        )
        from tsdiff._version import __version__

        source = getattr(det, "source_", None) or {}
        fitted = [str(source.get("fitted_from", "")), str(source.get("fitted_to", ""))]
        info.add_metric([type(det).__name__, __version__, *fitted], 1)
        yield info
        up = GaugeMetricFamily("tsdiff_source_up", "1 when the last poll of the source succeeded.")
        up.add_metric([], self.source_up)
        yield up
        yield CounterMetricFamily(
            "tsdiff_source_errors", "Failed polls of the source.", value=self.source_errors
        )
        yield CounterMetricFamily("tsdiff_rows_scored", "Rows whose final score is known.", value=scored)
        yield CounterMetricFamily("tsdiff_rows_dropped", "Late or duplicate rows dropped.", value=dropped)
        with self.lock:
            open_now = self.incidents.open_incident is not None
            opened, share = self.incidents.incidents_opened, self.incidents.flagged_share
            drift = self.incidents.drifting
        for name, text, value in (
            ("tsdiff_incident_open", "1 while an incident is open.", float(open_now)),
            ("tsdiff_flagged_share", "Share of flagged rows over the drift window.", share),
            ("tsdiff_drift_warning", "1 when far more rows are flagged than the model's risk.", float(drift)),
        ):
            family = GaugeMetricFamily(name, text)
            family.add_metric([], value)
            yield family
        yield CounterMetricFamily("tsdiff_incidents", "Incidents opened.", value=opened)
        if last is None or last["score"] is None:
            return
        threshold = float(det.threshold_)
        ratio = _ratio(last["score"], threshold)
        stamp = last["seconds"]  # each row's values carry the row's own time
        for name, text, value in (
            ("tsdiff_anomaly_score", "Anomaly score of the last final row.", last["score"]),
            ("tsdiff_anomaly", "1 when the last final row is anomalous (model threshold).", last["label"]),
            ("tsdiff_score_ratio", "Score / threshold of the last final row (1: alert).", ratio),
        ):
            family = GaugeMetricFamily(name, text)
            family.add_metric([], float(value), timestamp=stamp)
            yield family
        seen = GaugeMetricFamily("tsdiff_last_scored_timestamp_seconds", "Time of the last final row.")
        seen.add_metric([], stamp)
        yield seen
        top = GaugeMetricFamily(
            "tsdiff_metric_contribution", "Rank of a top metric of the last final row.", labels=["metric"]
        )
        for rank, metric in enumerate(last["top_metrics"], start=1):
            top.add_metric([metric], rank, timestamp=stamp)
        yield top
        causes = GaugeMetricFamily(
            "tsdiff_root_cause", "Rank of a likely root cause of the open event.", labels=["metric"]
        )
        if last["label"]:
            for rank, metric in enumerate(last["root_causes"], start=1):
                causes.add_metric([metric], rank, timestamp=stamp)
        yield causes

    def healthy(self) -> bool:
        """The source answered within the last three steps (or five minutes, if longer)."""
        return time.time() - self.last_poll_ok < max(3 * self.source.step, 300.0)


def _size(path: Path | None) -> int:
    return path.stat().st_size if path is not None and path.exists() else 0


def _ratio(score: float, threshold: float) -> float:
    if threshold > 0:
        return score / threshold
    return float(np.sign(score - threshold) + 1.0)  # a threshold of 0: 0, 1 at it, 2 above


def serve(watcher: Watcher, host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/healthz`` for ``watcher`` on a background thread."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(watcher)  # type: ignore[arg-type]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/metrics":
                body, kind, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
            elif self.path.split("?")[0] == "/healthz":
                ok = watcher.healthy()
                body, kind, code = (b"ok\n" if ok else b"source down\n"), "text/plain", 200 if ok else 503
            else:
                body, kind, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug(format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

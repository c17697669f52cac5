"""What a watcher exports at ``/metrics`` (exposition format by the official ``prometheus-client``),
and the HTTP server for it and ``/healthz``.

* ``tsdiff_anomaly_score``, ``tsdiff_anomaly`` (0/1 by the model's own threshold) and
  ``tsdiff_score_ratio`` (score / threshold: 1 means "alert", whatever the model's units), for the
  last final row with data, stamped with that row's time (so Prometheus stores each row's score at
  the row's time, and a range query gives back the batch scores);
  ``tsdiff_last_scored_timestamp_seconds`` is that time;
* ``tsdiff_metric_contribution{metric=...}`` (each top metric's share of that row's per-metric
  evidence, 0-1) and ``tsdiff_metric_rank{metric=...}`` (1 = first) for the top metrics of that
  row, and ``tsdiff_root_cause{metric=...}`` for the top ``top_k`` root causes of the open
  incident (rank 1 = likely origin; the incident's top metrics for a detector without a causal
  model); ``metric`` is the column without the labels every column shares;
* ``tsdiff_rows_scored_total``, ``tsdiff_rows_without_data_total`` (gap rows: no score),
  ``tsdiff_no_data`` (1 while the last final row had no data), ``tsdiff_series_missing{column}``
  (1 per model column without a series in the last poll), ``tsdiff_rows_dropped_total``,
  ``tsdiff_source_up``, ``tsdiff_source_errors_total``, ``tsdiff_model_info{detector, version,
  fitted_from, fitted_to}``;
* ``tsdiff_incident_open``, ``tsdiff_incidents_total``, ``tsdiff_flagged_ratio`` and
  ``tsdiff_drift_warning`` from the incident tracker; ``tsdiff_threshold`` (the model's, or the
  adapted one), ``tsdiff_refits_total`` and ``tsdiff_refit_failures_total``.

Every series carries the watcher's target labels (the monitored host's ``instance``, ``job``: the
labels all the model's columns share, or ``--label``), so a scrape with ``honor_labels: true``
keeps them, and alerts name and route by the monitored host, not by the watcher's address.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)


def families(watcher: Any) -> Iterator[Any]:
    """The metric families of ``watcher``'s current values, every series carrying the watcher's
    target labels (``watcher.labels``: the monitored host's ``instance``, ``job``, ...)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from tsdiff._version import __version__
    from tsdiff.sources.prometheus import short_name
    from tsdiff.watch.watcher import ratio

    det = watcher.detector
    target = dict(watcher.labels)
    keys, values = list(target), list(target.values())

    def gauge(name: str, text: str, *own: str) -> Any:
        return GaugeMetricFamily(name, text, labels=[*keys, *own])

    def short(column: Any) -> str:  # without the labels every column shares
        return short_name(column, watcher.shared_labels)

    with watcher.lock:
        last = None if watcher.last is None else dict(watcher.last)
        scored, dropped = watcher.rows_scored, watcher.scorer.dropped_
        empty, no_data, missing = watcher.rows_without_data, watcher.last_was_gap, list(watcher.missing)
        incident = watcher.incidents.open_incident
        open_now = incident is not None
        open_causes = [] if incident is None else list(incident.root_causes or incident.top_metrics)
        opened, flagged = watcher.incidents.incidents_opened, watcher.incidents.flagged_share
        drift = watcher.incidents.drifting
        threshold = float(watcher.scorer.threshold)
        refits = 0 if watcher.refitter is None else watcher.refitter.refits
        refit_failures = 0 if watcher.refitter is None else watcher.refitter.failures
    info = gauge(
        "tsdiff_model_info", "The model scoring (value 1).", "detector", "version", "fitted_from", "fitted_to"
    )
    source = getattr(det, "source_", None) or {}
    fitted = [str(source.get("fitted_from", "")), str(source.get("fitted_to", ""))]
    info.add_metric([*values, type(det).__name__, __version__, *fitted], 1)
    yield info
    for name, text, value in (
        ("tsdiff_source_up", "1 when the last poll of the source succeeded.", watcher.source_up),
        ("tsdiff_no_data", "1 when the last final row had no value at all (a gap).", float(no_data)),
        ("tsdiff_incident_open", "1 while an incident is open.", float(open_now)),
        (
            "tsdiff_flagged_ratio",
            "Rows the model's own threshold flags / rows over the drift window (the drift check's share).",
            flagged,
        ),
        ("tsdiff_drift_warning", "1 when far more rows are flagged than the model's risk.", float(drift)),
        ("tsdiff_threshold", "The score above which a row is flagged now (adapted with --adapt).", threshold),
    ):
        family = gauge(name, text)
        family.add_metric(values, value)
        yield family
    for name, text, value in (
        ("tsdiff_source_errors", "Failed polls of the source.", watcher.source_errors),
        ("tsdiff_rows_scored", "Final rows with data, scored.", scored),
        ("tsdiff_rows_without_data", "Final rows without any value: gaps, not scored.", empty),
        ("tsdiff_rows_dropped", "Late or duplicate rows dropped.", dropped),
        ("tsdiff_incidents", "Incidents opened.", opened),
        ("tsdiff_refits", "Refitted models that took over (--refit-after).", refits),
        ("tsdiff_refit_failures", "Refits that failed (the old model went on).", refit_failures),
    ):
        counter = CounterMetricFamily(name, text, labels=keys)
        counter.add_metric(values, value)
        yield counter
    absent = gauge(
        "tsdiff_series_missing", "1 for a model column without a series in the last poll.", "column"
    )
    for column in missing:
        absent.add_metric([*values, short(column)], 1)
    yield absent
    if last is None or last["score"] is None:
        return
    stamp = last["seconds"]  # each row's values carry the row's own time
    for name, text, value in (
        ("tsdiff_anomaly_score", "Anomaly score of the last final row.", last["score"]),
        ("tsdiff_anomaly", "1 when the last final row is anomalous (model threshold).", last["label"]),
        (
            "tsdiff_score_ratio",
            "Score / threshold of the last final row (1: alert).",
            ratio(last["score"], threshold),
        ),
    ):
        family = gauge(name, text)
        family.add_metric(values, float(value), timestamp=stamp)
        yield family
    seen = gauge("tsdiff_last_scored_timestamp_seconds", "Time of the last final row.")
    seen.add_metric(values, stamp)
    yield seen
    share = gauge(
        "tsdiff_metric_contribution",
        "Share of the last final row's per-metric evidence held by one of its top metrics (0-1).",
        "metric",
    )
    rank = gauge("tsdiff_metric_rank", "Rank of a top metric of the last final row (1: first).", "metric")
    shares = last.get("top_shares") or [float("nan")] * len(last["top_metrics"])
    for k, (metric, value) in enumerate(zip(last["top_metrics"], shares, strict=False), start=1):
        share.add_metric([*values, short(metric)], value, timestamp=stamp)
        rank.add_metric([*values, short(metric)], k, timestamp=stamp)
    yield share
    yield rank
    causes = gauge(
        "tsdiff_root_cause", "Rank of a likely root cause of the open incident (1: first).", "metric"
    )
    for k, metric in enumerate(open_causes[: watcher.top_k], start=1):
        causes.add_metric([*values, short(metric)], k, timestamp=stamp)
    yield causes


def serve(watcher: Any, host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``/metrics`` (``watcher.collect()``) and ``/healthz`` (``watcher.healthy()``) on a
    background thread, GET and HEAD; ``watcher`` is a :class:`~tsdiff.watch.Watcher` or a
    :class:`~tsdiff.fleet.watch.FleetWatcher`."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(watcher)  # type: ignore[arg-type]

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body_too: bool) -> None:
            path = self.path.split("?")[0]
            if path == "/metrics":
                body, kind, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
            elif path == "/healthz":
                ok = watcher.healthy()
                body, kind, code = (b"ok\n" if ok else b"source down\n"), "text/plain", 200 if ok else 503
            else:
                body, kind, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body_too:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(body_too=True)

        def do_HEAD(self) -> None:
            self._answer(body_too=False)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug(format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

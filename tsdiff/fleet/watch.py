"""``tsdiff fleet watch``: every host of a fleet scored live from one Prometheus, by its own model.

:class:`FleetWatcher` reads, at every poll, each query of the fleet's source once for all hosts
(the rows complete by the server's clock, as ``tsdiff watch`` reads them), splits the series by the
entity label, and feeds each host's rows to its own :class:`~tsdiff.stream.StreamScorer` (its
incidents cut as a batch cuts events). A host's state is one of:

* ``scored``: its series were read and scored;
* ``stale``: it has a model but no series in the last poll (a host gone or down): its rows are gaps,
  no score and never evidence of normality; it is not an error;
* ``unmodelled``: it has series but no model (a new host): reported, and with ``fit_new_after``
  fitted once that much of its history is on the server;
* ``failed``: its rows could not be scored (the error is logged); the other hosts go on.

The state of every host's scorer is saved atomically after each poll (under an exclusive lock, as
``tsdiff watch``'s), and ``output`` logs every final row with its ``entity``; a restart goes on
from the state, and no row is lost or logged twice (:class:`~tsdiff.watch.rowlog.RowLog`).
What ``/metrics`` exports is in :func:`families`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from tsdiff.errors import ParameterError, SourceError
from tsdiff.fileio import FileLock, write_atomic
from tsdiff.fleet.refits import FleetRefits, remove_model

logger = logging.getLogger(__name__)

STATE_FORMAT = "tsdiff-fleet-watch-state"
STATE_VERSION = 1
STATES = ("scored", "stale", "unmodelled", "failed")


class FleetWatcher:
    """Score every host of a fleet from Prometheus (see the module docstring).

    Parameters
    ----------
    model_dir
        A fleet fitted from Prometheus (``tsdiff fleet fit --prometheus``): its index holds the
        queries and the entity label.
    state_path, output, start, delay, batch, top_k
        As for :class:`~tsdiff.watch.Watcher` (``output`` lines carry the ``entity``).
    fit_new_after
        A duration: a host without a model is fitted (with the fleet's detector) once it has that
        much history on the server; None: such hosts are only reported.
    url, auth
        Another server than the one the fleet was fitted from, and other credentials
        (:class:`~tsdiff.sources.http.Auth`) than those it was fitted with.
    merge_gap
        Quiet time that ends a host's incident, in rows or as a duration (None: the models' own
        rules), as for ``tsdiff watch``.
    refit_every, refit_window
        Durations: every ``refit_every`` of rows, refit every host's model warm on its last
        ``refit_window`` of rows (:meth:`~tsdiff.base.BaseDetector.refit`), in the background while
        the old models go on scoring; each refitted model takes over its host between two polls
        with no row lost or scored twice, and is saved beside the state (``<state>.models/``; the
        fleet directory is left as fitted). Needs a ``state_path``.
    warm_start
        At the first poll, read each host's rows just before the first row to score and warm its
        scorer with them (as ``tsdiff watch`` does), so its first rows are final ``latency`` rows
        later instead of once its model's window has filled; a host fitted later
        (``fit_new_after``) is warmed the same way at the poll after its fit.
    adapt
        Each host's threshold follows its own stream, as ``tsdiff watch --adapt`` (None: fixed;
        ``"budget"`` never goes below the host's fitted or pooled threshold).
    """

    def __init__(
        self,
        model_dir: str | Path,
        state_path: str | Path | None = None,
        output: str | Path | None = None,
        start: Any = "now",
        delay: Any = None,
        batch: int = 1440,
        top_k: int = 3,
        fit_new_after: Any = None,
        url: str | None = None,
        client: Any = None,
        auth: Any = None,
        merge_gap: Any = None,
        refit_every: Any = None,
        refit_window: Any = "1d",
        warm_start: bool = True,
        adapt: str | None = None,
    ) -> None:
        from tsdiff.fleet.storage import read_index
        from tsdiff.segmentation import SegmentRules
        from tsdiff.sources.prometheus import PrometheusSource, parse_duration, parse_time
        from tsdiff.watch.rowlog import RowLog

        self.model_dir = Path(model_dir)
        index = read_index(self.model_dir)
        settings = index.get("source")
        if not settings or "entity_label" not in settings:
            raise ParameterError(
                f"the fleet in {model_dir} was not fitted from Prometheus (fleet fit --prometheus)"
            )
        self.label = str(settings["entity_label"])
        self.source = PrometheusSource.from_dict(settings, url=url, auth=auth)
        self.detector_spec = index.get("detector")
        self.threshold_pool = index.get("threshold_pool")  # new hosts take it as fit_fleet's did
        self.client = client
        self.hosts: list[str] = [str(name) for name in index["entities"]]
        self.columns = self._index_columns(index)
        self.delay = None if delay is None else 0.0 if str(delay) in ("0", "0s") else parse_duration(delay)
        if isinstance(batch, bool) or int(batch) < 1 or int(top_k) < 1:
            raise ParameterError(f"batch and top_k must be >= 1, got {batch!r} and {top_k!r}")
        self.batch, self.top_k = int(batch), int(top_k)
        self.fit_new_after = None if fit_new_after is None else parse_duration(fit_new_after)
        self.step_ns = round(self.source.step * 1e9)
        self.rules = None if merge_gap is None else SegmentRules().with_merge_gap(merge_gap, self.source.step)
        relative = isinstance(start, str) and start.strip().startswith("now")
        self._start_back_ns = -parse_time(start, now=0.0).value if relative else 0
        self.next_ns: int | None = (
            None if relative else (parse_time(start).value // self.step_ns) * self.step_ns
        )
        self.lock = threading.Lock()  # the figures /metrics reads
        self.polling = threading.Lock()  # the shards: a poll, or a new host joining them
        self.state_path = None if state_path is None else Path(state_path)
        self.adapt = None if adapt is None else str(adapt).lower()
        self.warm_new = bool(warm_start)  # warm each host's first scorer (at the start, or once fitted)
        self.warm_start = self.warm_new  # until the next poll has warmed the hosts with no row yet
        every = None if refit_every is None else parse_duration(refit_every)
        self.refits = FleetRefits(self, every, parse_duration(refit_window))
        self.shards: Any = None  # HostScorers here, or DaskShards over the client's workers
        self.scorer_states: dict[str, Any] = {}  # per host, its scorer's state after the last poll
        self.summary: dict[str, dict[str, Any]] = {}  # per host: threshold, open incident, causes
        self.last: dict[str, dict[str, Any]] = {}  # per host, its last final row with data
        self.status: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.first_seen: dict[str, int] = {}  # unmodelled hosts: the first row they had series
        self.fitting: dict[str, threading.Thread] = {}
        self.rows_scored = 0
        self.source_up, self.source_errors = 1, 0
        self.poll_seconds, self.rows_behind = 0.0, 0
        self._state_lock = None if self.state_path is None else FileLock(f"{self.state_path}.lock")
        self.log = None if output is None else RowLog(output, key="entity")
        try:
            saved = self._lock_and_read_state()
            self._start_scorers(saved)
            if self.log is not None:
                self.log.open(saved.get("output") if saved else None)
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
                f"the state {self.state_path} is in use by another tsdiff fleet watch "
                f"(process {self._state_lock.holder()})"
            )
        if not self.state_path.exists():
            return None
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError) as exc:
            raise ParameterError(f"cannot resume from {self.state_path}: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ParameterError(f"{self.state_path} is not a tsdiff fleet watch state")
        if state.get("format_version") != STATE_VERSION:
            raise ParameterError(f"{self.state_path} was written by another version of tsdiff fleet watch")
        return state

    def _index_columns(self, index: dict[str, Any]) -> list[str]:
        """Every host's columns, from the index (or, for an entry without them, its model)."""
        import tsdiff
        from tsdiff.fleet.storage import entity_path

        columns: set[str] = set()
        for name, entry in index["entities"].items():
            known = entry.get("columns") if isinstance(entry, dict) else None
            if known is None:
                known = tsdiff.load(entity_path(self.model_dir, name)).feature_names_in_
            columns |= {str(c) for c in known}
        return sorted(columns)

    def _start_scorers(self, saved: dict[str, Any] | None) -> None:
        from tsdiff.fleet.shards import DaskShards, HostScorers

        states = {} if saved is None else dict(saved["scorers"])
        hosts = {entity: states.get(entity) for entity in self.hosts}
        if saved is not None:
            self.refits.restore(saved, set(hosts))
        options = {
            "top_k": self.top_k,
            "segmentation": self.rules,
            "models": self.refits.paths,
            "adapt": self.adapt,
        }
        if self.client is None:
            self.shards = HostScorers(self.model_dir, hosts, states, **options)
        else:
            self.shards = DaskShards(self.client, self.model_dir, hosts, **options)
        self.scorer_states = {e: s for e, s in states.items() if e in hosts}
        if saved is not None:
            try:
                self.next_ns = int(saved["next_ns"])
                self.rows_scored = int(saved["rows_scored"])
                self.last = dict(saved["last"])
                self.first_seen = {str(k): int(v) for k, v in saved["first_seen"].items()}
            except (KeyError, TypeError, ValueError) as exc:
                raise ParameterError(f"cannot resume from {self.state_path}: {exc}") from None

    @property
    def models(self) -> dict[str, Any]:
        """Each host's model, when the hosts are scored in this process."""
        if self.client is not None:
            raise ParameterError("the models of a sharded fleet watch live on its Dask workers")
        return self.shards.models

    def _save(self) -> None:
        if self.state_path is None:
            return
        state = {
            "format": STATE_FORMAT,
            "format_version": STATE_VERSION,
            "next_ns": int(self.next_ns or 0),
            "rows_scored": self.rows_scored,
            "last": self.last,
            "first_seen": self.first_seen,
            "scorers": self.scorer_states,
            "output": None if self.log is None else self.log.identity(),
            **self.refits.state(),
        }
        write_atomic(self.state_path, json.dumps(state))

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        if self._state_lock is not None:
            self._state_lock.release()

    def __enter__(self) -> FleetWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- polling
    def poll(self, now: Any = None, until: Any = None) -> int:
        """Read and score the rows of every host from the next unread one up to the last complete
        one (or ``until``); returns how many rows (per host) were read."""
        from tsdiff.sources.prometheus import parse_time

        started = time.perf_counter()
        if self.next_ns is None:
            clock = self.source.server_time() if now is None else parse_time(now)
            self.next_ns = ((clock.value - self._start_back_ns) // self.step_ns) * self.step_ns
        bound = self.source.complete_until(self.delay).value if now is None else parse_time(now).value
        end_ns = bound if until is None else min(bound, parse_time(until).value)
        end_ns = (end_ns // self.step_ns) * self.step_ns
        end_ns = min(end_ns, self.next_ns + (self.batch - 1) * self.step_ns)
        if end_ns < self.next_ns:
            return 0
        if self.warm_start:
            self._warm_from_history()
        start, end = pd.Timestamp(self.next_ns, tz="UTC"), pd.Timestamp(end_ns, tz="UTC")
        frames = self.source.read_entities(start, end, self.label, columns=self.columns)
        grid = self.source.grid(start, end)
        with self.lock:
            hosts = set(self.hosts)
        with self.polling:
            records, retired = self.refits.swap_ready(self.shards, self._take)
            records += self._take(self.shards.update({e: f for e, f in frames.items() if e in hosts}, grid))
        self._watch_new(frames, end_ns)
        if self.log is not None:
            self.log.append(records)
        self.next_ns = end_ns + self.step_ns
        self._save()
        for path in retired:  # models no saved state refers to any more
            remove_model(path)
        self.refits.observe(len(grid), end_ns)
        self.poll_seconds = time.perf_counter() - started
        self.rows_behind = max(0, (bound - self.next_ns) // self.step_ns + 1)
        return len(grid)

    def _warm_from_history(self) -> None:
        """Warm the scorers of hosts that have no row yet with the rows the server holds before
        the first row to score (once per start; a host without such rows starts cold)."""
        assert self.next_ns is not None
        with self.polling:
            rows = self.shards.warm_rows()
            if rows:
                start = pd.Timestamp(self.next_ns - rows * self.step_ns, tz="UTC")
                end = pd.Timestamp(self.next_ns - self.step_ns, tz="UTC")
                frames = self.source.read_entities(start, end, self.label, columns=self.columns)
                with self.lock:
                    hosts = set(self.hosts)
                states = self.shards.warm({e: f for e, f in frames.items() if e in hosts})
                with self.lock:
                    self.scorer_states.update(states)
                logger.info("warmed %d hosts with up to %d rows before %s", len(states), rows, end)
        self.warm_start = False

    def _take(self, outcome: dict[str, Any]) -> list[dict[str, Any]]:
        """Keep what the shards report of a poll (see ``HostScorers``); returns its log records."""
        for message in outcome["changes"]:
            logger.warning("%s", message)
        with self.lock:
            for entity, message in outcome["errors"].items():
                logger.warning("%s: %s", entity, message)
            for entity, state in outcome["status"].items():
                self.status[entity] = state
                if state != "failed":
                    self.errors.pop(entity, None)
            self.errors.update(outcome["errors"])
            self.summary.update(outcome["summary"])
            self.scorer_states.update(outcome["states"])
            for record in outcome["records"]:
                if not record["gap"]:
                    self.rows_scored += 1
                    self.last[record["entity"]] = record
        return outcome["records"]

    def _watch_new(self, frames: dict[str, pd.DataFrame], end_ns: int) -> None:
        """Hosts with series but no model: reported; with ``fit_new_after``, fitted once they have
        that much history (in the background; scored from the poll after)."""
        for entity in sorted(set(frames) - set(self.hosts)):
            with self.lock:
                self.status[entity] = "unmodelled"
            first = self.first_seen.setdefault(entity, int(frames[entity].index[0].value))
            ready = self.fit_new_after is not None and end_ns - first >= self.fit_new_after * 1e9
            if ready and entity not in self.fitting:
                thread = threading.Thread(target=self._fit_new, args=(entity, first, end_ns), daemon=True)
                self.fitting[entity] = thread
                thread.start()

    def _fit_new(self, entity: str, first_ns: int, end_ns: int) -> None:
        from tsdiff.fleet.pooling import POOLED, host_threshold, takes_pool
        from tsdiff.fleet.storage import entity_path, update_index
        from tsdiff.persist import detector_from_spec

        try:
            start, end = pd.Timestamp(first_ns, tz="UTC"), pd.Timestamp(end_ns, tz="UTC")
            frame = self.source.read_entities(start, end, self.label, columns=self.columns)[entity]
            detector = detector_from_spec(self.detector_spec)
            if "verbose" in detector.get_params(deep=False):
                detector.set_params(verbose=False)
            detector.fit(frame.dropna(axis=1, how="all"))
            pool = self.threshold_pool
            if pool is not None and takes_pool(pool.get("rule", "auto"), detector.threshold_method_):
                detector.set_threshold(host_threshold(detector.calibration_scores_, pool), POOLED)
            detector.save(entity_path(self.model_dir, entity))
            entry = {"rows": len(frame), "columns": list(detector.feature_names_in_), "type": "str"}
            entry.update(threshold=float(detector.threshold_), threshold_method=detector.threshold_method_)
            update_index(self.model_dir, {}, {entity: entry}, {})
        except Exception as exc:  # a new host's fit must never stop the fleet
            logger.warning("fitting the new host %s failed: %s", entity, exc)
            with self.lock:
                self.errors[entity] = f"fit failed: {exc}"
            return
        logger.warning("fitted a model for the new host %s on %d rows", entity, len(frame))
        with self.polling:  # scored from the next poll on, as a stream of its own
            self.shards.add(entity)
            self.warm_start = self.warm_new  # warmed with its rows before the next poll's first
            with self.lock:
                self.hosts.append(entity)
                self.columns = sorted(set(self.columns) | {str(c) for c in detector.feature_names_in_})
                self.first_seen.pop(entity, None)

    def run(self, stop: threading.Event, until: Any = None, interval: float | None = None) -> None:
        """Poll until ``stop`` is set (or the rows up to ``until`` are scored), retrying a failing
        server with back-off, as ``tsdiff watch`` does."""
        from tsdiff.sources.prometheus import parse_time

        backoff = 1.0
        while not stop.is_set():
            try:
                read = self.poll(until=until)
                self.source_up, backoff = 1, 1.0
            except SourceError as exc:
                self.source_up, self.source_errors = 0, self.source_errors + 1
                logger.warning("polling failed (%s); retrying in %.0fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 300.0)
                continue
            if until is not None and self.next_ns is not None and self.next_ns > parse_time(until).value:
                self.finish()
                return
            if interval is not None:
                stop.wait(float(interval))
            elif read < self.batch:
                stop.wait(self.source.step)

    def finish(self) -> None:
        """Score the rows every host still holds (the end of a replay)."""
        with self.polling:
            records = self._take(self.shards.flush())
        if self.log is not None:
            self.log.append(records)
        self._save()

    def healthy(self) -> bool:
        """The source answered the last poll."""
        return bool(self.source_up)

    def counts(self) -> dict[str, int]:
        """Hosts per state."""
        with self.lock:
            values = list(self.status.values())
        return {state: values.count(state) for state in STATES}

    def collect(self) -> Iterator[Any]:
        return families(self)


def families(watcher: FleetWatcher) -> Iterator[Any]:
    """What ``/metrics`` exports for a fleet: per host (labelled by the fleet's entity label, e.g.
    ``instance``) the last final row's
    ``tsdiff_anomaly_score``, ``tsdiff_anomaly`` and ``tsdiff_score_ratio`` (stamped with the
    row's time) and ``tsdiff_incident_open``; ``tsdiff_root_cause{entity, metric}`` for the top
    ``top_k`` root causes of each open incident only (so the number of series stays bounded by the
    hosts in trouble); and the fleet's ``tsdiff_fleet_entities{state}``,
    ``tsdiff_fleet_poll_duration_seconds``, ``tsdiff_fleet_rows_behind``, ``tsdiff_source_up`` and
    ``tsdiff_rows_scored_total``."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from tsdiff.watch.watcher import ratio

    def gauge(name: str, text: str, *labels: str) -> Any:
        return GaugeMetricFamily(name, text, labels=list(labels) or None)

    with watcher.lock:
        last = {e: dict(r) for e, r in watcher.last.items()}
        summary = {e: dict(v) for e, v in watcher.summary.items()}
    # the host label is the fleet's entity label (instance, ...): alerts route by it as by the host's
    # own series; "entity" where that name is one of tsdiff's own labels
    host = watcher.label if watcher.label not in ("metric", "state") else "entity"
    score = gauge("tsdiff_anomaly_score", "Score of a host's last final row.", host)
    anomaly = gauge("tsdiff_anomaly", "1 when a host's last final row is anomalous.", host)
    score_ratio = gauge("tsdiff_score_ratio", "Score / threshold of a host's last row (1: alert).", host)
    incident_open = gauge("tsdiff_incident_open", "1 while a host has an open incident.", host)
    causes = gauge("tsdiff_root_cause", "Rank of a root cause of a host's open incident.", host, "metric")
    for entity, about in summary.items():
        incident_open.add_metric([entity], float(about["open"]))
        for rank, metric in enumerate(about["causes"], 1):
            causes.add_metric([entity, metric], rank)
        row = last.get(entity)
        if row is None or row["score"] is None:
            continue
        stamp = row["seconds"]
        score.add_metric([entity], row["score"], timestamp=stamp)
        anomaly.add_metric([entity], float(row["label"]), timestamp=stamp)
        score_ratio.add_metric([entity], ratio(row["score"], about["threshold"]), timestamp=stamp)
    yield from (score, anomaly, score_ratio, incident_open, causes)
    states = gauge("tsdiff_fleet_entities", "Hosts in each state.", "state")
    for state, count in watcher.counts().items():
        states.add_metric([state], count)
    yield states
    for name, text, value in (
        ("tsdiff_fleet_poll_duration_seconds", "Seconds the last poll took.", watcher.poll_seconds),
        ("tsdiff_fleet_rows_behind", "Complete rows on the server not read yet.", watcher.rows_behind),
        ("tsdiff_source_up", "1 when the last poll of the source succeeded.", watcher.source_up),
    ):
        family = gauge(name, text)
        family.add_metric([], float(value))
        yield family
    yield CounterMetricFamily(
        "tsdiff_rows_scored", "Final rows with data, over all hosts.", value=watcher.rows_scored
    )
    refits = watcher.refits
    if refits.every is not None:
        yield CounterMetricFamily(
            "tsdiff_refits", "Refitted host models that took over.", value=refits.refits
        )
        yield CounterMetricFamily("tsdiff_refit_failures", "Host refits that failed.", value=refits.failures)
        last_round = gauge("tsdiff_fleet_refit_round_seconds", "Seconds the last finished refit round took.")
        last_round.add_metric([], refits.round_seconds)
        yield last_round

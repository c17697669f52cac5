"""Scheduled refits of a watched fleet: every host's model refitted warm on its recent rows.

:class:`FleetRefits` belongs to a :class:`~tsdiff.fleet.watch.FleetWatcher`. Once ``every`` of rows
have been read since the last round, a round starts in a background thread: the last ``window`` of
rows is read once for all hosts (one query each, as a poll reads them), and each host's model is
refitted warm on its own rows (:meth:`~tsdiff.base.BaseDetector.refit`), one host at a time, while
the old models go on scoring. A host that took the fleet's pooled threshold takes it again, scaled
to its new held-out scores. Each refitted model is saved beside the watcher's state
(``<state>.models/<host>.<round>``; the fleet directory stays as fitted) and takes over its host at
the start of the next poll (:meth:`FleetRefits.swap_ready`): the old scorer finalises the rows it
holds, the new one is warmed with them, and the state names the new model only after that swap,
so a kill at any moment restarts with a model and a scorer state that belong together. A host
whose refit fails keeps its model; the failure is logged and counted. The state also names the
round in progress and its hosts not yet in charge of a refitted model: a watcher killed during a
round resumes it at its first poll, on the same rows, instead of leaving those hosts until the next
round is due.
"""

from __future__ import annotations

import copy
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from tsdiff.errors import ParameterError, SourceError

logger = logging.getLogger(__name__)


class FleetRefits:
    """The refit schedule and the refitted models of a fleet watcher (see the module docstring).

    Parameters
    ----------
    watcher
        The :class:`~tsdiff.fleet.watch.FleetWatcher` (its source, entity label, model directory,
        threshold pool and lock are used).
    every, window
        Seconds of rows between rounds (None: no scheduled refit), and of rows each refit learns
        from.
    """

    def __init__(self, watcher: Any, every: float | None, window: float) -> None:
        if every is not None and watcher.state_path is None:
            raise ParameterError("scheduled refits (refit_every) need a state path to keep the models in")
        if every is not None and window < watcher.source.step:
            raise ParameterError(f"the refit window of {window:g} s is shorter than one step")
        self.watcher = watcher
        self.every, self.window = every, float(window)
        self.folder = None if watcher.state_path is None else Path(f"{watcher.state_path}.models")
        self.paths: dict[str, str] = {}  # hosts whose refitted model is in charge: its file
        self.ready: dict[str, str] = {}  # refitted models waiting for the next poll: host -> file
        self.thread: threading.Thread | None = None
        self.rows_since = 0
        self.rounds = self.refits = self.failures = 0
        self.round_seconds = 0.0  # how long the last finished round took
        # the round in progress: its number, last row and hosts; the hosts whose refit failed
        self.pending: dict[str, Any] | None = None
        self.failed: set[str] = set()
        self.resume: dict[str, Any] | None = None  # a round a killed watcher had not finished

    # ----------------------------------------------------------------- state
    def restore(self, saved: dict[str, Any], hosts: set[str]) -> None:
        """Take the refitted models, the rows counted and the rounds made from a saved state, and
        remove the refitted models it does not name (a round's models that had not taken over
        when the watcher stopped, or were replaced just before a kill)."""
        self.paths = {str(e): str(p) for e, p in (saved.get("models") or {}).items() if e in hosts}
        self.rows_since = int(saved.get("rows_since_refit", 0))
        self.rounds = int(saved.get("refit_rounds", 0))
        pending = saved.get("refit_pending")
        if pending and self.every is not None:
            left = [str(e) for e in pending["hosts"] if e in hosts]
            if left:
                self.resume = {
                    "round": int(pending["round"]),
                    "end_ns": int(pending["end_ns"]),
                    "hosts": left,
                }
        if self.folder is not None and self.folder.is_dir():
            kept = {Path(p).name for p in self.paths.values()}
            for path in self.folder.iterdir():
                if path.name not in kept:
                    remove_model(str(path))

    def state(self) -> dict[str, Any]:
        return {
            "models": self.paths,
            "rows_since_refit": self.rows_since,
            "refit_rounds": self.rounds,
            "refit_pending": self._pending(),
        }

    def _pending(self) -> dict[str, Any] | None:
        """The round in progress with its hosts whose refitted model is not in charge yet (None:
        no round, or every host of it is done)."""
        source = self.pending or self.resume
        if source is None:
            return None
        suffix = f".{source['round']}"
        with self.watcher.lock:
            left = [
                e
                for e in source["hosts"]
                if not self.paths.get(e, "").endswith(suffix) and e not in self.failed
            ]
        if not left:
            return None
        return {"round": source["round"], "end_ns": source["end_ns"], "hosts": left}

    # ----------------------------------------------------------------- the schedule
    def observe(self, rows: int, end_ns: int) -> None:
        """``rows`` more rows were read, up to ``end_ns``: start a round when one is due (or resume
        the one a killed watcher had not finished)."""
        self.rows_since += int(rows)
        if self.resume is not None:
            resume, self.resume = self.resume, None
            logger.warning(
                "refit round %d: resuming it for the %d hosts not refitted yet",
                resume["round"],
                len(resume["hosts"]),
            )
            self._start(resume["hosts"], resume["end_ns"], resume["round"])
            return
        if self.every is None or self.rows_since * self.watcher.source.step < self.every:
            return
        if self.thread is not None and self.thread.is_alive():
            return
        with self.watcher.lock:
            if self.ready:  # the last round's models have not all taken over yet
                return
            hosts = list(self.watcher.hosts)
        self.rows_since = 0
        self.rounds += 1
        self._start(hosts, end_ns, self.rounds)

    def _start(self, hosts: list[str], end_ns: int, round_no: int) -> None:
        self.pending = {"round": round_no, "end_ns": int(end_ns), "hosts": list(hosts)}
        self.failed = set()
        self.thread = threading.Thread(
            target=self._round, args=(hosts, end_ns, round_no), name="tsdiff-fleet-refit", daemon=True
        )
        self.thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a running round (tests, and a watcher shutting down)."""
        if self.thread is not None:
            self.thread.join(timeout)

    def _round(self, hosts: list[str], end_ns: int, round_no: int) -> None:
        started = time.perf_counter()
        try:
            self._refit_hosts(hosts, end_ns, round_no)
        finally:
            self.round_seconds = time.perf_counter() - started

    def _refit_hosts(self, hosts: list[str], end_ns: int, round_no: int) -> None:
        w = self.watcher
        start = pd.Timestamp(end_ns - round(self.window * 1e9) + w.step_ns, tz="UTC")
        end = pd.Timestamp(end_ns, tz="UTC")
        try:
            frames = w.source.read_entities(start, end, w.label, columns=w.columns)
        except SourceError as exc:
            logger.warning("refit round %d: reading the rows failed (%s); the models go on", round_no, exc)
            with w.lock:
                self.failures += len(hosts)
                self.failed.update(hosts)
            return
        assert self.folder is not None
        self.folder.mkdir(exist_ok=True)
        logger.warning("refit round %d: refitting %d hosts on %s .. %s", round_no, len(hosts), start, end)
        t0, done = time.perf_counter(), 0
        for entity in hosts:
            try:
                path = self._refit(entity, frames.pop(entity, None), round_no)
            except Exception as exc:  # one host's refit must never stop the fleet
                why = f"{type(exc).__name__}: {exc}"
                logger.warning("refit round %d: %s keeps its model (%s)", round_no, entity, why)
                with w.lock:
                    self.failures += 1
                    self.failed.add(entity)
                continue
            with w.lock:
                self.ready[entity] = path
            done += 1
        logger.warning(
            "refit round %d: %d of %d hosts refitted in %.0f s",
            round_no,
            done,
            len(hosts),
            time.perf_counter() - t0,
        )

    def _refit(self, entity: str, frame: pd.DataFrame | None, round_no: int) -> str:
        """Refit one host's model in charge on its rows; returns the file it is saved in."""
        import tsdiff
        from tsdiff.fleet.pooling import POOLED, host_threshold, takes_pool
        from tsdiff.fleet.storage import entity_dirname, entity_path

        w = self.watcher
        if frame is None or frame.dropna(how="all").empty:
            raise ParameterError("no rows in the refit window")
        with w.lock:
            current = self.paths.get(entity)
        model = tsdiff.load(current or entity_path(w.model_dir, entity))
        names = [str(c) for c in model.feature_names_in_]
        rows = frame.reindex(columns=names).set_axis(list(model.feature_names_in_), axis=1)
        method = model.threshold_method_
        model = copy.deepcopy(model).refit(rows.dropna(how="all"))
        pool = w.threshold_pool
        if pool is not None and (method == POOLED or takes_pool(pool.get("rule", "auto"), method)):
            model.set_threshold(host_threshold(model.calibration_scores_, pool), POOLED)
        assert self.folder is not None
        path = self.folder / f"{entity_dirname(entity)}.{round_no}"
        model.save(path)
        return str(path)

    # ----------------------------------------------------------------- taking over
    def swap_ready(self, shards: Any, take: Any) -> tuple[list[dict[str, Any]], list[str]]:
        """Put the refitted models that are ready in charge of their hosts (between two polls, under
        the watcher's ``polling`` lock); ``take`` keeps a shard outcome and returns its log records.
        Returns those records (the rows the old models finalised) and the files of the models no
        longer in charge, to remove once the state no longer names them."""
        with self.watcher.lock:
            ready, self.ready = self.ready, {}
        records: list[dict[str, Any]] = []
        retired = []
        for entity, path in sorted(ready.items()):
            try:
                outcome = shards.swap(entity, path)
            except Exception as exc:  # the old model goes on
                logger.warning("%s: the refitted model could not take over (%s)", entity, exc)
                with self.watcher.lock:
                    self.failures += 1
                    self.failed.add(entity)
                retired.append(path)
                continue
            records += take(outcome)
            with self.watcher.lock:
                old, self.paths[entity] = self.paths.get(entity), path
                self.refits += 1
            if old is not None:
                retired.append(old)
        return records, retired


def remove_model(path: str) -> None:
    """Delete a saved model no state refers to any more (a refitted one that was replaced)."""
    shutil.rmtree(path, ignore_errors=True)

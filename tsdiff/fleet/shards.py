"""The hosts of a watched fleet, split into shards: each shard scores its hosts' rows.

:class:`HostScorers` holds the models and :class:`~tsdiff.stream.StreamScorer` of some hosts and
turns one poll's rows into log records, host states, incident summaries and the scorers' states
(what the watcher saves). :class:`~tsdiff.fleet.watch.FleetWatcher` uses one in its own process,
or (``workers``/``scheduler``) one per Dask worker as a Dask actor, when one process cannot score
every host within a step: the watcher still reads each query once per poll, sends each shard its
hosts' rows, and writes the log and the state itself, so a restart resumes exactly as with one
process.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.errors import ParameterError, TsdiffError

logger = logging.getLogger(__name__)


def shard_of(entity: str, shards: int) -> int:
    """The shard a host belongs to: stable across restarts and processes (not Python's ``hash``)."""
    return zlib.crc32(entity.encode()) % shards


def empty_outcome() -> dict[str, Any]:
    """What a shard reports of a poll: ``records`` (the log lines of its hosts' final rows),
    ``status`` and ``errors`` by host, ``summary`` by host (``threshold``; ``open``: an incident is
    open; ``causes``: its top root causes), ``states`` (each scorer's state, to save) and
    ``changes`` (incident changes, as log messages)."""
    return {"records": [], "status": {}, "errors": {}, "summary": {}, "states": {}, "changes": []}


class HostScorers:
    """The stream scorers of some of a fleet's hosts (one shard).

    Parameters
    ----------
    model_dir
        The fleet's model directory (every worker must read it at this path).
    entities
        The hosts of this shard.
    states
        Saved scorer states by host (a restart); a host without one starts afresh.
    top_k
        Metrics named per row, and root causes summarised per open incident.
    segmentation
        How a host's final rows are cut into incidents (a
        :class:`~tsdiff.segmentation.SegmentRules`; None: the detector's own rules).
    models
        Hosts whose model is not the fleet directory's (a refitted one): the file to load instead.
    adapt
        Each host's threshold follows its stream (``StreamScorer``'s ``adapt``; None: fixed).
    """

    def __init__(
        self,
        model_dir: str | Path,
        entities: Iterable[str] = (),
        states: dict[str, Any] | None = None,
        top_k: int = 3,
        segmentation: Any = None,
        models: dict[str, str] | None = None,
        adapt: str | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.top_k = int(top_k)
        self.segmentation = segmentation
        self.adapt = adapt
        self.models: dict[str, Any] = {}
        self.scorers: dict[str, Any] = {}
        for entity in entities:
            self.add(entity, (states or {}).get(entity), (models or {}).get(entity))

    def add(self, entity: str, state: dict[str, Any] | None = None, path: str | None = None) -> None:
        """Load a host's model (from the fleet directory, or ``path``) and start, or resume, its
        scorer."""
        import tsdiff
        from tsdiff.fleet.storage import entity_path
        from tsdiff.stream import StreamScorer

        model = tsdiff.load(entity_path(self.model_dir, entity) if path is None else path)
        self.models[entity] = model
        if state is None:
            self.scorers[entity] = StreamScorer(
                model, top_k=self.top_k, adapt=self.adapt, segmentation=self.segmentation
            )
        else:
            self.scorers[entity] = StreamScorer.from_state(model, state)

    def swap(self, entity: str, path: str) -> dict[str, Any]:
        """Put the model saved at ``path`` (a refit) in charge of a host, losing and repeating no
        row: the old scorer finalises the rows it holds and ends its incident (as at the end of a
        stream), the new one is warmed with the rows the old one kept (their scores are not emitted
        again). Returns the outcome of those last rows."""
        import tsdiff
        from tsdiff.stream import StreamScorer

        model = tsdiff.load(path)
        old = self.scorers[entity]
        result = empty_outcome()
        out = old.flush()
        self._outcome(entity, out, result)
        last = old.incidents.rows[-1].time if old.incidents.rows else None
        for change, incident in old.incidents.close(last):
            result["changes"].append(change_message(entity, change, incident))
        scorer = StreamScorer(model, top_k=self.top_k, adapt=self.adapt, segmentation=old.incidents.rules)
        held = old.buffered_frame()
        if len(held):
            scorer.warm(held.set_axis(list(model.feature_names_in_), axis=1))
        scorer.incidents.incidents_opened = old.incidents.incidents_opened  # ids go on, never reused
        self.models[entity], self.scorers[entity] = model, scorer
        result["summary"][entity] = {"threshold": float(scorer.threshold), "open": False, "causes": []}
        result["states"][entity] = scorer.state()
        return result

    def entities(self) -> list[str]:
        return list(self.scorers)

    def warm_rows(self) -> int:
        """Rows of history the hosts whose scorer has no row yet want (0: none is new)."""
        return max((sc.warm_rows() for sc in self.scorers.values() if sc.rows_received == 0), default=0)

    def warm(self, frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
        """Warm the scorers that have no row yet with their host's rows before the first one to
        score (see :meth:`~tsdiff.stream.StreamScorer.warm`); returns their states."""
        states = {}
        for entity, scorer in self.scorers.items():
            frame = frames.get(entity)
            if scorer.rows_received or frame is None or not frame.notna().to_numpy().any():
                continue
            names = [str(c) for c in scorer.detector.feature_names_in_]
            rows = frame.reindex(columns=names).set_axis(list(scorer.detector.feature_names_in_), axis=1)
            scorer.warm(rows.iloc[-scorer.warm_rows() :])
            states[entity] = scorer.state()
        return states

    def update(self, frames: dict[str, pd.DataFrame], grid: pd.DatetimeIndex) -> dict[str, Any]:
        """Score one poll's rows of every host of the shard (a host absent from ``frames`` had no
        series: its rows are gaps). Returns what :meth:`outcome` describes."""
        result = empty_outcome()
        for entity, scorer in self.scorers.items():
            names = [str(c) for c in scorer.detector.feature_names_in_]
            frame = frames.get(entity)
            if frame is None:  # no series at all: the host is gone or down; its rows are gaps
                frame = pd.DataFrame(np.nan, index=grid, columns=names)
            frame = frame.reindex(columns=names).set_axis(list(scorer.detector.feature_names_in_), axis=1)
            try:
                out = scorer.update(frame)
            except TsdiffError as exc:
                result["status"][entity], result["errors"][entity] = "failed", str(exc)
                continue
            result["status"][entity] = "stale" if frame.isna().all().all() else "scored"
            self._outcome(entity, out, result)
        return result

    def flush(self) -> dict[str, Any]:
        """Score the rows every host still holds (the end of a replay)."""
        result = empty_outcome()
        for entity, scorer in self.scorers.items():
            self._outcome(entity, scorer.flush(), result)
        return result

    def _outcome(self, entity: str, out: pd.DataFrame, result: dict[str, Any]) -> None:
        from tsdiff.watch.rowlog import final_records

        scorer = self.scorers[entity]
        result["records"].extend({"entity": entity, **record} for record in final_records(out))
        for change, incident in scorer.changes:
            result["changes"].append(change_message(entity, change, incident))
        incident = scorer.incidents.open_incident
        named = [] if incident is None else (incident.root_causes or incident.top_metrics)[: self.top_k]
        result["summary"][entity] = {
            "threshold": float(scorer.threshold),
            "open": incident is not None,
            "causes": [str(m) for m in named],
        }
        result["states"][entity] = scorer.state()


def change_message(entity: str, change: str, incident: Any) -> str:
    """An incident change of a host, as the fleet watcher logs it."""
    causes = ", ".join(map(str, (incident.root_causes or incident.top_metrics)[:3]))
    return f"{entity}: incident {incident.id} {change} (root causes {causes})"


def merge(outcomes: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The outcomes of several shards as one."""
    merged = empty_outcome()
    for outcome in outcomes:
        merged["records"] += outcome["records"]
        merged["changes"] += outcome["changes"]
        for key in ("status", "errors", "summary", "states"):
            merged[key].update(outcome[key])
    return merged


class DaskShards:
    """Hosts split over the workers of a Dask cluster, one :class:`HostScorers` actor per worker.

    ``client`` is a ``distributed.Client``; ``hosts`` the fleet's hosts with their saved states.
    """

    def __init__(
        self,
        client: Any,
        model_dir: Path,
        hosts: dict[str, Any],
        top_k: int,
        segmentation: Any = None,
        models: dict[str, str] | None = None,
        adapt: str | None = None,
    ) -> None:
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise ParameterError("the Dask cluster has no workers to score the fleet on")
        self.client = client
        self.n = len(workers)
        groups: list[list[str]] = [[] for _ in workers]
        for entity in hosts:
            groups[shard_of(entity, self.n)].append(entity)
        futures = [
            client.submit(
                HostScorers,
                str(model_dir),
                group,
                {e: hosts[e] for e in group},
                top_k,
                segmentation,
                {e: p for e, p in (models or {}).items() if e in group},
                adapt,
                actor=True,
                workers=[worker],
                pure=False,
            )
            for worker, group in zip(workers, groups, strict=True)
        ]
        self.actors = [f.result() for f in futures]
        self.futures = futures  # the actors live as long as their futures

    def _split(self, frames: dict[str, pd.DataFrame]) -> list[dict[str, pd.DataFrame]]:
        """Each shard's part of a poll's frames, in the order of the actors."""
        parts: list[dict[str, pd.DataFrame]] = [{} for _ in self.actors]
        for entity, frame in frames.items():
            parts[shard_of(entity, self.n)][entity] = frame
        return parts

    def update(self, frames: dict[str, pd.DataFrame], grid: pd.DatetimeIndex) -> dict[str, Any]:
        parts = self._split(frames)
        calls = [actor.update(part, grid) for actor, part in zip(self.actors, parts, strict=True)]
        return merge(call.result() for call in calls)

    def flush(self) -> dict[str, Any]:
        return merge(call.result() for call in [actor.flush() for actor in self.actors])

    def add(self, entity: str) -> None:
        self.actors[shard_of(entity, self.n)].add(entity).result()

    def swap(self, entity: str, path: str) -> dict[str, Any]:
        return self.actors[shard_of(entity, self.n)].swap(entity, path).result()

    def warm_rows(self) -> int:
        return max(call.result() for call in [actor.warm_rows() for actor in self.actors])

    def warm(self, frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
        parts = self._split(frames)
        states: dict[str, Any] = {}
        for call in [actor.warm(part) for actor, part in zip(self.actors, parts, strict=True)]:
            states.update(call.result())
        return states

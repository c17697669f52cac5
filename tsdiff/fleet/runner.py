"""Fit and score one detector per entity (host, service) of a long table, on a Dask cluster."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tsdiff.errors import InputError, ModelFormatError, ParameterError
from tsdiff.fleet.cluster import fleet_client
from tsdiff.fleet.pooling import POOLED, apply_thresholds, check_rule, choose_thresholds
from tsdiff.fleet.storage import check_entity_names, entity_type, read_index, update_index
from tsdiff.fleet.tasks import RECORD_COLUMNS, fit_group, score_group, split_entities

logger = logging.getLogger(__name__)

SCORE_COLUMNS = ["score", "label", "top_metrics", "root_causes"]


@dataclass
class FleetResult:
    """What a fleet run did.

    Attributes
    ----------
    entities
        One row per entity: ``entity``, ``status`` (``"ok"`` or ``"failed"``), ``rows``, ``seconds``
        (on its worker), ``error`` (empty when ok), and for scoring ``anomalous_rows`` and ``events``.
    scores
        Scoring only: one row per scored input row, ``<entity column>``, ``<time column>``,
        ``score``, ``label``, ``top_metrics`` and ``root_causes`` (``;``-separated metric names on
        the rows of each event). Empty after fitting.
    threshold_pool
        Fitting only: the pooled tail (``z``, ``risk``, ``hosts``, ``scores``, ``rule``, and
        ``takers``: the hosts that took it), or None when no host took a pooled threshold.
    """

    entities: pd.DataFrame
    scores: pd.DataFrame
    #: fitting only: the threshold pooled over the fleet (:mod:`tsdiff.fleet.pooling`), or None
    threshold_pool: dict[str, Any] | None = None

    @property
    def failed(self) -> pd.DataFrame:
        """Entities that failed, with their error messages."""
        return self.entities.loc[self.entities["status"] == "failed", ["entity", "error"]].reset_index(
            drop=True
        )

    @property
    def ok(self) -> list[Any]:
        """Entities that succeeded."""
        return self.entities.loc[self.entities["status"] == "ok", "entity"].tolist()

    def __repr__(self) -> str:
        return (
            f"FleetResult({len(self.entities)} entities, {len(self.failed)} failed, "
            f"{len(self.scores)} scored rows)"
        )


def _is_dask_frame(data: Any) -> bool:
    return type(data).__module__.startswith("dask")


def _check_table(data: Any, entity_col: str, time_col: str | None) -> Any:
    """Check the long table's key columns; text timestamps become datetimes (ISO 8601, never a
    guessed day/month order; NaT where unreadable)."""
    if not isinstance(data, pd.DataFrame) and not _is_dask_frame(data):
        raise InputError(f"fleet data must be a pandas or Dask DataFrame, got {type(data).__name__}")
    for role, column in (("entity", entity_col), ("time", time_col)):
        if column is not None and column not in data.columns:
            raise InputError(
                f"no {role} column {column!r} (columns: {list(data.columns)[:8]})", column=column
            )
    if isinstance(data, pd.DataFrame):
        if len(data) == 0:
            raise InputError("the fleet data has no rows")
        if data[entity_col].isna().any():
            logger.warning("%d rows without an entity are ignored", int(data[entity_col].isna().sum()))
        check_entity_names(data[entity_col].dropna().unique())
        if time_col is not None and not _time_like(data[time_col]):
            times = pd.to_datetime(data[time_col], errors="coerce", format="ISO8601")
            if times.isna().all():
                raise InputError(f"time column {time_col!r} holds no readable timestamp", column=time_col)
            data = data.assign(**{time_col: times})
    return data


def _time_like(column: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype)


def _run(client: Any, data: Any, entity_col: str, function: Any, args: tuple, verbose: bool) -> list[Any]:
    """Run ``function(rows, entity_col, *args)`` over the entities; returns [(key, result or exception)].

    A pandas table is cut into one task per entity (the best balance and isolation); a Dask table is
    shuffled so each entity lies in one partition, and each partition is one task, run where its data
    already is.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    if _is_dask_frame(data):
        import dask

        parts = data.shuffle(on=entity_col).to_delayed()
        futures = client.compute([dask.delayed(function)(p, entity_col, *args) for p in parts])
        keys = [f"partition {i}" for i in range(len(futures))]
    else:
        groups = list(split_entities(data, entity_col))
        if not groups:
            raise InputError(f"no row has an entity in column {entity_col!r}", column=entity_col)
        scattered = client.scatter([rows for _, rows in groups], hash=False)
        futures = [client.submit(function, rows, entity_col, *args, pure=False) for rows in scattered]
        keys = [entity for entity, _ in groups]
    by_future = {f.key: k for f, k in zip(futures, keys, strict=True)}
    out = []
    with tqdm(
        total=len(futures), desc="entities", unit="task", disable=None if verbose else True, leave=False
    ) as bar:
        for future in as_completed(futures):
            try:
                out.append((by_future[future.key], future.result()))
            except Exception as exc:  # the task itself died (worker lost, killed, out of memory)
                out.append((by_future[future.key], exc))
            bar.update(1)
    return out


def _records(outcomes: list[Any], score: bool) -> tuple[list[dict], list[pd.DataFrame]]:
    records, frames = [], []
    for key, outcome in outcomes:
        if isinstance(outcome, BaseException):
            error = f"{type(outcome).__name__}: {outcome}"
            records.append({"entity": key, "status": "failed", "rows": 0, "seconds": 0.0, "error": error})
            continue
        if score:
            outcome, frame = outcome
            if frame is not None:
                frames.append(frame)
        records.extend(outcome)
    return records, frames


def _entities_frame(records: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(records)
    if frame.empty:
        frame = pd.DataFrame(columns=RECORD_COLUMNS)
    return frame.sort_values("entity", key=lambda s: s.astype(str), kind="stable").reset_index(drop=True)


def fit_fleet(
    data: Any,
    detector: Any,
    model_dir: str | Path,
    *,
    entity_col: str = "entity",
    time_col: str | None = "timestamp",
    client: Any = None,
    address: str | None = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    processes: bool = True,
    verbose: bool = True,
    source: dict[str, Any] | None = None,
    threshold: str = "auto",
) -> FleetResult:
    """Fit one copy of ``detector`` per entity of a long table and save each under ``model_dir``.

    Parameters
    ----------
    data
        A long table: one row per (entity, timestamp), one numeric column per metric; a pandas
        DataFrame, or a Dask DataFrame whose partitions the workers read themselves. Metric
        columns that hold no value for an entity are not that entity's metrics.
    detector
        An unfitted tsdiff detector; each entity gets a clone of it (its own progress bar is off).
    model_dir
        Directory of the fleet: ``fleet.json`` and one saved model per entity (see
        :mod:`tsdiff.fleet.storage`). On a multi-machine cluster it must be storage every worker
        can write (a shared file system). Entities fitted before and absent now keep their models.
    entity_col, time_col
        The entity column and the time column (None: the rows of each entity are in time order).
    client, address
        A ``distributed.Client`` to use, or a scheduler address to connect to; with neither, a
        local cluster of ``n_workers`` processes (``processes=False``: threads) is started and shut
        down afterwards.
    verbose
        A progress bar over entities on stderr.
    source
        Where the table came from (a Prometheus source's settings and its entity label), saved in
        the index for ``tsdiff fleet watch`` (see :func:`tsdiff.fleet.live.fit_fleet_from_prometheus`).
    threshold
        How each host's label threshold is chosen (:mod:`tsdiff.fleet.pooling`): ``"auto"`` (hosts
        whose own held-out scores are too few for a fitted tail take one pooled over the fleet's
        hosts, the others keep their own), ``"pooled"`` (every host takes the pooled one) or
        ``"host"`` (every host keeps its own). The pool is saved in the index (``threshold_pool``).

    Returns
    -------
    FleetResult
        Per-entity status; an entity that failed (bad data, a fit error, a lost worker) is listed
        with its error in ``result.failed``, and never stops the others. With a Dask DataFrame, a
        task lost as a whole (a worker killed mid-partition) is listed as ``"partition <i>"``: the
        client never sees which entities that partition held.
    """
    from tsdiff.base import BaseDetector

    if not isinstance(detector, BaseDetector):
        raise ParameterError(f"detector must be a tsdiff detector, got {type(detector).__name__}")
    check_rule(threshold)
    data = _check_table(data, entity_col, time_col)
    model_dir = Path(model_dir)
    try:
        known = {name: entry.get("type") for name, entry in read_index(model_dir)["entities"].items()}
    except ModelFormatError:
        known = {}
    entities = data[entity_col].dropna().unique()
    check_entity_names(entities.compute() if _is_dask_frame(data) else entities, known)
    model_dir.mkdir(parents=True, exist_ok=True)
    with fleet_client(client, address, n_workers, threads_per_worker, processes) as c:
        outcomes = _run(c, data, entity_col, fit_group, (time_col, detector, str(model_dir)), verbose)
        records, _ = _records(outcomes, score=False)
        pool = _pool_thresholds(c, records, model_dir, float(detector.risk), threshold)
    from tsdiff.persist import encode_params

    fitted = {
        str(r["entity"]): {
            "rows": r["rows"],
            "columns": r["columns"],
            "threshold": r["threshold"],
            "threshold_method": r["threshold_method"],
            "type": entity_type(r["entity"]),
        }
        for r in records
        if r["status"] == "ok"
    }
    failed = {str(r["entity"]): r["error"] for r in records if r["status"] == "failed"}
    settings = {
        "entity_column": entity_col,
        "time_column": time_col,
        "detector": {
            "class": type(detector).__name__,
            "params": encode_params(detector.get_params(deep=False)),
        },
    }
    if source is not None:
        settings["source"] = source
    if pool is not None:
        settings["threshold_pool"] = pool
    update_index(model_dir, settings, fitted, failed)
    result = FleetResult(
        _entities_frame([{k: r[k] for k in RECORD_COLUMNS} for r in records]), pd.DataFrame(), pool
    )
    _log_failures(result, "fit")
    return result


def _pool_thresholds(
    client: Any, records: list[dict], model_dir: Path, risk: float, rule: str
) -> dict[str, Any] | None:
    """Choose the fitted hosts' thresholds under ``rule`` (:mod:`tsdiff.fleet.pooling`), set them in
    their saved models (on the workers) and in ``records``; the pool's description, or None."""
    ok = {str(r["entity"]): r for r in records if r["status"] == "ok"}
    hosts = {name: (r["calibration"], r["threshold_method"]) for name, r in ok.items()}
    hosts = {name: h for name, h in hosts.items() if h[0] is not None}  # None: saved without them
    for r in records:
        r.pop("calibration", None)
    thresholds, pool = choose_thresholds(hosts, risk, rule)
    if not thresholds:
        return None
    names = sorted(thresholds)
    size = max(1, -(-len(names) // (4 * max(1, len(client.nthreads())))))  # 4 chunks per worker
    chunks = [{n: thresholds[n] for n in names[i : i + size]} for i in range(0, len(names), size)]
    futures = [client.submit(apply_thresholds, str(model_dir), chunk, pure=False) for chunk in chunks]
    failed = {f["entity"] for future in futures for f in future.result()}
    for name, value in thresholds.items():
        if name not in failed:
            ok[name].update(threshold=value, threshold_method=POOLED)
    pool["takers"] = len(thresholds) - len(failed)
    logger.info(
        "%s threshold: %d of %d hosts take the pooled tail (z %.3g over %d scores)",
        rule, len(thresholds) - len(failed), len(hosts), pool["z"], pool["scores"],
    )  # fmt: skip
    return pool


def score_fleet(
    data: Any,
    model_dir: str | Path,
    *,
    entity_col: str | None = None,
    time_col: str | None = None,
    top_k: int = 3,
    client: Any = None,
    address: str | None = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    processes: bool = True,
    verbose: bool = True,
) -> FleetResult:
    """Score each entity of a long table with its own model from ``model_dir``.

    ``entity_col`` and ``time_col`` default to those the fleet was fitted with; ``top_k`` metrics
    are named per event. The other parameters are those of :func:`fit_fleet`. An entity without a
    model, with columns its model does not know, or with bad data is listed in ``result.failed``;
    the rows of every other entity are in ``result.scores``.
    """
    index = read_index(model_dir)
    entity_col = entity_col or index["entity_column"]
    time_col = time_col if time_col is not None else index.get("time_column")
    data = _check_table(data, entity_col, time_col)
    with fleet_client(client, address, n_workers, threads_per_worker, processes) as c:
        args = (time_col, str(model_dir), int(top_k), dict(index.get("failed", {})))
        outcomes = _run(c, data, entity_col, score_group, args, verbose)
    records, frames = _records(outcomes, score=True)
    key_cols = [entity_col, time_col or "row"]
    if frames:
        scores = pd.concat(frames, ignore_index=True)
        scores = scores.sort_values(key_cols, key=_sort_key, kind="stable").reset_index(drop=True)
    else:
        scores = pd.DataFrame(columns=[*key_cols, *SCORE_COLUMNS])
    result = FleetResult(_entities_frame(records), scores)
    _log_failures(result, "score")
    return result


def _sort_key(column: pd.Series) -> pd.Series:
    return column if _time_like(column) else column.astype(str)


def _log_failures(result: FleetResult, what: str) -> None:
    failed = result.failed
    if len(failed):
        logger.warning("%s: %d of %d entities failed", what, len(failed), len(result.entities))

"""What a worker does for a group of rows: split them by entity, then fit or score each entity alone.

Every entity is handled inside its own ``try``: an entity whose data or model is bad becomes a
failure record (entity and error message) and the others carry on. These functions run on Dask
workers, so they take and return only plain, picklable values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd

from tsdiff.errors import ColumnMismatchError, InputError
from tsdiff.fleet.storage import entity_path
from tsdiff.serialize import json_ready

logger = logging.getLogger(__name__)

#: columns of the per-entity records (``FleetResult.entities``)
RECORD_COLUMNS = ["entity", "status", "rows", "seconds", "error"]


def split_entities(frame: pd.DataFrame, entity_col: str) -> Iterator[tuple[Any, pd.DataFrame]]:
    """(entity, its rows) for each entity in ``frame``, sorted; rows without an entity are skipped."""
    for entity, part in frame.groupby(entity_col, sort=True, dropna=True):
        yield json_ready(entity), part  # entity names end up in JSON and in file names


def entity_metrics(
    part: pd.DataFrame, entity_col: str, time_col: str | None, drop_empty: bool = True
) -> pd.DataFrame:
    """One entity's rows as a detector input: indexed by time (sorted), one column per metric.

    With ``drop_empty``, metric columns that hold no value for this entity are dropped (a host that
    does not report a metric); rows keep their order when there is no time column.
    """
    metrics = part.drop(columns=[entity_col])
    if time_col is not None:
        metrics = metrics.set_index(time_col).sort_index(kind="stable")
    else:
        metrics = metrics.reset_index(drop=True)
    return metrics.loc[:, metrics.notna().any(axis=0)] if drop_empty else metrics


def _record(entity: Any, rows: int, started: float, error: str = "", **extra: Any) -> dict[str, Any]:
    """One entity's outcome: ``RECORD_COLUMNS`` plus what the task adds (``extra``)."""
    status = "failed" if error else "ok"
    seconds = time.perf_counter() - started
    return {"entity": entity, "status": status, "rows": rows, "seconds": seconds, "error": error, **extra}


def _failure(entity: Any, rows: int, started: float, exc: BaseException) -> dict[str, Any]:
    if not isinstance(exc, InputError):  # a bad entity's data is expected; anything else is logged in full
        logger.warning("entity %r failed", entity, exc_info=exc)
    return _record(entity, rows, started, error=f"{type(exc).__name__}: {exc}")


def fit_group(
    frame: pd.DataFrame, entity_col: str, time_col: str | None, template: Any, model_dir: str
) -> list[dict[str, Any]]:
    """Fit a copy of ``template`` to every entity in ``frame`` and save it under ``model_dir``."""
    from sklearn.base import clone

    records = []
    for entity, part in split_entities(frame, entity_col):
        started = time.perf_counter()
        try:
            metrics = entity_metrics(part, entity_col, time_col)
            if metrics.shape[1] == 0:
                raise InputError(f"entity {entity!r} has no metric with any value", row=entity)
            detector = clone(template)
            if "verbose" in detector.get_params(deep=False):
                detector.set_params(verbose=False)  # one progress bar over entities, not one per entity
            detector.fit(metrics)
            detector.save(entity_path(model_dir, entity))
        except Exception as exc:  # one entity's failure must not stop the others
            records.append(_failure(entity, len(part), started, exc))
            continue
        columns = [json_ready(c) for c in metrics.columns]
        records.append(
            _record(
                entity,
                len(part),
                started,
                columns=columns,
                threshold=float(detector.threshold_),
                threshold_method=str(detector.threshold_method_),
                calibration=detector.calibration_scores_,  # for a threshold pooled over the fleet
            )
        )
    return records


def score_group(
    frame: pd.DataFrame,
    entity_col: str,
    time_col: str | None,
    model_dir: str,
    top_k: int = 3,
    fit_failures: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], pd.DataFrame | None]:
    """Score every entity in ``frame`` with its saved model: (records, scored rows of all entities).

    ``fit_failures`` (entity name -> error of its last fit) explains why an entity has no model.
    """
    import tsdiff

    records, scored = [], []
    for entity, part in split_entities(frame, entity_col):
        started = time.perf_counter()
        try:
            path = entity_path(model_dir, entity)
            if not path.is_dir():
                why = (fit_failures or {}).get(str(entity))
                because = f" (its fit failed: {why})" if why else ""
                raise InputError(f"no model for entity {entity!r} in {model_dir}{because}", row=entity)
            detector = tsdiff.load(path)
            metrics = _model_columns(entity_metrics(part, entity_col, time_col, drop_empty=False), detector)
            result = detector.detect(metrics, top_k=top_k)
        except Exception as exc:
            records.append(_failure(entity, len(part), started, exc))
            continue
        out = pd.DataFrame(
            {
                entity_col: entity,
                time_col or "row": result.scores.index,
                "score": result.scores.to_numpy(),
                "label": result.labels.to_numpy(),
            }
        )
        for column in ("top_metrics", "root_causes"):
            out[column] = result.event_metrics(column).to_numpy()
        scored.append(out)
        flagged = int(result.labels.sum())
        records.append(_record(entity, len(part), started, anomalous_rows=flagged, events=len(result.events)))
    return records, (pd.concat(scored, ignore_index=True) if scored else None)


def _model_columns(metrics: pd.DataFrame, detector: Any) -> pd.DataFrame:
    """The columns the entity's model was fitted on, in its order.

    Columns of the long table that hold no value for this entity are not its metrics and are
    dropped; any other difference from the model's columns is a :class:`ColumnMismatchError`.
    """
    expected = list(detector.feature_names_in_)
    known = set(expected)
    missing = [c for c in expected if c not in metrics.columns]
    extra = [c for c in metrics.columns if c not in known and metrics[c].notna().any()]
    if missing or extra:
        raise ColumnMismatchError(missing=missing, extra=extra)
    return metrics[expected]

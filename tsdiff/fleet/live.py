"""A fleet from Prometheus: one model per host fitted from the server, the hosts told apart by a label.

:func:`fit_fleet_from_prometheus` reads every query of a :class:`~tsdiff.sources.prometheus.
PrometheusSource` once for all hosts, splits the series by the value of the entity label (a host's
``instance``; the label is dropped from the column names, so every host has the same columns), and
fits one model per host with :func:`~tsdiff.fleet.runner.fit_fleet` (on Dask). The source and the
label are saved in the fleet index, so ``tsdiff fleet watch`` asks the same queries
(:mod:`tsdiff.fleet.watch`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tsdiff.errors import SourceError

#: the time column of the long table a fleet is fitted on
TIME_COLUMN = "timestamp"


def entity_table(frames: dict[str, pd.DataFrame], label: str) -> pd.DataFrame:
    """The per-entity frames of :meth:`PrometheusSource.read_entities` as one long table: the
    entity in a column named after the label, the time in ``timestamp``."""
    parts = [
        frame.rename_axis(TIME_COLUMN).reset_index().assign(**{label: entity})
        for entity, frame in sorted(frames.items())
    ]
    table = pd.concat(parts, ignore_index=True, sort=False)
    return table[[label, TIME_COLUMN, *[c for c in table.columns if c not in (label, TIME_COLUMN)]]]


def fit_fleet_from_prometheus(
    source: Any, label: str, start: Any, end: Any, detector: Any, model_dir: str | Path, **cluster: Any
) -> Any:
    """Fit one copy of ``detector`` per value of ``label`` among the series of ``source`` between
    ``start`` and ``end``; ``cluster`` as for :func:`~tsdiff.fleet.runner.fit_fleet`. An entity
    with too little data is reported in the result's ``failed``, never fatal."""
    from tsdiff.fleet.runner import fit_fleet

    frames = source.read_entities(start, end, label)
    if not frames:
        queries = ", ".join(q for _, q in source.queries)
        raise SourceError(f"no series with the label {label!r} between {start} and {end}", query=queries)
    table = entity_table(frames, label)
    settings = {**source.to_dict(), "entity_label": label}
    return fit_fleet(
        table, detector, model_dir, entity_col=label, time_col=TIME_COLUMN, source=settings, **cluster
    )

"""The one return type of every loader, :class:`Dataset`, and small helpers on 0/1 labels."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.errors import DatasetError

ROOT_CAUSE_COLUMNS = ("start", "end", "metrics")
GRAPH_COLUMNS = ("cause", "effect", "lag", "weight")


@dataclass(eq=False, repr=False)
class Dataset:
    """A benchmark series split into a training and a labelled test part.

    Parameters
    ----------
    name
        Short identifier, e.g. ``"SMD/machine-1-2"``.
    train
        Numeric columns of the training part (unlabelled, or normal by construction).
    test
        Numeric columns of the test part, same column names as ``train``.
    labels
        0/1 ``int64`` Series named ``"label"``, aligned to ``test.index`` (1 = anomalous row).
    root_causes
        One row per anomalous segment: ``start``, ``end`` (0-based test row positions, half-open
        ``[start, end)``), ``metrics`` (list of column names), plus any extra columns (e.g. ``kind``).
    train_labels
        0/1 labels of the training part, when the data labels it.
    graph
        Known causal graph: ``cause``, ``effect``, ``lag``, ``weight`` (plus any extra columns).
    metadata
        Free-form facts about the source (files, protocol, quirks found while loading).
    """

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    labels: pd.Series
    root_causes: pd.DataFrame | None = None
    train_labels: pd.Series | None = None
    graph: pd.DataFrame | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Loaders build these; a failure here is a loader bug or a corrupt file, so say which dataset.
        where = f"dataset {self.name!r}"
        if not isinstance(self.train, pd.DataFrame) or not isinstance(self.test, pd.DataFrame):
            raise DatasetError(f"{where}: train and test must be DataFrames")
        if list(self.train.columns) != list(self.test.columns):
            raise DatasetError(f"{where}: train and test columns differ")
        if not isinstance(self.labels, pd.Series) or not self.labels.index.equals(self.test.index):
            raise DatasetError(f"{where}: labels must be a Series aligned to test.index")
        self.labels = _as_label_series(self.labels, where)
        if self.train_labels is not None:
            if not self.train_labels.index.equals(self.train.index):
                raise DatasetError(f"{where}: train_labels must be aligned to train.index")
            self.train_labels = _as_label_series(self.train_labels, where)
        if self.root_causes is not None:
            missing = [c for c in ROOT_CAUSE_COLUMNS if c not in self.root_causes.columns]
            if missing:
                raise DatasetError(f"{where}: root_causes lacks column(s) {missing}")
        if self.graph is not None:
            missing = [c for c in GRAPH_COLUMNS if c not in self.graph.columns]
            if missing:
                raise DatasetError(f"{where}: graph lacks column(s) {missing}")

    @property
    def columns(self) -> list[str]:
        """Column names shared by ``train`` and ``test``."""
        return list(self.test.columns)

    @property
    def anomaly_ratio(self) -> float:
        """Fraction of test rows labelled 1."""
        return float(self.labels.mean()) if len(self.labels) else 0.0

    def segments(self) -> list[tuple[int, int]]:
        """Half-open ``[start, end)`` test row positions of the runs of 1s in ``labels``."""
        return segments(self.labels)

    def summary(self) -> dict[str, Any]:
        """Sizes and label statistics, for logs and reports."""
        return {
            "name": self.name,
            "train_rows": len(self.train),
            "test_rows": len(self.test),
            "columns": self.test.shape[1],
            "anomalous_rows": int(self.labels.sum()),
            "anomaly_ratio": self.anomaly_ratio,
            "segments": len(self.segments()),
            "root_causes": None if self.root_causes is None else len(self.root_causes),
            "graph_edges": None if self.graph is None else len(self.graph),
        }

    def __repr__(self) -> str:
        extras = [
            label
            for label, value in (("root_causes", self.root_causes), ("graph", self.graph))
            if value is not None
        ]
        more = f", with {' + '.join(extras)}" if extras else ""
        return (
            f"Dataset({self.name!r}: train {len(self.train)} rows, test {len(self.test)} rows, "
            f"{self.test.shape[1]} columns, anomaly ratio {self.anomaly_ratio:.2%}{more})"
        )


def segments(labels: Iterable[int] | np.ndarray | pd.Series) -> list[tuple[int, int]]:
    """Runs of 1s in a 0/1 sequence as half-open ``[start, end)`` positions.

    Parameters
    ----------
    labels
        0/1 values (any non-zero counts as 1); NaN is not allowed.

    Returns
    -------
    list of (int, int)
        One ``(start, end)`` pair per run, in order.
    """
    flags = (np.asarray(labels if not isinstance(labels, pd.Series) else labels.to_numpy()) != 0).astype(
        np.int8
    )
    if flags.ndim != 1:
        raise DatasetError(f"labels must be 1-d, got shape {flags.shape}")
    edges = np.diff(np.concatenate(([0], flags, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def labels_from_segments(n_rows: int, spans: Iterable[tuple[int, int]]) -> np.ndarray:
    """0/1 ``int64`` array of length ``n_rows`` with 1 on every half-open span."""
    out = np.zeros(n_rows, dtype=np.int64)
    for start, end in spans:
        out[max(0, int(start)) : min(n_rows, int(end))] = 1
    return out


def _as_label_series(labels: pd.Series, where: str) -> pd.Series:
    values = labels.to_numpy()
    if values.dtype.kind == "b":
        values = values.astype(np.int64)
    if values.dtype.kind not in "iuf" or pd.isna(values).any():
        raise DatasetError(f"{where}: labels must be 0/1 numbers without NaN")
    if not np.isin(values, (0, 1)).all():
        raise DatasetError(
            f"{where}: labels must be 0 or 1, found {sorted(set(np.unique(values)) - {0, 1})[:5]}"
        )
    return pd.Series(values.astype(np.int64), index=labels.index, name="label")

"""Skoltech Anomaly Benchmark (SKAB): 34 labelled experiments on a water-circulation testbed."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from tsdiff.datasets.base import Dataset
from tsdiff.datasets.paths import require_file, resolve_root
from tsdiff.errors import DatasetError, ParameterError

SKAB_GROUPS = ("valve1", "valve2", "other")
_EXPERIMENT = re.compile(r"^(valve1|valve2|other)[/\\](\d+)(?:\.csv)?$")
_LABEL_COLUMNS = ("anomaly", "changepoint")


def skab_experiments(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the SKAB experiments found under ``root``, in a stable order.

    The order is ``valve1/0`` … ``valve1/15``, ``valve2/0`` … ``valve2/3``, ``other/1`` … ``other/14``
    (numeric within each folder); 34 names for the complete v0.9 corpus.

    Parameters
    ----------
    root
        The SKAB ``data/`` folder; default :func:`~tsdiff.datasets.default_root` of ``"SKAB"``.
    """
    folder = resolve_root(root, "SKAB")
    names = []
    for group in SKAB_GROUPS:
        stems = [p.stem for p in (folder / group).glob("*.csv") if p.stem.isdigit()]
        names += [f"{group}/{stem}" for stem in sorted(stems, key=int)]
    if not names:
        raise DatasetError(
            f"no SKAB experiment found under {folder} (expected {'/, '.join(SKAB_GROUPS)}/ folders)"
        )
    return names


def load_skab(
    experiment: str = "valve1/0",
    root: str | os.PathLike[str] | None = None,
    train: Literal["head", "anomaly-free"] = "head",
    train_rows: int = 400,
) -> Dataset:
    """Load one SKAB experiment.

    Expected layout under ``root`` (the ``data/`` folder of ``waico/SKAB``)::

        valve1/0.csv … valve1/15.csv, valve2/0.csv … valve2/3.csv, other/1.csv … other/14.csv
        anomaly-free/anomaly-free.csv

    Each file is ';'-separated with a header: ``datetime`` (``YYYY-MM-DD hh:mm:ss``, about one row per
    second), 8 sensor columns, then, in the experiment files only, ``anomaly`` and ``changepoint`` (0/1).

    Parameters
    ----------
    experiment
        ``"valve1/0"`` style name (see :func:`skab_experiments`); a trailing ``.csv`` is accepted.
    root
        The SKAB ``data/`` folder; default :func:`~tsdiff.datasets.default_root` of ``"SKAB"``.
    train
        ``"head"`` (the usual protocol): train is the first ``train_rows`` rows of the experiment file and
        test the rest; the head's labels are returned as ``train_labels`` and a warning is issued when any
        is 1 (in the v0.9 corpus only ``other/2``, whose anomaly starts at row 104). ``"anomaly-free"``:
        train is ``anomaly-free/anomaly-free.csv`` (normal by construction, so no ``train_labels``) and
        test the whole experiment file.
    train_rows
        Length of the head when ``train="head"``.

    Returns
    -------
    Dataset
        DatetimeIndex on both parts (irregular: a few gaps of 2 s to about 4 min exist);
        ``metadata["changepoints"]`` holds the test row positions marked in ``changepoint``.

    Raises
    ------
    ParameterError
        Unknown experiment name, ``train`` mode, or a ``train_rows`` that leaves no test rows.
    DatasetError
        Missing or malformed file. A file whose timestamps are unsorted or repeated is refused (the
        message names it and the first offending timestamp) rather than silently reordered or
        de-duplicated, since which of two rows is right cannot be known; no such file exists in v0.9.
    """
    match = _EXPERIMENT.match(str(experiment).strip())
    if match is None:
        raise ParameterError(
            f"experiment must look like 'valve1/0', 'valve2/3' or 'other/14', got {experiment!r}"
        )
    group, number = match.group(1), int(match.group(2))
    if train not in ("head", "anomaly-free"):
        raise ParameterError(f"train must be 'head' or 'anomaly-free', got {train!r}")
    folder = resolve_root(root, "SKAB")
    path = require_file(folder / group / f"{number}.csv", "SKAB experiment")
    frame = read_skab_csv(path, labelled=True)
    sensors = frame.drop(columns=list(_LABEL_COLUMNS))
    anomaly = frame["anomaly"].astype(np.int64)
    changepoint = frame["changepoint"].astype(np.int64)
    name = f"SKAB/{group}/{number}"
    metadata: dict = {
        "source": "SKAB v0.9 (waico/SKAB)",
        "experiment": f"{group}/{number}",
        "protocol": train,
    }

    if train == "head":
        if isinstance(train_rows, bool) or not isinstance(train_rows, (int, np.integer)):
            raise ParameterError(f"train_rows must be an integer, got {train_rows!r}")
        if not 0 < train_rows < len(frame):
            raise ParameterError(f"train_rows must be in 1..{len(frame) - 1} for {path} ({len(frame)} rows)")
        head_labels = anomaly.iloc[:train_rows].rename("label")
        if head_labels.any():
            warnings.warn(
                f"{path}: {int(head_labels.sum())} of the first {train_rows} rows are labelled anomalous; "
                "they stay in train (see Dataset.train_labels)",
                stacklevel=2,
            )
        test_part = slice(train_rows, None)
        dataset_train = sensors.iloc[:train_rows]
        train_labels: pd.Series | None = head_labels
        metadata["files"] = {"experiment": str(path)}
        metadata["train_rows"] = int(train_rows)
    else:
        free_path = require_file(folder / "anomaly-free" / "anomaly-free.csv", "SKAB anomaly-free")
        dataset_train = read_skab_csv(free_path, labelled=False)
        if list(dataset_train.columns) != list(sensors.columns):
            raise DatasetError(f"{free_path} columns differ from those of {path}")
        test_part = slice(None)
        train_labels = None
        metadata["files"] = {"experiment": str(path), "anomaly_free": str(free_path)}

    test = sensors.iloc[test_part]
    labels = anomaly.iloc[test_part].rename("label")
    metadata["changepoints"] = np.flatnonzero(changepoint.iloc[test_part].to_numpy()).tolist()
    return Dataset(
        name=name,
        train=dataset_train,
        test=test,
        labels=labels,
        train_labels=train_labels,
        metadata=metadata,
    )


def read_skab_csv(path: Path, labelled: bool) -> pd.DataFrame:
    """One SKAB file with a checked, sorted, unique DatetimeIndex and float sensor columns."""
    try:
        frame = pd.read_csv(path, sep=";", index_col="datetime", parse_dates=True)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise DatasetError(
            f"cannot read {path} as a SKAB ';'-separated file with a 'datetime' column: {exc}"
        ) from exc
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DatasetError(f"{path}: the 'datetime' column does not hold timestamps")
    if frame.empty:
        raise DatasetError(f"{path} holds no rows")
    duplicated = frame.index.duplicated()
    if duplicated.any():
        raise DatasetError(f"{path}: timestamp {frame.index[duplicated][0]} occurs more than once")
    if not frame.index.is_monotonic_increasing:
        back = int(np.flatnonzero(np.diff(frame.index.asi8) < 0)[0]) + 1
        raise DatasetError(f"{path}: timestamps go backwards at {frame.index[back]} (row {back})")
    missing = [c for c in _LABEL_COLUMNS if c not in frame.columns]
    if labelled and missing:
        raise DatasetError(f"{path} lacks column(s) {missing}")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise DatasetError(f"{path}: column {column!r} is not numeric")
    if labelled:
        for column in _LABEL_COLUMNS:
            if not frame[column].isin((0, 1)).all():
                raise DatasetError(f"{path}: column {column!r} holds values other than 0 and 1")
    return frame.astype(np.float64)

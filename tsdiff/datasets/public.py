"""Loaders for public benchmarks in their published file layouts: PSM, MSL/SMAP, ASD and TSB-AD-M.

SMD and SKAB, which the project stages locally, live in :mod:`tsdiff.datasets.smd` and
:mod:`tsdiff.datasets.skab`. Nothing here downloads: each loader reads a folder you already have.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from tsdiff.datasets.base import Dataset, labels_from_segments
from tsdiff.datasets.paths import require_file, resolve_root
from tsdiff.datasets.safe_pickle import load_array_pickle
from tsdiff.datasets.smd import compare_with_labels, read_interpretation_labels
from tsdiff.errors import DatasetError, ParameterError

PSM_TIME = "timestamp_(min)"
_CHANNEL = re.compile(r"^[A-Z]-\d+$")
_ENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TSB_NAME = re.compile(r"_tr_(\d+)_1st_(\d+)$")
_TSB_NAME_OLD = re.compile(r"_(\d+)_(\d+)$")  # earlier releases: <index>_<dataset>_<id>_<train>_<first>.csv

_READ_ERRORS = (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError, UnicodeDecodeError)


# ----------------------------------------------------------------------------------------------- PSM
def load_psm(root: str | os.PathLike[str] | None = None) -> Dataset:
    """Load PSM (Pooled Server Metrics, eBay; RANSynCoders, KDD 2021).

    Expected layout under ``root`` (the ``data/`` folder of ``eBay/RANSynCoders``)::

        train.csv        header "timestamp_(min),feature_0,...,feature_24"; one row per minute (132,481 rows)
        test.csv         same header (87,841 rows)
        test_label.csv   header "timestamp_(min),label"; one 0/1 label per test row, same timestamps

    Parameters
    ----------
    root
        The PSM folder; default :func:`~tsdiff.datasets.default_root` of ``"PSM"``.

    Returns
    -------
    Dataset
        Both parts indexed by ``timestamp_(min)`` (integers when all are whole numbers). The training part
        has missing values in the published files; they are kept as NaN.
    """
    folder = resolve_root(root, "PSM")
    train_path = require_file(folder / "train.csv", "PSM train")
    test_path = require_file(folder / "test.csv", "PSM test")
    label_path = require_file(folder / "test_label.csv", "PSM test label")
    train = _read_psm_csv(train_path)
    test = _read_psm_csv(test_path)
    if list(train.columns) != list(test.columns):
        raise DatasetError(f"{test_path} columns differ from those of {train_path}")

    raw = _read_csv(label_path)
    if "label" not in raw.columns:
        raise DatasetError(f"{label_path} lacks a 'label' column")
    if len(raw) != len(test):
        raise DatasetError(f"{label_path} has {len(raw)} rows but {test_path} has {len(test)}")
    if PSM_TIME in raw.columns and not np.array_equal(
        _time_values(raw[PSM_TIME], label_path), test.index.to_numpy()
    ):
        raise DatasetError(f"{label_path} timestamps differ from those of {test_path}")
    labels = _zero_one(raw["label"], label_path)
    return Dataset(
        name="PSM",
        train=train,
        test=test,
        labels=pd.Series(labels, index=test.index, name="label"),
        metadata={
            "source": "PSM (eBay/RANSynCoders)",
            "files": {"train": str(train_path), "test": str(test_path), "test_label": str(label_path)},
            "train_nan_cells": int(train.isna().to_numpy().sum()),
        },
    )


def _read_psm_csv(path: Path) -> pd.DataFrame:
    frame = _read_csv(path)
    if PSM_TIME not in frame.columns:
        raise DatasetError(f"{path} lacks the {PSM_TIME!r} column")
    index = pd.Index(_time_values(frame[PSM_TIME], path), name=PSM_TIME)
    if index.has_duplicates:
        raise DatasetError(f"{path}: {PSM_TIME} {index[index.duplicated()][0]} occurs more than once")
    if not index.is_monotonic_increasing:
        raise DatasetError(f"{path}: {PSM_TIME} is not increasing")
    features = frame.drop(columns=[PSM_TIME])
    features.index = index
    return _numeric(features, path)


def _time_values(column: pd.Series, path: Path) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        raise DatasetError(f"{path}: {PSM_TIME} has missing or non-numeric values")
    if np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values


# -------------------------------------------------------------------------------------------- MSL/SMAP
def load_msl(channel: str = "C-1", root: str | os.PathLike[str] | None = None) -> Dataset:
    """Load one MSL (Mars Science Laboratory) channel of the telemanom data; see :func:`load_smap`.

    Parameters
    ----------
    channel
        Channel id such as ``"C-1"`` or ``"M-6"``.
    root
        The telemanom ``data/`` folder; default :func:`~tsdiff.datasets.default_root` of ``"MSL"``.
    """
    return _load_telemanom("MSL", channel, root)


def load_smap(channel: str = "A-1", root: str | os.PathLike[str] | None = None) -> Dataset:
    """Load one SMAP (Soil Moisture Active Passive) channel of the telemanom data (Hundman et al., KDD 2018).

    Expected layout under ``root`` (the data of ``khundman/telemanom``; MSL and SMAP share it)::

        train/<chan>.npy          float array (rows, 1 + k): column 0 the telemetry value, then k one-hot
        test/<chan>.npy           command flags (25 columns for SMAP, 55 for MSL); either file may
                                  instead be its gzip, <chan>.npy.gz
        labeled_anomalies.csv     header "chan_id,spacecraft,anomaly_sequences,class,num_values";
                                  anomaly_sequences like "[[a, b], [c, d]]" with INCLUSIVE test row ends,
                                  class like "[point, contextual]", num_values = number of test rows

    Parameters
    ----------
    channel
        Channel id such as ``"A-1"`` or ``"P-2"``.
    root
        The telemanom ``data/`` folder; default :func:`~tsdiff.datasets.default_root` of ``"SMAP"``.

    Returns
    -------
    Dataset
        Columns ``telemetry``, ``cmd1`` … ``cmdk``; RangeIndex; labels 1 on every listed sequence.
        ``metadata["anomaly_sequences"]`` holds them half-open with their class. When the csv lists a
        channel twice (SMAP ``P-2`` is listed twice in the public file) the sequences of all rows are
        united and ``metadata["label_rows"]`` says how many rows were used.
    """
    return _load_telemanom("SMAP", channel, root)


def _load_telemanom(spacecraft: str, channel: str, root: str | os.PathLike[str] | None) -> Dataset:
    channel = str(channel).strip()
    if not _CHANNEL.match(channel):
        raise ParameterError(f"channel must look like 'A-1' or 'P-10', got {channel!r}")
    folder = resolve_root(root, spacecraft)
    train_path = _npy_file(folder / "train", channel, f"{spacecraft} train")
    test_path = _npy_file(folder / "test", channel, f"{spacecraft} test")
    csv_path = require_file(folder / "labeled_anomalies.csv", f"{spacecraft} labels")
    train_values = _load_npy(train_path)
    test_values = _load_npy(test_path)
    if train_values.shape[1] != test_values.shape[1]:
        raise DatasetError(
            f"{test_path} has {test_values.shape[1]} columns but {train_path} has {train_values.shape[1]}"
        )

    table = _read_csv(csv_path)
    needed = ["chan_id", "spacecraft", "anomaly_sequences", "num_values"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise DatasetError(f"{csv_path} lacks column(s) {missing}")
    rows = table[
        (table["chan_id"].astype(str).str.strip() == channel)
        & (table["spacecraft"].astype(str).str.strip() == spacecraft)
    ]
    if rows.empty:
        raise DatasetError(f"{csv_path} has no {spacecraft} row for channel {channel!r}")
    n_test = len(test_values)
    spans, classes = [], []
    for _, row in rows.iterrows():
        if int(row["num_values"]) != n_test:
            raise DatasetError(
                f"{csv_path}: num_values {row['num_values']} for {channel} but {test_path} has {n_test} rows"
            )
        for start, end in _parse_sequences(row["anomaly_sequences"], csv_path, channel):
            if start >= n_test:
                raise DatasetError(
                    f"{csv_path}: sequence [{start}, {end}] of {channel} is past the {n_test} test rows"
                )
            spans.append((start, min(end + 1, n_test)))  # inclusive end -> half-open
        if "class" in rows.columns:
            classes += [c.strip() for c in str(row["class"]).strip("[] ").split(",") if c.strip()]

    columns = ["telemetry"] + [f"cmd{k}" for k in range(1, train_values.shape[1])]
    train = pd.DataFrame(train_values, columns=columns)
    test = pd.DataFrame(test_values, columns=columns)
    order = sorted(range(len(spans)), key=lambda k: spans[k])
    return Dataset(
        name=f"{spacecraft}/{channel}",
        train=train,
        test=test,
        labels=pd.Series(labels_from_segments(n_test, spans), index=test.index, name="label"),
        metadata={
            "source": f"{spacecraft} (khundman/telemanom)",
            "channel": channel,
            "files": {"train": str(train_path), "test": str(test_path), "labels": str(csv_path)},
            "anomaly_sequences": [spans[k] for k in order],
            "anomaly_classes": [classes[k] for k in order] if len(classes) == len(spans) else classes,
            "label_rows": len(rows),
        },
    )


def _parse_sequences(text: object, path: Path, channel: str) -> list[tuple[int, int]]:
    try:
        value = json.loads(str(text))
        pairs = [(int(a), int(b)) for a, b in value]
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: cannot parse anomaly_sequences {text!r} of {channel}") from exc
    for a, b in pairs:
        if a < 0 or b < a:
            raise DatasetError(f"{path}: bad anomaly sequence [{a}, {b}] of {channel}")
    return pairs


def telemanom_channels(spacecraft: str, root: str | os.PathLike[str] | None = None) -> list[str]:
    """Channels of ``"MSL"`` or ``"SMAP"`` that have a test file under ``root``, sorted by subsystem
    letter and number (``C-1``, ``C-2``, ``D-14``, ...)."""
    folder = resolve_root(root, spacecraft)
    names = {
        p.name.split(".npy")[0]
        for p in (folder / "test").glob("*.npy*")
        if p.name.endswith((".npy", ".npy.gz"))
    }
    channels = [c for c in names if _CHANNEL.match(c)]
    if not channels:
        raise DatasetError(f"no {spacecraft} channel found under {folder / 'test'}")
    return sorted(channels, key=lambda c: (c.split("-")[0], int(c.split("-")[1])))


def _npy_file(folder: Path, channel: str, what: str) -> Path:
    """``<channel>.npy``, or its gzip ``<channel>.npy.gz`` when only that is there."""
    plain = folder / f"{channel}.npy"
    packed = folder / f"{channel}.npy.gz"
    if not plain.is_file() and packed.is_file():
        return packed
    return require_file(plain, what)


def _load_npy(path: Path) -> np.ndarray:
    """A numeric 2-d array from a ``.npy`` file, or from its gzip (``.npy.gz``)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                values = np.load(fh, allow_pickle=False)
        else:
            values = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path} as a numeric .npy array: {exc}") from exc
    if values.dtype.kind not in "biuf":
        raise DatasetError(f"{path} holds a {values.dtype} array, expected numbers")
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or len(values) == 0:
        raise DatasetError(f"{path} must hold a non-empty 2-d array, got shape {values.shape}")
    return values.astype(np.float64)


# ------------------------------------------------------------------------------------------------- ASD
def load_asd(entity: str = "omi-1", root: str | os.PathLike[str] | None = None) -> Dataset:
    """Load one entity of ASD (Application Server Dataset; InterFusion, KDD 2021): ``omi-1`` … ``omi-12``.

    Expected layout under ``root`` (``data/processed`` of ``zhhlee/InterFusion``)::

        <entity>_train.pkl        pickled numpy array (rows, 19), unlabelled
        <entity>_test.pkl         pickled numpy array (rows, 19)
        <entity>_test_label.pkl   pickled numpy array of 0/1, one per test row
        interpretation_label/<entity>.txt   optional, same "start-end:d1,d2,..." format as SMD; also looked
                                            for in ../interpretation_label/ (InterFusion keeps it in data/)

    The pickles are read with a restricted unpickler that only rebuilds numeric numpy arrays and refuses
    any other pickled callable, so a crafted file cannot run code.

    Parameters
    ----------
    entity
        ``"omi-1"`` style name, or just ``1``; other names of files in the same format are accepted.
    root
        The folder of the pickles; default :func:`~tsdiff.datasets.default_root` of ``"ASD"``.

    Returns
    -------
    Dataset
        Columns ``m1`` … ``m19`` (1-based, matching ``interpretation_label``), RangeIndex.
    """
    entity = str(entity).strip()
    if entity.isdigit():
        entity = f"omi-{int(entity)}"
    if not _ENTITY.match(entity):
        raise ParameterError(f"entity must look like 'omi-1', got {entity!r}")
    folder = resolve_root(root, "ASD")
    train_path = require_file(folder / f"{entity}_train.pkl", "ASD train")
    test_path = require_file(folder / f"{entity}_test.pkl", "ASD test")
    label_path = require_file(folder / f"{entity}_test_label.pkl", "ASD test label")
    train_values = load_array_pickle(train_path)
    test_values = load_array_pickle(test_path)
    for path, values in ((train_path, train_values), (test_path, test_values)):
        if values.ndim != 2 or len(values) == 0:
            raise DatasetError(f"{path} must hold a non-empty 2-d array, got shape {values.shape}")
    if train_values.shape[1] != test_values.shape[1]:
        raise DatasetError(
            f"{test_path} has {test_values.shape[1]} columns but {train_path} has {train_values.shape[1]}"
        )
    label_values = load_array_pickle(label_path).reshape(-1)
    if len(label_values) != len(test_values):
        raise DatasetError(
            f"{label_path} has {len(label_values)} labels but {test_path} has {len(test_values)} rows"
        )
    labels = _zero_one(pd.Series(label_values), label_path)

    columns = [f"m{k}" for k in range(1, train_values.shape[1] + 1)]
    test = pd.DataFrame(test_values.astype(np.float64), columns=columns)
    metadata: dict = {
        "source": "ASD (zhhlee/InterFusion)",
        "entity": entity,
        "files": {"train": str(train_path), "test": str(test_path), "test_label": str(label_path)},
    }
    root_causes = None
    for interp in (
        folder / "interpretation_label" / f"{entity}.txt",
        folder.parent / "interpretation_label" / f"{entity}.txt",
    ):
        if interp.is_file():
            root_causes = read_interpretation_labels(interp, len(test), columns)
            metadata["files"]["interpretation_label"] = str(interp)
            metadata["interpretation_check"] = compare_with_labels(root_causes, labels)
            break
    return Dataset(
        name=f"ASD/{entity}",
        train=pd.DataFrame(train_values.astype(np.float64), columns=columns),
        test=test,
        labels=pd.Series(labels, index=test.index, name="label"),
        root_causes=root_causes,
        metadata=metadata,
    )


# ---------------------------------------------------------------------------------------------- TSB-AD
def load_tsbad(
    path: str | os.PathLike[str],
    *,
    test: Literal["all", "rest"] = "all",
    train_rows: int | None = None,
) -> Dataset:
    """Load one TSB-AD-M file (TSB-AD benchmark, NeurIPS 2024 D&B; ``TheDatumOrg/TSB-AD``).

    Expected file: ``<index>_<dataset>_id_<id>_<domain>_tr_<train>_1st_<first>.csv``, e.g.
    ``057_SMD_id_1_Facility_tr_4529_1st_4629.csv``: comma-separated with a header, the feature
    columns (named ``0``, ``1``, … in the release) then a final ``Label`` column of 0/1. ``<train>`` is
    the number of leading rows meant for fitting and ``<first>`` the row of the first anomaly.
    Earlier releases named files ``<index>_<dataset>_<id>_<train>_<first>.csv``; those are read too.

    Parameters
    ----------
    path
        The csv file.
    test
        ``"all"`` (TSB-AD's own protocol: fit on the head, score and evaluate the whole series) or
        ``"rest"`` (test is only the rows after the head).
    train_rows
        Overrides the train length read from the file name.

    Returns
    -------
    Dataset
        RangeIndex; ``train_labels`` holds the head's labels, which are not all 0 when
        ``<first> < <train>`` (several files are like that, e.g. ``078_SMD_id_22_Facility_tr_500_1st_326``).
        Rows with missing values are kept (TSB-AD's scripts drop them before splitting; the released
        files are not expected to have any).
    """
    file = require_file(Path(path).expanduser(), "TSB-AD")
    if test not in ("all", "rest"):
        raise ParameterError(f"test must be 'all' or 'rest', got {test!r}")
    first_in_name = None
    if train_rows is None:
        match = _TSB_NAME.search(file.stem) or _TSB_NAME_OLD.search(file.stem)
        if match is None:
            raise DatasetError(
                f"{file}: cannot read the train length from the name (expected '..._tr_<n>_1st_<m>.csv')"
            )
        train_rows, first_in_name = int(match.group(1)), int(match.group(2))
    elif isinstance(train_rows, bool) or not isinstance(train_rows, (int, np.integer)):
        raise ParameterError(f"train_rows must be an integer, got {train_rows!r}")

    frame = _read_csv(file)
    if frame.shape[1] < 2 or frame.columns[-1] != "Label":
        raise DatasetError(f"{file}: expected feature columns then a final 'Label' column")
    labels_all = _zero_one(frame["Label"], file)
    features = _numeric(frame.iloc[:, :-1], file)
    features.columns = [str(c) for c in features.columns]
    n_rows = len(features)
    if not 0 < train_rows < n_rows:
        raise DatasetError(
            f"{file}: train length {train_rows} must be between 1 and {n_rows - 1} (rows in file)"
        )

    test_slice = slice(0, None) if test == "all" else slice(train_rows, None)
    test_frame = features.iloc[test_slice]
    positives = np.flatnonzero(labels_all)
    return Dataset(
        name=f"TSB-AD/{file.stem}",
        train=features.iloc[:train_rows],
        test=test_frame,
        labels=pd.Series(labels_all[test_slice], index=test_frame.index, name="label"),
        train_labels=pd.Series(labels_all[:train_rows], index=features.index[:train_rows], name="label"),
        metadata={
            "source": "TSB-AD-M (TheDatumOrg/TSB-AD)",
            "files": {"data": str(file)},
            "protocol": test,
            "train_rows": int(train_rows),
            "first_anomaly_in_name": first_in_name,
            "first_anomaly": int(positives[0]) if len(positives) else None,
        },
    )


# ------------------------------------------------------------------------------------------- helpers
def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except _READ_ERRORS as exc:
        raise DatasetError(f"cannot read {path} as csv: {exc}") from exc
    if frame.empty:
        raise DatasetError(f"{path} holds no rows")
    return frame


def _numeric(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise DatasetError(f"{path}: column {column!r} is not numeric")
    return frame.astype(np.float64)


def _zero_one(column: pd.Series, path: Path) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(values).any() or not np.isin(values, (0.0, 1.0)).all():
        raise DatasetError(f"{path}: labels must be 0 or 1 (found missing or other values)")
    return values.astype(np.int64)

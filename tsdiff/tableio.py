"""Tables on disk: CSV or Parquet files in and out, with a time column as the index.

Used by the command line and the fleet runner alike; every failure is a typed
:class:`~tsdiff.errors.InputError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tsdiff.errors import InputError

#: first-column names taken as the time column when none is named
TIME_NAMES = ("timestamp", "time", "date", "datetime")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: str | Path, time_column: str | None = None) -> pd.DataFrame:
    """A CSV or Parquet file (by suffix) as a DataFrame indexed by its time column.

    ``time_column`` names the column; None takes a first column called timestamp, time, date or
    datetime, and otherwise leaves the rows with a plain index.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such file: {path}")
    try:
        frame = pd.read_parquet(p) if p.suffix.lower() in PARQUET_SUFFIXES else pd.read_csv(p)
    except ImportError as exc:
        raise InputError(f"cannot read {path}: {exc} (install tsdiff[parquet] for Parquet)") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    return set_time_index(frame, time_column, str(path))


def set_time_index(frame: pd.DataFrame, time_column: str | None, what: str) -> pd.DataFrame:
    """``frame`` indexed by its time column (see :func:`read_table`); ``what`` names it in errors."""
    if time_column is None:
        first = str(frame.columns[0]) if len(frame.columns) else ""
        time_column = frame.columns[0] if first.strip().lower() in TIME_NAMES else None
    elif time_column not in frame.columns:
        raise InputError(f"{what}: no time column {time_column!r} (columns: {list(frame.columns)[:8]})")
    if time_column is None:
        return frame
    try:
        times = pd.to_datetime(frame[time_column])
    except (ValueError, TypeError) as exc:
        raise InputError(f"{what}: time column {time_column!r} does not hold timestamps: {exc}") from None
    return frame.drop(columns=[time_column]).set_index(pd.DatetimeIndex(times, name=time_column))


def write_table(frame: Any, path: str | Path) -> None:
    """Write ``frame`` as Parquet (``.parquet``, ``.pq``) or CSV (anything else)."""
    p = Path(path)
    if p.suffix.lower() in PARQUET_SUFFIXES:
        try:
            frame.to_parquet(p)
        except ImportError as exc:
            raise InputError(f"cannot write {path}: {exc} (install tsdiff[parquet])") from None
    else:
        frame.to_csv(p)

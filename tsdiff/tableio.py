"""Tables on disk: CSV or Parquet files in and out, with a time column as the index.

Used by the command line and the fleet runner alike; every failure is a typed
:class:`~tsdiff.errors.InputError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.errors import InputError

#: first-column names taken as the time column when none is named
TIME_NAMES = ("timestamp", "time", "date", "datetime")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".txt")


#: units of epoch timestamps (``--time-unit``)
TIME_UNITS = ("s", "ms", "us", "ns")


def read_table(
    path: str | Path,
    time_column: str | None = None,
    *,
    sep: str = ",",
    time_unit: str | None = None,
    time_format: str | None = None,
) -> pd.DataFrame:
    """A CSV or Parquet file (by suffix) as a DataFrame indexed by its time column.

    ``time_column`` names the column; None takes a first column called timestamp, time, date or
    datetime, and otherwise leaves the rows with a plain index. ``sep`` is the CSV separator;
    ``time_unit`` and ``time_format`` say how to read the times (see :func:`parse_times`).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such file: {path}")
    try:
        frame = pd.read_parquet(p) if p.suffix.lower() in PARQUET_SUFFIXES else pd.read_csv(p, sep=sep)
    except ImportError as exc:
        raise InputError(f"cannot read {path}: {exc} (install tsdiff[parquet] for Parquet)") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if frame.shape[1] == 1 and any(other in str(frame.columns[0]) for other in ";\t|," if other != sep):
        name = str(frame.columns[0])[:40]
        raise InputError(f"{path} reads as one column {name!r}: is its separator another one (--sep)?")
    return set_time_index(frame, time_column, str(path), time_unit=time_unit, time_format=time_format)


def find_time_column(columns: Any, time_column: str | None, what: str) -> Any:
    """The time column among ``columns``: ``time_column`` (which must be there), or a first column
    named timestamp, time, date or datetime, or None."""
    columns = list(columns)
    if time_column is not None:
        if time_column not in columns:
            raise InputError(f"{what}: no time column {time_column!r} (columns: {columns[:8]})")
        return time_column
    first = str(columns[0]) if columns else ""
    return columns[0] if first.strip().lower() in TIME_NAMES else None


def parse_times(
    values: pd.Series, column: Any, what: str, time_unit: str | None = None, time_format: str | None = None
) -> pd.DatetimeIndex:
    """Timestamps from a column, never guessed: ISO 8601 text by default, ``time_format`` (a
    ``strftime`` pattern) for other text, and epoch numbers only with ``time_unit`` (s, ms, us,
    ns). Anything else is an :class:`~tsdiff.errors.InputError` that says which option to pass."""
    if time_unit is not None and time_unit not in TIME_UNITS:
        raise InputError(f"{what}: time unit must be one of {TIME_UNITS}, got {time_unit!r}")
    numeric = pd.api.types.is_numeric_dtype(values.dtype)
    if numeric and not pd.api.types.is_bool_dtype(values.dtype):
        if time_unit is None:
            size = float(np.nanmedian(np.abs(values.to_numpy(dtype=float)))) if len(values) else 0.0
            guess = next((u for u, top in (("s", 1e11), ("ms", 1e14), ("us", 1e17)) if size < top), "ns")
            raise InputError(
                f"{what}: time column {column!r} holds numbers ({size:.3g}); if they are epoch times, "
                f"say their unit (--time-unit {guess}, or time_unit={guess!r})",
                column=column,
            )
        try:
            return pd.DatetimeIndex(pd.to_datetime(values, unit=time_unit, utc=True), name=column)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InputError(f"{what}: time column {column!r} is not epoch {time_unit}: {exc}") from None
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return pd.DatetimeIndex(values, name=column)
    try:
        fmt = time_format or "ISO8601"
        times = pd.to_datetime(values, format=fmt)
    except (ValueError, TypeError) as exc:
        hint = "" if time_format else " (times other than ISO 8601 need --time-format, e.g. '%d/%m/%Y %H:%M')"
        raise InputError(f"{what}: time column {column!r} does not hold timestamps: {exc}{hint}") from None
    return pd.DatetimeIndex(times, name=column)


def set_time_index(
    frame: pd.DataFrame,
    time_column: str | None,
    what: str,
    *,
    time_unit: str | None = None,
    time_format: str | None = None,
) -> pd.DataFrame:
    """``frame`` indexed by its time column (see :func:`read_table`); ``what`` names it in errors."""
    column = find_time_column(frame.columns, time_column, what)
    if column is None:
        return frame
    times = parse_times(frame[column], column, what, time_unit, time_format)
    if times.hasnans:
        row = frame.index[int(np.argmax(times.isna()))]
        where = "" if len(frame) == 1 else f" at row {row!r}"
        message = f"{what}: time column {column!r} has no time{where} (empty or NaT)"
        raise InputError(message, column=column, row=row)
    return frame.drop(columns=[column]).set_index(times)


def check_output(path: str | Path) -> None:
    """Refuse, before any work, an output ``write_table`` could not write: an unknown suffix, a
    folder, or a missing parent folder (``-`` is standard output, as CSV)."""
    if str(path) == "-":
        return
    p = Path(path)
    if p.suffix.lower() not in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        known = ", ".join((*CSV_SUFFIXES, *PARQUET_SUFFIXES))
        suffix = p.suffix or "(none)"
        raise InputError(f"cannot write {path}: unknown suffix {suffix!r} (use {known}, or - for stdout)")
    if p.is_dir():
        raise InputError(f"cannot write {path}: it is a folder")
    if not p.parent.is_dir():
        raise InputError(f"cannot write {path}: no folder {p.parent}")


def write_table(frame: Any, path: str | Path) -> None:
    """Write ``frame`` as Parquet (``.parquet``, ``.pq``) or CSV (``.csv``, ``.txt``; ``-``: to
    standard output); a failed write is an :class:`~tsdiff.errors.InputError` naming the file."""
    import sys

    check_output(path)
    p = Path(path)
    try:
        if str(path) == "-":
            frame.to_csv(sys.stdout)
            sys.stdout.flush()
        elif p.suffix.lower() in PARQUET_SUFFIXES:
            frame.to_parquet(p)
        else:
            frame.to_csv(p)
    except ImportError as exc:
        raise InputError(f"cannot write {path}: {exc} (install tsdiff[parquet])") from None
    except BrokenPipeError:  # the reader went away (`tsdiff score -o - | head`): not the file's fault
        raise
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None

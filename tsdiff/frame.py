"""Input contract: validation, NaN mask, scaling, and windows in / one value per row out.

Every detector passes its input through :func:`validate_frame` (and :func:`align_columns` at
scoring time), so every detector accepts the same inputs and rejects bad ones with the same typed
errors from :mod:`tsdiff.errors`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from tsdiff.errors import (
    AllNaNColumnError,
    ColumnMismatchError,
    DuplicateColumnError,
    DuplicateTimestampError,
    EmptyInputError,
    ExtremeValueError,
    InfiniteValueError,
    InputTypeError,
    NonNumericColumnError,
    NotFittedError,
    ParameterError,
    SparseColumnError,
    TooFewRowsError,
    UnsortedIndexError,
    fmt_label,
)

#: largest magnitude a metric value may have; beyond it input is refused (ExtremeValueError)
MAX_ABS_VALUE = 1e100
#: scaled values (units of a metric's training spread) are clipped to this magnitude, so sums and
#: squares of them stay finite in every detector
SCALED_LIMIT = 1e6


@dataclass(frozen=True)
class ValidatedFrame:
    """Checked input: float64 values with NaN for missing cells, plus the labels to give back.

    Attributes
    ----------
    values
        Array of shape (n_rows, n_columns), float64; NaN marks a missing cell.
    index
        Row labels of the input (a RangeIndex for arrays).
    columns
        Column labels of the input (a RangeIndex for arrays).
    named
        Whether the columns came with names (a DataFrame) rather than positions (an array).
    """

    values: np.ndarray
    index: pd.Index
    columns: pd.Index
    named: bool

    @property
    def missing(self) -> np.ndarray:
        """Boolean mask, True where a cell is missing (NaN)."""
        return np.isnan(self.values)

    @property
    def n_rows(self) -> int:
        return self.values.shape[0]

    def frame(self, values: np.ndarray | None = None) -> pd.DataFrame:
        """A DataFrame with this input's index and columns (and the given values, if any)."""
        return pd.DataFrame(self.values if values is None else values, index=self.index, columns=self.columns)


def validate_frame(
    X: Any, *, min_rows: int = 1, what: str = "rows", allow_all_nan: bool = False
) -> ValidatedFrame:
    """Check ``X`` and convert it to float64 values, keeping its index and column labels.

    Accepts a DataFrame of numeric columns (DatetimeIndex or any unique index), a Series (one
    column), or a 1-d/2-d array of numbers. NaN is allowed; everything else that would turn into
    silent garbage raises a typed :class:`~tsdiff.errors.InputError` naming the column or row.

    Parameters
    ----------
    X
        The input data.
    min_rows
        The fewest rows the caller can work with (e.g. one window).
    what
        What ``min_rows`` is for, used in the error message.
    allow_all_nan
        Accept a column without any value (a few live rows may all miss a metric).
    """
    if isinstance(X, pd.Series):
        X = X.to_frame(name=X.name if X.name is not None else 0)
    if isinstance(X, pd.DataFrame):
        named = True
        index, columns = X.index, X.columns
        _check_columns(columns)
        if X.shape[1] == 0 or X.shape[0] == 0:
            raise EmptyInputError(_empty_message(X.shape))
        if all(isinstance(d, np.dtype) and d.kind in "biuf" for d in X.dtypes):
            values = X.to_numpy(dtype=np.float64, copy=True)  # plain numbers: one conversion
        else:
            values = np.empty(X.shape, dtype=np.float64)
            for j, name in enumerate(columns):
                values[:, j] = _numeric_column(X.iloc[:, j], name)
    else:
        named = False
        values = _numeric_array(X)
        index = pd.RangeIndex(values.shape[0])
        columns = pd.RangeIndex(values.shape[1])
    _check_index(index)
    _check_values(values, index, columns, allow_all_nan)
    if values.shape[0] < min_rows:
        raise TooFewRowsError(values.shape[0], min_rows, what)
    return ValidatedFrame(values=values, index=index, columns=columns, named=named)


#: the fewest values a column needs among the rows a model learns from
MIN_OBSERVED = 10


def needed_values(rows: int) -> int:
    """Values a column needs among ``rows`` learning rows: :data:`MIN_OBSERVED`, or half the rows
    when there are fewer than twice that (a short fit may miss a scrape or two)."""
    return max(1, min(MIN_OBSERVED, rows // 2))


def sparse_columns(values: np.ndarray, rows: int) -> list[int]:
    """Positions of the columns with fewer values than :func:`needed_values` among the first
    ``rows`` rows."""
    counts = (~np.isnan(values[:rows])).sum(axis=0)
    return [int(j) for j in np.flatnonzero(counts < needed_values(rows))]


def check_observed(frame: ValidatedFrame, rows: int) -> None:
    """:class:`~tsdiff.errors.SparseColumnError` naming the first column with too few values
    among the first ``rows`` rows, the ones a model learns from."""
    sparse = sparse_columns(frame.values, rows)
    if sparse:
        name = frame.columns[sparse[0]]
        count = int((~np.isnan(frame.values[:rows, sparse[0]])).sum())
        others = f" (and {len(sparse) - 1} more columns)" if len(sparse) > 1 else ""
        raise SparseColumnError(
            f"column {fmt_label(name)}{others} has {count} values in the first {rows} rows, the ones "
            f"the model learns from (the rest calibrate it); it needs {needed_values(rows)}: drop "
            "it, or fit on a range where it has data",
            column=name,
        )


def _check_columns(columns: pd.Index) -> None:
    if isinstance(columns, pd.MultiIndex):
        raise InputTypeError("columns must be a flat index, not a MultiIndex; flatten the column names first")
    missing = [i for i, c in enumerate(columns) if c is None or (isinstance(c, float) and np.isnan(c))]
    if missing:
        raise InputTypeError(
            f"column {missing[0]} (by position) has no name (NaN or None); name every column",
            column=missing[0],
        )
    duplicated = columns[columns.duplicated()]
    if len(duplicated):
        raise DuplicateColumnError(
            f"column {fmt_label(duplicated[0])} appears more than once", column=duplicated[0]
        )


def _numeric_column(col: pd.Series, name: Any) -> np.ndarray:
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        raise NonNumericColumnError(f"column {fmt_label(name)} is categorical, not numeric", column=name)
    if isinstance(dtype, (pd.PeriodDtype, pd.IntervalDtype)):
        kind = "periods" if isinstance(dtype, pd.PeriodDtype) else "intervals"
        raise NonNumericColumnError(
            f"column {fmt_label(name)} holds {kind}, not numbers (a period column is a time: make it "
            "the index with .to_timestamp())",
            column=name,
        )
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_complex_dtype(dtype):
            raise NonNumericColumnError(
                f"Complex data not supported: column {fmt_label(name)} holds complex numbers", column=name
            )
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise NonNumericColumnError(
            f"column {fmt_label(name)} holds timestamps; make it the index (df.set_index({fmt_label(name)})) "
            "instead of passing it as a metric",
            column=name,
        )
    # object / string columns: accept only when every present value is a number
    try:
        converted = pd.to_numeric(col, errors="coerce")
        values = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    except (OverflowError, TypeError, ValueError):
        for row, value in col.items():
            try:
                float(value)
            except OverflowError:
                raise ExtremeValueError(
                    f"column {fmt_label(name)} holds a number too large for a float at row {fmt_label(row)}",
                    column=name,
                    row=row,
                ) from None
            except (TypeError, ValueError):
                continue
        raise NonNumericColumnError(f"column {fmt_label(name)} is not numeric", column=name) from None
    bad = converted.isna() & col.notna()
    if bad.any():
        row = col.index[int(np.argmax(bad.to_numpy()))]
        value = col.loc[row]
        raise NonNumericColumnError(
            f"column {fmt_label(name)} is not numeric: row {fmt_label(row)} holds {value!r} "
            f"({_why_not_a_number(value)})",
            column=name,
            row=row,
        )
    return values


def _empty_message(shape: tuple[int, ...]) -> str:
    if not shape[0]:
        return f"input has 0 sample(s) (shape={shape}) while a minimum of 1 is required: no rows"
    return f"input has 0 feature(s) (shape={shape}) while a minimum of 1 is required: no metric columns"


def _numeric_array(X: Any) -> np.ndarray:
    if hasattr(X, "tocsr") or hasattr(X, "sparse"):  # scipy.sparse matrices and arrays, pandas' .sparse
        raise InputTypeError(
            f"sparse input ({type(X).__name__}) is not supported: metrics are dense series; pass X.toarray()"
        )
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise InputTypeError(f"cannot read input of type {type(X).__name__} as a 2-d array: {exc}") from None
    if arr.ndim == 1:
        raise InputTypeError(
            f"input is 1-d (shape {arr.shape}): it must be rows x metrics. Reshape your data with "
            "array.reshape(-1, 1) for one metric, or pass a pandas Series (one named metric)"
        )
    if arr.ndim != 2:
        raise InputTypeError(f"input must be 2-d (rows x metrics); got an array of shape {arr.shape}")
    if arr.size == 0:
        raise EmptyInputError(_empty_message(arr.shape))
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    if arr.dtype.kind == "c":
        raise NonNumericColumnError("Complex data not supported: the input holds complex numbers", column=0)
    # object arrays: convert column by column so the error names the column and row at fault
    return np.column_stack([_numeric_column(pd.Series(arr[:, j]), j) for j in range(arr.shape[1])])


def _why_not_a_number(value: Any) -> str:
    """NumPy's own reason why ``value`` is no number (what ``float(value)`` says)."""
    try:
        float(value)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return "not a number"


def _check_index(index: pd.Index) -> None:
    if isinstance(index, pd.RangeIndex) and index.step > 0:
        return
    if len(index) and (
        pd.api.types.is_object_dtype(index.dtype) or pd.api.types.is_string_dtype(index.dtype)
    ):
        _check_object_index(index)
    if index.hasnans:  # NaT or NaN labels can be neither ordered nor matched
        row = int(np.argmax(index.isna()))
        raise UnsortedIndexError(f"row {row} (by position) has no index label (NaN or NaT)", row=row)
    dup = index.duplicated()
    if dup.any():
        label = index[int(np.argmax(dup))]
        raise DuplicateTimestampError(f"index label {fmt_label(label)} appears more than once", row=label)
    ordered = isinstance(index, pd.DatetimeIndex) or pd.api.types.is_numeric_dtype(index.dtype)
    if ordered and not index.is_monotonic_increasing:
        goes_back = index[1:] < index[:-1]
        pos = int(np.argmax(goes_back)) + 1
        raise UnsortedIndexError(
            f"index is not sorted: row {fmt_label(index[pos])} comes after {fmt_label(index[pos - 1])}",
            row=index[pos],
        )


def _check_object_index(index: pd.Index) -> None:
    """An index of Python objects: one kind of label, no mix of zoned and naive times, and no
    timestamps held as text (rows would be ordered as strings)."""
    present = [v for v in index if not (v is None or (isinstance(v, float) and np.isnan(v)))]
    kinds = {
        "time" if isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "tzinfo") else type(v).__name__
        for v in present
    }
    if len(kinds) > 1:
        raise InputTypeError(
            f"the index mixes labels of kinds {sorted(kinds)}; use one kind (times, or numbers)"
        )
    if kinds == {"time"}:
        zoned = {getattr(v, "tzinfo", None) is not None for v in present}
        if len(zoned) > 1:
            raise InputTypeError("the index mixes time-zoned and naive timestamps; localize or convert them")
    if kinds == {"str"}:
        sample = present[: min(len(present), 20)]
        try:
            pd.to_datetime(pd.Series(sample), format="ISO8601")
        except (ValueError, TypeError):
            return  # plain text labels: rows are taken in the order given
        raise InputTypeError(
            f"the index holds timestamps as text ({sample[0]!r}); parse them with pd.to_datetime first"
        )


def _check_values(
    values: np.ndarray, index: pd.Index, columns: pd.Index, allow_all_nan: bool = False
) -> None:
    inf = np.isinf(values)
    if inf.any():
        i, j = np.argwhere(inf)[0]
        raise InfiniteValueError(
            f"column {fmt_label(columns[j])} holds {values[i, j]} at row {fmt_label(index[i])}",
            column=columns[j],
            row=index[i],
        )
    with np.errstate(invalid="ignore"):
        huge = np.abs(values) > MAX_ABS_VALUE
    if huge.any():
        i, j = np.argwhere(huge)[0]
        raise ExtremeValueError(
            f"column {fmt_label(columns[j])} holds {values[i, j]:.3g} at row {fmt_label(index[i])}, beyond "
            f"the {MAX_ABS_VALUE:.0e} tsdiff accepts in magnitude",
            column=columns[j],
            row=index[i],
        )
    all_nan = np.isnan(values).all(axis=0)
    if all_nan.any() and not allow_all_nan:
        name = columns[int(np.argmax(all_nan))]
        raise AllNaNColumnError(f"column {fmt_label(name)} holds no value (all NaN)", column=name)


def align_columns(
    frame: ValidatedFrame, feature_names: Sequence[Any], named_at_fit: bool, owner: str = "the model"
) -> ValidatedFrame:
    """Put the columns of ``frame`` in fit-time order, matching them by name.

    Columns given by name (a DataFrame) are matched by name, so reordered columns are fine; a missing
    or an extra column raises :class:`~tsdiff.errors.ColumnMismatchError`. An array (no names) must
    have the fit-time number of columns and is taken position by position.
    """
    expected = list(feature_names)
    if not frame.named or not named_at_fit:
        if frame.values.shape[1] != len(expected):
            raise ColumnMismatchError(
                missing=expected[frame.values.shape[1] :] if frame.values.shape[1] < len(expected) else [],
                extra=list(range(len(expected), frame.values.shape[1])),
                prefix=f"X has {frame.values.shape[1]} features, but {owner} is expecting {len(expected)} "
                "features as input",
            )
        if not frame.named:
            return ValidatedFrame(frame.values, frame.index, pd.Index(expected), named=False)
    got = list(frame.columns)
    if got == expected:
        return frame
    present = set(got)
    missing = [c for c in expected if c not in present]
    wanted = set(expected)
    extra = [c for c in got if c not in wanted]
    if missing or extra:
        raise ColumnMismatchError(missing=missing, extra=extra)
    order = [got.index(c) for c in expected]
    return ValidatedFrame(frame.values[:, order], frame.index, pd.Index(expected), named=True)


class RobustScaler:
    """Per-column centring and scaling fitted on training data, robust to outliers.

    The centre is the median and the scale the inter-quantile range divided by the matching normal
    quantile distance (so the scale is the standard deviation for Gaussian data and unaffected by a
    few outliers). Two guards keep it safe: the scale never falls below ``min_std_fraction`` times the
    column's standard deviation (a mostly-constant column with rare bursts would otherwise be blown up
    to meaningless magnitudes), and a constant column gets the scale ``max(|centre|, 1)`` so it maps
    to exactly 0 in training and never divides by zero.

    Parameters
    ----------
    quantile_range
        Lower and upper percentiles whose distance measures the spread.
    min_std_fraction
        Lower bound on the scale, as a fraction of the column's standard deviation.
    clip
        If given, scaled values are clipped to ``[-clip, clip]``.
    """

    def __init__(
        self,
        quantile_range: tuple[float, float] = (25.0, 75.0),
        min_std_fraction: float = 0.1,
        clip: float | None = None,
    ) -> None:
        lo, hi = quantile_range
        if not 0.0 <= lo < hi <= 100.0:
            raise ParameterError(f"quantile_range must satisfy 0 <= low < high <= 100, got {quantile_range}")
        if clip is not None and clip <= 0:
            raise ParameterError(f"clip must be positive, got {clip}")
        self.quantile_range = (float(lo), float(hi))
        self.min_std_fraction = float(min_std_fraction)
        self.clip = clip

    def fit(self, values: np.ndarray) -> RobustScaler:
        from scipy.stats import norm

        values = np.asarray(values, dtype=np.float64)
        lo, hi = self.quantile_range
        q = np.nanpercentile(values, [lo, 50.0, hi], axis=0)
        center = q[1]
        gauss = norm.ppf(hi / 100.0) - norm.ppf(lo / 100.0) if 0 < lo and hi < 100 else 1.0
        spread = (q[2] - q[0]) / gauss
        std = np.nanstd(values, axis=0)
        scale = np.maximum(spread, self.min_std_fraction * std)
        tiny = scale <= 1e-12 * np.maximum(np.abs(center), 1.0)
        scale = np.where(tiny, np.maximum(np.abs(center), 1.0), scale)
        self.center_ = center
        self.scale_ = scale
        return self

    @classmethod
    def identity(cls, n_columns: int) -> RobustScaler:
        """A fitted scaler that leaves ``n_columns`` columns as they are (centre 0, scale 1)."""
        scaler = cls()
        scaler.center_ = np.zeros(n_columns, dtype=np.float64)
        scaler.scale_ = np.ones(n_columns, dtype=np.float64)
        return scaler

    def _check(self) -> None:
        if not hasattr(self, "scale_"):
            raise NotFittedError("this RobustScaler is not fitted yet; call fit first")

    def transform(self, values: np.ndarray) -> np.ndarray:
        self._check()
        out = (np.asarray(values, dtype=np.float64) - self.center_) / self.scale_
        if self.clip is not None:
            out = np.clip(out, -self.clip, self.clip)
        return out

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        self._check()
        return np.asarray(values, dtype=np.float64) * self.scale_ + self.center_

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (parameters and the fitted centre and scale)."""
        self._check()
        return {
            "quantile_range": list(self.quantile_range),
            "min_std_fraction": self.min_std_fraction,
            "clip": self.clip,
            "center": self.center_.tolist(),
            "scale": self.scale_.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> RobustScaler:
        scaler = cls(tuple(state["quantile_range"]), state["min_std_fraction"], state["clip"])
        scaler.center_ = np.asarray(state["center"], dtype=np.float64)
        scaler.scale_ = np.asarray(state["scale"], dtype=np.float64)
        return scaler


def fill_missing(values: np.ndarray, fill_value: float | np.ndarray = 0.0) -> np.ndarray:
    """Fill NaN cells with the last value seen in the same column, and leading NaN with ``fill_value``.

    Carrying the last observation forward is what a monitoring system does with a late metric; the
    fallback (0 after robust scaling, i.e. the training median) covers a column that starts missing.
    """
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    if not missing.any():
        return values.copy()
    n = values.shape[0]
    last = np.where(~missing, np.arange(n)[:, None], -1)
    np.maximum.accumulate(last, axis=0, out=last)
    cols = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    filled = values[np.maximum(last, 0), cols]
    fill = np.broadcast_to(np.asarray(fill_value, dtype=np.float64), (values.shape[1],))
    return np.where(last < 0, fill[None, :], filled)


def mean_over_present(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean along ``axis`` over the cells that hold a value; 0 (no evidence) where none does."""
    with warnings.catch_warnings():  # an all-missing slice gives NaN, replaced below
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nan_to_num(np.nanmean(values, axis=axis), nan=0.0)


def window_starts(n_rows: int, window: int, stride: int) -> np.ndarray:
    """Start rows of windows of length ``window`` every ``stride`` rows, the last one ending at the end.

    Every row lies in at least one window; the final window is shifted back so it ends exactly on the
    last row rather than running past it.
    """
    if window < 1 or stride < 1:
        raise ParameterError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    if stride > window:
        raise ParameterError(f"stride ({stride}) larger than window ({window}) would leave rows unscored")
    if n_rows < window:
        raise TooFewRowsError(n_rows, window, f"one window of {window} rows")
    starts = np.arange(0, n_rows - window + 1, stride)
    if starts[-1] != n_rows - window:
        starts = np.append(starts, n_rows - window)
    return starts


def sliding_windows(values: np.ndarray, window: int, starts: np.ndarray) -> np.ndarray:
    """Windows of ``values`` beginning at ``starts``: shape (n_windows, window, *values.shape[1:]).

    A read-only view where possible; copy it before writing to it.
    """
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    # sliding_window_view puts the window axis last; move it next to the window index
    return np.moveaxis(view[starts], -1, 1)


def windows_to_rows(
    per_window: np.ndarray,
    starts: np.ndarray,
    n_rows: int,
    how: Literal["center", "mean", "max"] = "center",
) -> np.ndarray:
    """Turn values computed per window position back into exactly one value per input row.

    Parameters
    ----------
    per_window
        Array (n_windows, window, ...): a value for every position of every window.
    starts
        Start row of each window (as from :func:`window_starts`), increasing.
    n_rows
        Number of rows of the series.
    how
        ``"center"``: each row takes its value from the window in which it lies closest to the
        centre (the middle of windows is where a window model sees context on both sides; the first
        and last rows come from the first and last windows). ``"mean"`` / ``"max"``: the mean / max
        over every window that covers the row.
    """
    per_window = np.asarray(per_window)
    n_win, window = per_window.shape[:2]
    starts = np.asarray(starts)
    if len(starts) != n_win:
        raise ParameterError(f"{n_win} windows but {len(starts)} start positions")
    tail = per_window.shape[2:]
    rows = np.arange(n_rows)
    if how == "center":
        centers = starts + (window - 1) / 2.0
        # windows are sorted by centre; pick the nearest centre among windows that cover the row
        k = np.searchsorted(centers, rows, side="left")
        k = np.clip(k, 0, n_win - 1)
        prev = np.clip(k - 1, 0, n_win - 1)
        use_prev = np.abs(rows - centers[prev]) <= np.abs(rows - centers[k])
        k = np.where(use_prev, prev, k)
        pos = rows - starts[k]
        if (pos < 0).any() or (pos >= window).any():
            raise ParameterError("windows do not cover every row; use window_starts to place them")
        return per_window[k, pos]
    if how not in ("mean", "max"):
        raise ParameterError(f"how must be 'center', 'mean' or 'max', got {how!r}")
    flat_rows = (starts[:, None] + np.arange(window)[None, :]).ravel()
    flat_vals = per_window.reshape((n_win * window, *tail))
    if how == "mean":
        total = np.zeros((n_rows, *tail), dtype=np.float64)
        np.add.at(total, flat_rows, flat_vals)
        count = np.bincount(flat_rows, minlength=n_rows).astype(np.float64)
        if (count == 0).any():
            raise ParameterError("windows do not cover every row; use window_starts to place them")
        return total / count.reshape((n_rows,) + (1,) * len(tail))
    out = np.full((n_rows, *tail), -np.inf)
    np.maximum.at(out, flat_rows, flat_vals)
    if np.isneginf(out).all(axis=tuple(range(1, out.ndim))).any():
        raise ParameterError("windows do not cover every row; use window_starts to place them")
    return out


def spread_to_rows(per_window: np.ndarray, starts: np.ndarray, window: int, n_rows: int) -> np.ndarray:
    """Mean, over the windows covering each row, of one value per window (O(rows), no copies per row).

    ``per_window`` has shape (n_windows, ...); the result has shape (n_rows, ...).
    """
    per_window = np.asarray(per_window, dtype=np.float64)
    starts = np.asarray(starts)
    tail = per_window.shape[1:]
    diff = np.zeros((n_rows + 1, *tail))
    np.add.at(diff, starts, per_window)
    np.subtract.at(diff, starts + window, per_window)
    count = np.zeros(n_rows + 1)
    np.add.at(count, starts, 1.0)
    np.subtract.at(count, starts + window, 1.0)
    total = np.cumsum(diff, axis=0)[:n_rows]
    cover = np.cumsum(count)[:n_rows]
    if (cover <= 0).any():
        raise ParameterError("windows do not cover every row; use window_starts to place them")
    return total / cover.reshape((n_rows,) + (1,) * len(tail))


def trailing_mean(values: np.ndarray, length: int) -> np.ndarray:
    """Moving mean over the ``length`` rows ending at each row (fewer at the start): no row after it
    is used, so a live row's value is final when it arrives."""
    n = np.asarray(values).shape[0]
    hi = np.arange(1, n + 1)
    return _span_mean(values, length, np.maximum(hi - length, 0), hi)


def _span_mean(values: np.ndarray, length: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of ``values[lo[i]:hi[i]]`` for every row i, from one cumulative sum (a copy when
    ``length`` <= 1)."""
    values = np.asarray(values, dtype=np.float64)
    if length <= 1:
        return values.copy()
    csum = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0)])
    counts = (hi - lo).reshape((len(lo),) + (1,) * (values.ndim - 1))
    return (csum[hi] - csum[lo]) / counts


def centered_mean(values: np.ndarray, length: int) -> np.ndarray:
    """Moving mean over ``length`` rows centred on each row (fewer rows at the two ends).

    ``values`` has shape (n_rows, ...); the result has the same shape. A row's value uses the
    ``length - length // 2 - 1`` rows after it, which is the delay such smoothing adds to a live
    stream.
    """
    return window_mean(values, length, length - length // 2 - 1)


def window_mean(values: np.ndarray, length: int, ahead: int) -> np.ndarray:
    """Moving mean over ``length`` rows, ``ahead`` of them after each row and the rest before it
    and the row itself (fewer rows at the two ends): a live row's value is final ``ahead`` rows
    after it arrives."""
    n = np.asarray(values).shape[0]
    lo = np.clip(np.arange(n) - (length - ahead - 1), 0, n)
    hi = np.clip(np.arange(n) + ahead + 1, 0, n)
    return _span_mean(values, length, lo, hi)

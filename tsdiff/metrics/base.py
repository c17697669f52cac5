"""Shared helpers of :mod:`tsdiff.metrics`: input checks, runs of ones, threshold blocks.

Everything here is numpy only, so importing the metrics stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from tsdiff.errors import EmptyInputError, InfiniteValueError, InputError, ParameterError

#: TSB-AD samples this many evenly spaced thresholds for the oracle PA/event/range/affiliation F1.
N_ORACLE_THRESHOLDS = 100
#: Largest predictions matrix (thresholds x points) built at once; bounds the memory of the oracle.
MAX_BLOCK_CELLS = 4_000_000


# ----------------------------------------------------------------------------------------- inputs
def _to_float_1d(x: Any, name: str) -> tuple[np.ndarray, pd.Index | None]:
    """Turn an array-like or pandas object into a 1-d float array, keeping the index for messages."""
    index = None
    if isinstance(x, pd.DataFrame):
        if x.shape[1] != 1:
            raise InputError(f"{name} must be one column, got a DataFrame with {x.shape[1]}", column=name)
        x = x.iloc[:, 0]
    if isinstance(x, pd.Series):
        index = x.index
        try:
            arr = x.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name} must hold numbers ({exc})", column=name) from exc
    else:
        try:
            arr = np.asarray(x, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name} must hold numbers ({exc})", column=name) from exc
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-d, got shape {arr.shape}", column=name)
    if arr.size == 0:
        raise EmptyInputError(f"{name} is empty", column=name)
    return arr, index


def _row(index: pd.Index | None, pos: int) -> Any:
    return index[pos] if index is not None else pos


def check_binary(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a bool array, raising :class:`InputError` unless every value is 0 or 1."""
    arr, index = _to_float_1d(x, name)
    bad = np.flatnonzero((arr != 0) & (arr != 1))  # NaN is caught here too
    if bad.size:
        pos = int(bad[0])
        row = _row(index, pos)
        raise InputError(f"{name} must be 0 or 1; row {row!r} holds {arr[pos]!r}", column=name, row=row)
    return arr.astype(bool)


def check_scores(x: Any, name: str = "scores") -> np.ndarray:
    """Return ``x`` as a float array, raising :class:`InputError` on NaN or infinite values."""
    arr, index = _to_float_1d(x, name)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        pos = int(bad[0])
        row = _row(index, pos)
        cls = InfiniteValueError if np.isinf(arr[pos]) else InputError
        raise cls(f"{name} must be finite; row {row!r} holds {arr[pos]!r}", column=name, row=row)
    return arr


def check_same_length(**arrays: np.ndarray | None) -> None:
    """Raise :class:`InputError` unless all given (non-None) arrays have one length."""
    given = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(given.values())) > 1:
        desc = ", ".join(f"{k} has {v}" for k, v in given.items())
        raise InputError(f"inputs must have the same length: {desc}")


def check_inputs(
    labels: ArrayLike, scores: ArrayLike | None, pred: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Validate labels, scores and predictions together; returns (bool, float or None, bool or None)."""
    y = check_binary(labels, "labels")
    s = None if scores is None else check_scores(scores)
    p = None if pred is None else check_binary(pred, "pred")
    check_same_length(labels=y, scores=s, pred=p)
    return y, s, p


def check_window(sliding_window: Any) -> int:
    """Return the sliding window as an int >= 0, else raise :class:`ParameterError`."""
    if isinstance(sliding_window, (bool, np.bool_)) or not isinstance(sliding_window, (int, np.integer)):
        raise ParameterError(f"sliding_window must be an int, got {sliding_window!r}")
    if sliding_window < 0:
        raise ParameterError(f"sliding_window must be >= 0, got {sliding_window}")
    return int(sliding_window)


# ------------------------------------------------------------------------------------------- runs
def runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and inclusive ends of the runs of True in a 1-d bool array."""
    d = np.diff(np.concatenate(([0], x.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1


def tsbad_runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs as TSB-AD's ``range_convers_new`` finds them.

    Quirk reproduced: it finds runs from the 0->1 / 1->0 transitions only, so an all-ones vector
    (no transition at all) has *no* run.
    """
    if x.size and x.all():
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    return runs(x)


def py_max(values: Sequence[float] | np.ndarray) -> float:
    """``max()`` of Python over floats, as TSB-AD uses it.

    Quirk reproduced: when the first value is NaN the result is NaN (nothing compares greater than
    NaN); otherwise later NaNs are skipped.
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0 or math.isnan(v[0]):
        return math.nan
    return float(np.nanmax(v))


def first_argmax(values: np.ndarray) -> int:
    """Index that :func:`py_max` picks (the first maximum; 0 when the first value is NaN)."""
    v = np.asarray(values, dtype=float)
    if math.isnan(v[0]):
        return 0
    return int(np.nanargmax(v))


# ------------------------------------------------------------------------------- labels & blocks
@dataclass(frozen=True)
class LabelInfo:
    """Everything about the labels that the F1 family needs, computed once."""

    y: np.ndarray  # bool labels
    n: int
    n_pos: int
    seg_start: np.ndarray  # true runs of anomalies (inclusive ends)
    seg_end: np.ndarray
    tsb_start: np.ndarray  # runs as range_convers_new sees them (all-ones quirk)
    tsb_end: np.ndarray
    cum: np.ndarray  # cum[i] = number of anomalies in y[:i]

    @classmethod
    def from_labels(cls, y: np.ndarray) -> LabelInfo:
        s, e = runs(y)
        ts, te = tsbad_runs(y)
        cum = np.concatenate(([0], np.cumsum(y, dtype=np.int64)))
        return cls(y, len(y), int(y.sum()), s, e, ts, te, cum)


@dataclass(frozen=True)
class PredBlock:
    """A block of prediction rows (one per threshold) with their prefix counts."""

    m: np.ndarray  # (T, n) bool predictions
    cum: np.ndarray  # (T, n + 1) int32, cum[:, i] = predictions in m[:, :i]

    @classmethod
    def from_matrix(cls, m: np.ndarray) -> PredBlock:
        cum = np.zeros((m.shape[0], m.shape[1] + 1), dtype=np.int32)
        np.cumsum(m, axis=1, dtype=np.int32, out=cum[:, 1:])
        return cls(m, cum)

    def count(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """(T, k) number of predictions within the inclusive ranges [start, end]."""
        return self.cum[:, end + 1] - self.cum[:, start]


def oracle_thresholds(scores: np.ndarray) -> np.ndarray:
    """TSB-AD's oracle thresholds: 100 evenly spaced values from min to max (predict ``score > t``)."""
    return np.linspace(scores.min(), scores.max(), N_ORACLE_THRESHOLDS)


def threshold_blocks(scores: np.ndarray, thresholds: np.ndarray) -> Iterator[PredBlock]:
    """Yield the predictions ``scores > t`` for the thresholds, a few rows at a time."""
    step = max(1, MAX_BLOCK_CELLS // max(1, len(scores)))
    for i in range(0, len(thresholds), step):
        yield PredBlock.from_matrix(scores[None, :] > thresholds[i : i + step, None])


def pred_block(pred: np.ndarray) -> PredBlock:
    """A one-row block for given predictions."""
    return PredBlock.from_matrix(pred[None, :])


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0 (scikit-learn's zero_division=0)."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


RowsFn = Callable[[PredBlock, LabelInfo], np.ndarray]


def f1_family(
    rows_fn: RowsFn,
    labels: ArrayLike,
    scores: ArrayLike | None,
    pred: ArrayLike | None,
    oracle: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> float:
    """One F1-family metric: at ``pred`` when given, else the oracle best over TSB-AD's thresholds
    (or ``oracle(labels, scores)``, for a metric whose oracle searches other thresholds)."""
    y, s, p = check_inputs(labels, scores, pred)
    info = LabelInfo.from_labels(y)
    if info.n_pos == 0:
        return math.nan
    if p is not None:
        return float(rows_fn(pred_block(p), info)[0])
    if s is None:
        raise InputError("give scores or pred")
    if oracle is not None:
        return oracle(y, s)
    values = np.concatenate([rows_fn(b, info) for b in threshold_blocks(s, oracle_thresholds(s))])
    return py_max(values)

"""All TSB-AD 1.5 metrics at once (:func:`evaluate`) and the oracle thresholds behind them."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from tsdiff.errors import ParameterError
from tsdiff.metrics.affiliation import affiliation_f_rows
from tsdiff.metrics.base import (
    LabelInfo,
    check_inputs,
    check_window,
    first_argmax,
    oracle_thresholds,
    pred_block,
    py_max,
    threshold_blocks,
)
from tsdiff.metrics.curves import auc_pr_values, auc_roc_values, vus_values
from tsdiff.metrics.f1 import (
    best_point_f1,
    event_f1_rows,
    point_adjusted_f1_rows,
    range_f1_rows,
    standard_f1_rows,
)

F1Kind = Literal["standard", "point_adjusted", "event", "range", "affiliation"]

#: Keys of the F1 family in :func:`evaluate`, with the per-row function that computes each.
_ROW_FUNCS = {
    "PA-F1": point_adjusted_f1_rows,
    "Event-based-F1": event_f1_rows,
    "R-based-F1": range_f1_rows,
    "Affiliation-F": affiliation_f_rows,
}
_KIND_KEYS = {
    "point_adjusted": "PA-F1",
    "event": "Event-based-F1",
    "range": "R-based-F1",
    "affiliation": "Affiliation-F",
}

METRIC_KEYS = (
    "AUC-PR",
    "AUC-ROC",
    "VUS-PR",
    "VUS-ROC",
    "Standard-F1",
    "PA-F1",
    "Event-based-F1",
    "R-based-F1",
    "Affiliation-F",
)


def evaluate(
    labels: ArrayLike, scores: ArrayLike, sliding_window: int = 100, pred: ArrayLike | None = None
) -> dict[str, float | str]:
    """Every metric of TSB-AD 1.5's ``get_metrics`` (version='opt', thre=250) in one call.

    The threshold-free metrics (AUC-PR, AUC-ROC, VUS-PR, VUS-ROC) always use ``scores``. The F1
    family (Standard-F1, PA-F1, Event-based-F1, R-based-F1, Affiliation-F) is computed at ``pred``
    when given. **When ``pred`` is None those five are oracle values**: each one is the best over
    thresholds chosen *with the labels* (all distinct scores for Standard-F1, 100 evenly spaced
    values for the others), exactly as TSB-AD does. They are upper bounds, not what a detector with
    a fixed threshold would achieve; ``F1-threshold`` says which mode was used.

    Parameters
    ----------
    labels
        0/1 ground truth, one per point.
    scores
        Anomaly scores, higher means more anomalous; finite.
    sliding_window
        Largest VUS buffer length (see :func:`~tsdiff.metrics.choose_sliding_window`).
    pred
        Optional 0/1 predictions for the F1 family.

    Returns
    -------
    dict
        The nine metric keys (floats) plus ``"F1-threshold"``: ``"given"`` or ``"oracle"``.
        When the labels hold no anomaly every metric is NaN (none is defined without a positive
        class); Affiliation-F is also NaN when nothing is predicted (see
        :func:`~tsdiff.metrics.affiliation_f`).
    """
    window = check_window(sliding_window)
    y, s, p = check_inputs(labels, scores, pred)
    assert s is not None
    out: dict[str, float | str] = dict.fromkeys(METRIC_KEYS, math.nan)
    out["F1-threshold"] = "given" if p is not None else "oracle"
    info = LabelInfo.from_labels(y)
    if info.n_pos == 0:
        return out

    out["AUC-PR"] = auc_pr_values(y, s)
    out["AUC-ROC"] = auc_roc_values(y, s)
    out["VUS-ROC"], out["VUS-PR"] = vus_values(y, s, window)

    if p is not None:
        block = pred_block(p)
        out["Standard-F1"] = float(standard_f1_rows(block, info)[0])
        for key, fn in _ROW_FUNCS.items():
            out[key] = float(fn(block, info)[0])
        return out

    out["Standard-F1"] = best_point_f1(y, s)[0]
    values: dict[str, list[np.ndarray]] = {key: [] for key in _ROW_FUNCS}
    for block in threshold_blocks(s, oracle_thresholds(s)):  # predictions built once per block
        for key, fn in _ROW_FUNCS.items():
            values[key].append(fn(block, info))
    for key, parts in values.items():
        out[key] = py_max(np.concatenate(parts))
    return out


def best_f1_threshold(labels: ArrayLike, scores: ArrayLike, kind: F1Kind = "standard") -> tuple[float, float]:
    """The oracle threshold of one F1-family metric, and the value it reaches.

    Parameters
    ----------
    labels
        0/1 ground truth, one per point.
    scores
        Anomaly scores; finite.
    kind
        ``"standard"``, ``"point_adjusted"``, ``"event"``, ``"range"`` or ``"affiliation"``.

    Returns
    -------
    tuple of float
        ``(threshold, value)``. Mind TSB-AD's conventions: for ``"standard"`` the predictions are
        ``scores >= threshold`` (a distinct score); for the others ``scores > threshold`` (one of
        ``linspace(min, max, 100)``). The first best threshold wins ties. NaN, NaN without anomalies.
    """
    y, s, _ = check_inputs(labels, scores)
    assert s is not None
    info = LabelInfo.from_labels(y)
    if info.n_pos == 0:
        return math.nan, math.nan
    if kind == "standard":
        value, threshold = best_point_f1(y, s)
        return threshold, value
    if kind not in _KIND_KEYS:
        choices = ", ".join(map(repr, ["standard", *_KIND_KEYS]))
        raise ParameterError(f"kind must be one of {choices}; got {kind!r}")
    fn = _ROW_FUNCS[_KIND_KEYS[kind]]
    thresholds = oracle_thresholds(s)
    values = np.concatenate([fn(b, info) for b in threshold_blocks(s, thresholds)])
    return float(thresholds[first_argmax(values)]), py_max(values)

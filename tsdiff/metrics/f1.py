"""Threshold-dependent F1 scores: point-wise, point-adjusted, event-based and range-based.

Each public function takes ``labels`` (0/1 ground truth, one per point) and either ``pred`` (0/1
predictions, scored as they are) or ``scores`` (anomaly scores, used only without ``pred``). With
scores alone it reports the best value over TSB-AD 1.5's candidate thresholds (100 thresholds
``linspace(min, max, 100)``, predicting ``scores > t``, unless a function says otherwise). That
second mode is an **oracle**: it looks at the labels to pick the threshold, so it is an upper
bound of what a deployed detector would get. Each returns an F1 in [0, 1], NaN when the labels
hold no anomaly.

The ``*_rows`` helpers take a :class:`~tsdiff.metrics.base.PredBlock` (one prediction row per
threshold) and return one value per row, so every threshold is scored in one numpy pass.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from tsdiff.metrics.base import LabelInfo, PredBlock, f1_family, safe_div
from tsdiff.metrics.curves import ranking_curve

#: TSB-AD adds this to the denominator of the oracle point-wise F1 (``metric_PointF1``).
POINT_F1_EPS = 1e-5
#: ... and this one to the event-based and affiliation F1 (``basic_metricor.eps``).
EVENT_F1_EPS = 1e-15
#: Weight of the existence reward in the range-based recall (Tatbul et al.), as in TSB-AD.
RANGE_ALPHA = 0.2


def _f1_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Point-wise F1 = 2TP / (2TP + FP + FN), 0 when undefined (scikit-learn's zero_division=0)."""
    return safe_div(2 * tp, 2 * tp + fp + fn)


# ------------------------------------------------------------------------------------ per-row
def standard_f1_rows(block: PredBlock, info: LabelInfo) -> np.ndarray:
    """Point-wise F1 of each prediction row."""
    tp = block.count(info.seg_start, info.seg_end).sum(axis=1)
    n_pred = block.cum[:, -1]
    return _f1_counts(tp, n_pred - tp, info.n_pos - tp)


def point_adjusted_f1_rows(block: PredBlock, info: LabelInfo) -> np.ndarray:
    """F1 after point adjustment: a hit anywhere in an anomaly segment marks the whole segment."""
    hit = block.count(info.seg_start, info.seg_end)  # (T, segments)
    lengths = info.seg_end - info.seg_start + 1
    tp = ((hit > 0) * lengths).sum(axis=1)
    if len(info.seg_start) and info.seg_start[0] == 0:
        # Quirk of TSB-AD's _adjust_predicts: it back-fills with range(i, 0, -1), which never reaches
        # index 0, so a segment starting at 0 keeps point 0 unpredicted unless it was predicted.
        tp = tp - ((hit[:, 0] > 0) & ~block.m[:, 0])
    n_pred = block.cum[:, -1]
    fp = n_pred - hit.sum(axis=1)
    return _f1_counts(tp, fp, info.n_pos - tp)


def event_f1_rows(block: PredBlock, info: LabelInfo) -> np.ndarray:
    """Event-based F1: recall over anomaly events (hit or not), precision over points."""
    ends = info.seg_end.copy()
    if len(ends) and ends[-1] == info.n - 1:
        # Quirk of TSB-AD's _get_events: an event running to the last point ends one point early,
        # so a last-point-only event can never be detected.
        ends[-1] -= 1
    n_events = len(ends)
    detected = (block.count(info.seg_start, ends) > 0).sum(axis=1)
    recall = detected / n_events if n_events else np.full(len(detected), math.nan)
    tp = block.count(info.seg_start, info.seg_end).sum(axis=1)
    precision = safe_div(tp, block.cum[:, -1])
    return 2 * recall * precision / (recall + precision + EVENT_F1_EPS)


def _pred_runs(block: PredBlock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, start and inclusive end of every run of predictions, row-major order.

    Rows that are all ones have no run (the ``range_convers_new`` quirk).
    """
    m = block.m
    n = m.shape[1]
    starts = m.copy()
    starts[:, 1:] &= ~m[:, :-1]
    ends = m.copy()
    ends[:, :-1] &= ~m[:, 1:]
    rows, s = np.nonzero(starts)
    _, e = np.nonzero(ends)
    keep = ~((s == 0) & (e == n - 1))  # a full row
    return rows[keep], s[keep], e[keep]


def range_f1_rows(block: PredBlock, info: LabelInfo) -> np.ndarray:
    """Range-based F1 of Tatbul et al. (NeurIPS 2018) with TSB-AD's settings.

    Recall: alpha = 0.2 existence reward + 0.8 overlap reward per anomaly range; precision: the same
    with the roles of labels and predictions swapped and alpha = 0. Flat positional bias, cardinality
    factor 1 / (number of overlapping ranges of the other side), 0 if none.
    """
    n_rows = block.m.shape[0]
    ls, le = info.tsb_start, info.tsb_end
    r_rows, r_s, r_e = _pred_runs(block)
    n_runs = np.bincount(r_rows, minlength=n_rows)

    # recall, over the label ranges
    if len(ls):
        hit = block.count(ls, le)  # (T, ranges)
        # runs overlapping [a, b] = (run covering a) + (runs starting in (a, b])
        key = r_rows * (info.n + 1) + r_s
        base = (np.arange(n_rows) * (info.n + 1))[:, None]
        starts_in = np.searchsorted(key, base + le[None, :], side="right") - np.searchsorted(
            key, base + ls[None, :], side="right"
        )
        overlapping = block.m[:, ls].astype(np.int64) + starts_in
        overlapping[n_runs == 0] = 0
        overlap = safe_div(hit / (le - ls + 1), overlapping)
        score = RANGE_ALPHA * (hit > 0) + (1 - RANGE_ALPHA) * overlap
        recall = score.sum(axis=1) / len(ls)
    else:
        recall = np.zeros(n_rows)

    # precision, over the predicted runs
    covered = info.cum[r_e + 1] - info.cum[r_s]
    n_label_ranges = np.searchsorted(ls, r_e, side="right") - np.searchsorted(le, r_s, side="left")
    contrib = safe_div(covered / (r_e - r_s + 1), n_label_ranges)
    precision = safe_div(np.bincount(r_rows, weights=contrib, minlength=n_rows), n_runs)
    return safe_div(2 * recall * precision, recall + precision)


# --------------------------------------------------------------------------------------- public
def best_point_f1(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """Oracle point-wise F1 of TSB-AD (``metric_PointF1``) and its threshold (predict ``s >= t``).

    Quirks reproduced: every distinct score is a candidate (scikit-learn's precision_recall_curve),
    and F1 = 2PR / (P + R + 1e-5).
    """
    n_pos = int(y.sum())
    if n_pos == 0:
        return math.nan, math.nan
    tps, fps, thr = ranking_curve(y, s)
    precision = tps / (tps + fps)
    recall = tps / n_pos
    f1 = 2 * precision * recall / (precision + recall + POINT_F1_EPS)
    best = int(np.argmax(f1))
    # the curve's closing point (precision 1, recall 0) scores 0, hence the max with 0
    return max(float(f1[best]), 0.0), float(thr[best])


def standard_f1(labels: ArrayLike, scores: ArrayLike | None = None, pred: ArrayLike | None = None) -> float:
    """Point-wise F1 of the anomaly class. Without ``pred``, the **oracle** best F1 over all distinct
    score thresholds (TSB-AD's ``metric_PointF1``, with its +1e-5 in the denominator)."""
    return f1_family(standard_f1_rows, labels, scores, pred, oracle=lambda y, s: best_point_f1(y, s)[0])


def point_adjusted_f1(
    labels: ArrayLike, scores: ArrayLike | None = None, pred: ArrayLike | None = None
) -> float:
    """Point-adjusted F1 (Xu et al., 2018): one hit in an anomaly segment counts the whole segment."""
    return f1_family(point_adjusted_f1_rows, labels, scores, pred)


def event_f1(labels: ArrayLike, scores: ArrayLike | None = None, pred: ArrayLike | None = None) -> float:
    """Event-based F1: recall counts anomaly events with at least one hit, precision is point-wise
    (2PR / (P + R + 1e-15), like TSB-AD)."""
    return f1_family(event_f1_rows, labels, scores, pred)


def range_f1(labels: ArrayLike, scores: ArrayLike | None = None, pred: ArrayLike | None = None) -> float:
    """Range-based F1 (Tatbul et al., 2018) with alpha = 0.2, flat bias and 1/x cardinality."""
    return f1_family(range_f1_rows, labels, scores, pred)

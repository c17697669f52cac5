"""Threshold-free metrics: AUC-ROC, AUC-PR and the volumes under the range surfaces (VUS).

The numbers match TSB-AD 1.5 (``metric_ROC``/``metric_PR``, which are scikit-learn's
``roc_auc_score``/``average_precision_score``, and ``generate_curve(..., version='opt', thre=250)``),
but the code is vectorised: one sort of the scores, then cumulative sums, instead of a Python loop
over thresholds and windows. Each function takes ``labels`` (0/1 ground truth, one per point) and
``scores`` (higher means more anomalous; finite).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from tsdiff.metrics.base import check_inputs, check_window, tsbad_runs

#: Number of thresholds TSB-AD's VUS ('opt' version) samples from the sorted scores.
VUS_THRESHOLDS = 250


def ranking_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True/false positives of ``s >= t`` for every distinct score ``t``, highest ``t`` first.

    This is the curve behind scikit-learn's ROC and precision-recall functions.
    """
    order = np.argsort(s, kind="mergesort")[::-1]
    s_sorted = s[order]
    last = np.concatenate((np.flatnonzero(np.diff(s_sorted)), [len(s) - 1]))
    tps = np.cumsum(y[order], dtype=np.int64)[last]
    fps = last + 1 - tps
    return tps, fps, s_sorted[last]


def auc_roc_values(y: np.ndarray, s: np.ndarray) -> float:
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    tps, fps, _ = ranking_curve(y, s)
    tpr = np.concatenate(([0.0], tps / n_pos))
    fpr = np.concatenate(([0.0], fps / n_neg))
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def auc_pr_values(y: np.ndarray, s: np.ndarray) -> float:
    n_pos = int(y.sum())
    if n_pos == 0:
        return math.nan
    tps, fps, _ = ranking_curve(y, s)
    precision = tps / (tps + fps)
    recall = np.concatenate(([0.0], tps / n_pos))
    # step-wise average precision (no interpolation), as scikit-learn's average_precision_score
    return float(np.sum(np.diff(recall) * precision))


def auc_roc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve of the point-wise scores: the trapezoidal area under (FPR, TPR)
    over all distinct thresholds; NaN when the labels hold only one class."""
    return auc_roc_values(*check_inputs(labels, scores)[:2])


def auc_pr(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the precision-recall curve (average precision) of the point-wise scores: the sum
    over distinct thresholds of (recall increase) x precision, like scikit-learn's
    ``average_precision_score``; NaN when there is no anomaly."""
    return auc_pr_values(*check_inputs(labels, scores)[:2])


# -------------------------------------------------------------------------------------------- VUS
def _segment_max(s: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Maximum of ``s`` over each inclusive range [start, end] (ranges sorted, disjoint)."""
    padded = np.concatenate((s, [-np.inf]))
    idx = np.empty(2 * len(start), dtype=np.intp)
    idx[0::2] = start
    idx[1::2] = end + 1
    return np.maximum.reduceat(padded, idx)[0::2]


def _count_ge(sorted_asc: np.ndarray, t: np.ndarray) -> np.ndarray:
    """How many values of ``sorted_asc`` are >= each threshold in ``t``."""
    return len(sorted_asc) - np.searchsorted(sorted_asc, t, side="left")


def vus_values(
    y: np.ndarray, s: np.ndarray, window: int, n_thresholds: int = VUS_THRESHOLDS
) -> tuple[float, float]:
    """VUS-ROC and VUS-PR of TSB-AD's ``RangeAUC_volume_opt``, vectorised over thresholds.

    For every buffer length ``w`` in 0..window, the labels are extended by sqrt ramps of w//2 points
    on each side of every anomaly, and range-aware TPR/FPR/precision are computed at 250 thresholds.
    With ``X`` = sum of the ramp values of the *normal* points predicted anomalous:
    TP = (anomalies predicted) + X, P_new = P + X/2, recall = min(TP / P_new, 1),
    TPR = recall x (share of extended ranges hit), FPR = (N_pred - TP) / (n - P_new),
    precision = TP / N_pred.  ROC area is a trapezoid with (0,0) and (1,1) added; PR area is
    sum(dTPR x precision) from TPR 0.  VUS = mean over the window+1 buffer lengths.
    """
    n = len(y)
    seq_s, seq_e = tsbad_runs(y)
    n_pos = int(y.sum())
    if len(seq_s) == 0:  # no anomaly (or, TSB-AD quirk, no normal point): undefined
        return math.nan, math.nan

    # Quirk: thresholds are the scores at positions linspace(0, n-1, 250) *truncated to int* of the
    # descending sort, and a point is predicted when score >= threshold (ties all count).
    desc = np.sort(s)[::-1]
    thr = desc[np.linspace(0, n - 1, n_thresholds).astype(int)]
    n_pred = _count_ge(np.sort(s), thr).astype(float)
    hits = _count_ge(np.sort(s[y]), thr).astype(float)  # anomalies predicted

    # normal points that any ramp can reach (within window//2 of an anomaly)
    half_max = window // 2
    cover = np.zeros(n + 1, dtype=np.int64)
    np.add.at(cover, np.maximum(seq_s - half_max, 0), 1)
    np.add.at(cover, np.minimum(seq_e + half_max, n - 1) + 1, -1)
    cand = np.flatnonzero((np.cumsum(cover[:n]) > 0) & ~y)
    cand = cand[np.argsort(-s[cand], kind="stable")]  # highest score first
    n_cand_ge = _count_ge(s[cand][::-1], thr)

    auc = np.empty(window + 1)
    ap = np.empty(window + 1)
    for w in range(window + 1):
        half = w // 2
        # extended labels on the candidates: ramps sqrt(1 - d/w), d = 1..w//2, summed then capped at 1
        if half > 0 and len(cand):
            d = np.arange(1, half + 1)
            ramp = np.sqrt(1 - d / w)
            after = seq_e[:, None] + d[None, :]
            before = seq_s[:, None] - d[None, :]
            pos = np.concatenate((after.ravel(), before.ravel()))
            val = np.concatenate((np.broadcast_to(ramp, after.shape).ravel(),) * 2)
            keep = (pos >= 0) & (pos < n)
            ext = np.minimum(np.bincount(pos[keep], weights=val[keep], minlength=n), 1.0)[cand]
            extra = np.concatenate(([0.0], np.cumsum(ext)))[n_cand_ge]
        else:
            extra = np.zeros(n_thresholds)

        # extended ranges of this buffer length: anomalies closer than 2*(w//2) are merged
        split = np.flatnonzero(seq_e[:-1] + half < seq_s[1:] - half)
        g_start = np.maximum(seq_s[np.concatenate(([0], split + 1))] - half, 0)
        g_end = np.minimum(seq_e[np.concatenate((split, [len(seq_s) - 1]))] + half, n - 1)
        existence = _count_ge(np.sort(_segment_max(s, g_start, g_end)), thr) / len(g_start)

        tp = hits + extra
        p_new = n_pos + extra / 2
        tpr = np.minimum(tp / p_new, 1.0) * existence
        fpr = (n_pred - tp) / (n - p_new)
        precision = tp / n_pred

        tpr_full = np.concatenate(([0.0], tpr, [1.0]))
        fpr_full = np.concatenate(([0.0], fpr, [1.0]))
        auc[w] = np.sum(np.diff(fpr_full) * (tpr_full[1:] + tpr_full[:-1]) / 2)
        ap[w] = np.sum(np.diff(np.concatenate(([0.0], tpr))) * precision)
    return float(auc.mean()), float(ap.mean())


def vus(labels: ArrayLike, scores: ArrayLike, sliding_window: int = 100) -> tuple[float, float]:
    """Volumes under the range-ROC and range-PR surfaces (Paparrizos et al., VLDB 2022).

    Range-aware AUCs reward scores that flag the neighbourhood of an anomaly, averaged over buffer
    lengths 0..``sliding_window`` so the result does not hinge on one buffer size. Reproduces
    TSB-AD 1.5's ``generate_curve(labels, scores, sliding_window, version='opt', thre=250)``.

    Parameters
    ----------
    sliding_window
        Largest buffer length (TSB-AD passes the detector's sliding window, see
        :func:`~tsdiff.metrics.choose_sliding_window`).

    Returns
    -------
    tuple of float
        ``(vus_roc, vus_pr)``; both NaN when the labels hold no anomaly or no normal point.
    """
    window = check_window(sliding_window)
    y, s, _ = check_inputs(labels, scores)
    return vus_values(y, s, window)


def vus_roc(labels: ArrayLike, scores: ArrayLike, sliding_window: int = 100) -> float:
    """Volume under the range-ROC surface; see :func:`vus` (NaN without anomalies)."""
    return vus(labels, scores, sliding_window)[0]


def vus_pr(labels: ArrayLike, scores: ArrayLike, sliding_window: int = 100) -> float:
    """Volume under the range-PR surface; see :func:`vus` (NaN without anomalies)."""
    return vus(labels, scores, sliding_window)[1]

"""Affiliation precision, recall and F (Huet, Navarro & Rossi, KDD 2022), as TSB-AD 1.5 reports them.

Each ground-truth event owns an *affiliation zone* (the points closer to it than to any other
event). Inside a zone, precision is the mean, over predicted points, of the probability that a
random point of the zone lies farther from the event than the prediction; recall is the same seen
from the event's points towards the nearest prediction. Both are averaged over zones.

Everything is closed form and vectorised over all predicted events (and all thresholds at once),
instead of a Python loop per event.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from tsdiff.metrics.base import (
    LabelInfo,
    PredBlock,
    check_inputs,
    f1_family,
    pred_block,
)
from tsdiff.metrics.f1 import EVENT_F1_EPS


def _zones(gt_start: np.ndarray, gt_stop: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Affiliation zones of half-open events [start, stop) on the time range [0, n]."""
    left = np.empty(len(gt_start))
    left[0] = 0.0
    left[1:] = (gt_stop[:-1] + gt_start[1:]) / 2
    right = np.empty(len(gt_start))
    right[:-1] = left[1:]
    right[-1] = float(n)
    return left, right


def _integral_min(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Integral of min(t, m) dt from 0 to x (x >= 0)."""
    return np.where(x <= m, x * x / 2, m * m / 2 + m * (x - m))


def _precision_outside(
    lo: np.ndarray,
    hi: np.ndarray,
    d_lo: np.ndarray,
    d_hi: np.ndarray,
    m: np.ndarray,
    j_len: np.ndarray,
    e_len: np.ndarray,
) -> np.ndarray:
    """Integral over a predicted piece [lo, hi] lying outside J of P(random zone point is farther).

    With d the distance to J, the survival function is 1 - (min(d, m) + d + |J|) / |E|, m being the
    distance from J to the nearer end of its zone.
    """
    length = hi - lo
    integral = _integral_min(d_hi, m) - _integral_min(d_lo, m) + (d_hi**2 - d_lo**2) / 2 + j_len * length
    return length - integral / e_len


def _recall_outside(
    ta: np.ndarray, tb: np.ndarray, pivot: np.ndarray, e0: np.ndarray, e1: np.ndarray
) -> np.ndarray:
    """Integral over [ta, tb] (one side of the prediction's nearest point ``pivot``) of the recall
    survival 1 - (min(|t-p|, t-e0, e1-t) + |t-p|) / |E|, exact by trapezoids between the kinks.
    """
    length = tb - ta
    kinks = np.stack([ta, tb, pivot, (e0 + e1) / 2, (e0 + pivot) / 2, (e1 + pivot) / 2], axis=1)
    kinks = np.sort(np.clip(kinks, ta[:, None], tb[:, None]), axis=1)
    p = pivot[:, None]
    dist = np.abs(kinks - p)
    g = np.minimum(np.minimum(dist, kinks - e0[:, None]), e1[:, None] - kinks) + dist
    integral = np.sum(np.diff(kinks, axis=1) * (g[:, 1:] + g[:, :-1]) / 2, axis=1)
    value = length - integral / (e1 - e0)
    # as in the reference: a pivot on the zone border scores 0
    return np.where((pivot <= e0) | (pivot >= e1) | (length <= 0), 0.0, value)


def _group_sum(group: np.ndarray, values: np.ndarray, n_rows: int, k_zones: int) -> np.ndarray:
    """(rows, zones) sums of piece values; float even when there is no piece."""
    sums = np.bincount(group, weights=values, minlength=n_rows * k_zones)
    return sums.astype(float, copy=False).reshape(n_rows, k_zones)


def affiliation_rows(block: PredBlock, info: LabelInfo) -> tuple[np.ndarray, np.ndarray]:
    """Affiliation precision and recall of every prediction row (precision NaN if nothing predicted)."""
    n_rows, n = block.m.shape
    gs, ge = info.seg_start.astype(float), info.seg_end + 1.0  # events [start, stop)
    k_zones = len(gs)
    zl, zr = _zones(gs, ge, n)

    # predicted events of every row, as half-open intervals
    m = block.m
    st = m.copy()
    st[:, 1:] &= ~m[:, :-1]
    en = m.copy()
    en[:, :-1] &= ~m[:, 1:]
    rows, a = np.nonzero(st)
    _, b = np.nonzero(en)
    a = a.astype(float)
    b = b + 1.0

    # cut them into pieces, one per zone they cross
    k_first = np.searchsorted(zl, a, side="right") - 1
    k_last = np.searchsorted(zl, b, side="left") - 1
    n_pieces = k_last - k_first + 1
    ev = np.repeat(np.arange(len(a)), n_pieces)
    offsets = np.concatenate(([0], np.cumsum(n_pieces)[:-1]))
    k = k_first[ev] + (np.arange(len(ev)) - offsets[ev])
    ps = np.maximum(a[ev], zl[k])
    pe = np.minimum(b[ev], zr[k])
    keep = pe > ps
    k, ps, pe, prow = k[keep], ps[keep], pe[keep], rows[ev][keep]
    group = prow * k_zones + k

    j0, j1, e0, e1 = gs[k], ge[k], zl[k], zr[k]
    e_len = e1 - e0
    j_len = j1 - j0

    # precision: inside J counts fully, the parts left/right of J by their survival integral
    inside = np.maximum(0.0, np.minimum(pe, j1) - np.maximum(ps, j0))
    m_edge = np.minimum(j0 - e0, e1 - j1)
    l_lo, l_hi = np.minimum(ps, j0), np.minimum(pe, j0)
    r_lo, r_hi = np.maximum(ps, j1), np.maximum(pe, j1)
    prec_piece = (
        inside
        + _precision_outside(l_lo, l_hi, j0 - l_hi, j0 - l_lo, m_edge, j_len, e_len)
        + _precision_outside(r_lo, r_hi, r_lo - j1, r_hi - j1, m_edge, j_len, e_len)
    )
    prec_sum = _group_sum(group, prec_piece, n_rows, k_zones)
    len_sum = _group_sum(group, pe - ps, n_rows, k_zones)
    has = len_sum > 0
    zone_prec = np.divide(prec_sum, len_sum, out=np.zeros_like(prec_sum), where=has)
    n_has = has.sum(axis=1)
    precision = np.full(n_rows, math.nan)
    ok = n_has > 0
    precision[ok] = zone_prec[ok].sum(axis=1) / n_has[ok]

    # recall: J is split between the pieces of its zone (each takes the part nearer to it)
    same_prev = np.zeros(len(group), dtype=bool)
    same_prev[1:] = group[1:] == group[:-1]
    same_next = np.zeros(len(group), dtype=bool)
    same_next[:-1] = same_prev[1:]
    sub_lo = e0.copy()
    sub_lo[same_prev] = ((pe[:-1] + ps[1:]) / 2)[same_prev[1:]]
    sub_hi = e1.copy()
    sub_hi[same_next] = ((pe[:-1] + ps[1:]) / 2)[same_next[:-1]]
    ja = np.maximum(j0, sub_lo)
    jb = np.minimum(j1, sub_hi)
    valid = jb > ja
    inside_r = np.maximum(0.0, np.minimum(jb, pe) - np.maximum(ja, ps))
    rec_piece = (
        inside_r
        + _recall_outside(np.minimum(ja, ps), np.minimum(jb, ps), ps, e0, e1)
        + _recall_outside(np.maximum(ja, pe), np.maximum(jb, pe), pe, e0, e1)
    )
    rec_piece = np.where(valid, rec_piece, 0.0)
    rec_sum = _group_sum(group, rec_piece, n_rows, k_zones)
    recall = (rec_sum / (ge - gs)[None, :]).mean(axis=1)
    return precision, recall


def affiliation_f_rows(block: PredBlock, info: LabelInfo) -> np.ndarray:
    """Affiliation F of every row: 2PR / (P + R + 1e-15), NaN when nothing is predicted."""
    precision, recall = affiliation_rows(block, info)
    return 2 * precision * recall / (precision + recall + EVENT_F1_EPS)


def affiliation_precision_recall(labels: ArrayLike, pred: ArrayLike) -> tuple[float, float]:
    """Affiliation precision and recall of given 0/1 predictions.

    Parameters
    ----------
    labels
        0/1 ground truth, one per point.
    pred
        0/1 predictions.

    Returns
    -------
    tuple of float
        ``(precision, recall)``; precision is NaN when nothing is predicted, both are NaN when the
        labels hold no anomaly (no affiliation zone exists).
    """
    y, _, p = check_inputs(labels, None, pred)
    info = LabelInfo.from_labels(y)
    if info.n_pos == 0:
        return math.nan, math.nan
    precision, recall = affiliation_rows(pred_block(p), info)
    return float(precision[0]), float(recall[0])


def affiliation_f(labels: ArrayLike, scores: ArrayLike | None = None, pred: ArrayLike | None = None) -> float:
    """Affiliation F-score (Huet et al., 2022): a distance-aware F1 that tolerates near misses.

    Arguments as for the functions of :mod:`tsdiff.metrics.f1` (``pred``, or the oracle over
    ``scores``). Returns 2PR / (P + R + 1e-15); NaN when the labels hold no anomaly, when ``pred``
    predicts nothing (affiliation precision is undefined), and - as in TSB-AD, whose ``max`` keeps a
    leading NaN - for constant scores, where the first threshold predicts nothing.
    """
    return f1_family(affiliation_f_rows, labels, scores, pred)

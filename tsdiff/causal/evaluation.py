"""How well a learned graph and root-cause rankings match a known truth."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def edge_recovery(learned: pd.DataFrame, truth: pd.DataFrame, match_lag: bool = True) -> dict[str, float]:
    """Precision, recall and F1 of learned edges against true ones, a metric's own past left out.

    Parameters
    ----------
    learned, truth
        Edge tables with ``cause``, ``effect`` and ``lag`` columns (a ``self_loop`` column in the
        truth is honoured). Same-time edges listed both ways (unoriented) count once, in the
        direction that is true if either is.
    match_lag
        Whether an edge must also have the right lag; if False, (cause, effect) pairs are compared.
    """

    def key(row: Any) -> tuple:
        return (row.cause, row.effect, int(row.lag)) if match_lag else (row.cause, row.effect)

    true_set = {key(r) for r in truth.itertuples(index=False) if r.cause != r.effect}
    found = {key(r) for r in learned.itertuples(index=False) if r.cause != r.effect}
    # an unoriented same-time pair was emitted both ways: keep one direction, the true one if any
    for r in learned.itertuples(index=False):
        if r.cause != r.effect and int(r.lag) == 0 and not getattr(r, "oriented", True):
            fwd = key(r)
            back = (r.effect, r.cause, 0) if match_lag else (r.effect, r.cause)
            if fwd in found and back in found:
                found.discard(back if fwd in true_set or back not in true_set else fwd)
    hits = len(found & true_set)
    precision = hits / len(found) if found else math.nan
    recall = hits / len(true_set) if true_set else math.nan
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "learned": len(found), "true": len(true_set)}


def top_k_accuracy(rankings: Sequence[Sequence[Any]], truths: Sequence[Sequence[Any]], k: int) -> float:
    """Share of cases where a true root cause is among the first ``k`` ranked metrics."""
    hits = [bool(set(truth) & set(list(ranked)[:k])) for ranked, truth in zip(rankings, truths, strict=True)]
    return float(np.mean(hits)) if hits else math.nan


def hit_rate(ranked: Sequence[Any], truth: Sequence[Any], percent: float = 100.0) -> float:
    """HitRate@P% (OmniAnomaly, Su et al. KDD 2019): share of the labelled causes found among the
    first ``floor(P% x len(truth))`` ranked metrics."""
    truth = set(truth)
    if not truth:
        return math.nan
    top = list(ranked)[: math.floor(percent / 100.0 * len(truth))]
    return len(truth.intersection(top)) / len(truth)

"""Ranking the metrics behind an anomaly: the violated metrics, likely origins first."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rank_root_causes(
    violation: np.ndarray,
    causes: Sequence[set[int]],
    level: float,
) -> list[int]:
    """Positions of the metrics whose mechanism broke, root causes first.

    Parameters
    ----------
    violation
        Mean violation score of each metric over the anomalous rows (K,).
    causes
        For each metric, the positions of its causes in the graph (its own past excluded).
    level
        A metric counts as violated when its mean violation exceeds this.

    Returns
    -------
    list[int]
        Violated metrics whose causes are all unviolated (the likely origins), by decreasing
        violation, then the other violated metrics (downstream effects), by decreasing violation.
        When no metric reaches ``level``, the single most violated metric.
    """
    v = np.nan_to_num(np.asarray(violation, dtype=np.float64), nan=0.0)
    violated = v > level
    if not violated.any():
        return [int(np.argmax(v))] if len(v) else []
    roots, downstream = [], []
    for j in np.argsort(-v, kind="stable"):
        if not violated[j]:
            continue
        (downstream if any(violated[c] for c in causes[j]) else roots).append(int(j))
    return roots + downstream

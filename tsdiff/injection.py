"""Synthetic anomalies injected into normal rows: label-free evidence of which model sees what.

A fused detector does not know, without labels, which of its components is the better one on a
given series. Injected anomalies are the strongest label-free signal known for that (Goswami et al.,
ICLR 2023): a copy of held-out normal rows gets a varied set of anomalies at known places, each
component scores it, and a component's skill is how well its scores put the injected rows first
(average precision above chance). :func:`inject` makes the copy, :func:`skill` measures it and
:func:`skill_weights` turns skills into fusion weights.

The kinds (:data:`KINDS`), each on one to three metrics for a stretch of rows, in units of each
metric's robust spread: ``spike`` (a few rows far off), ``level`` (a shift), ``trend`` (a ramp),
``variance`` (the noise multiplied), ``decoupled`` (the metric replaced by its own values from
elsewhere: its marginal kept, its relation to the other metrics broken) and ``swap`` (a stretch of
all metrics replaced by another stretch of the same rows: each row plausible, the context wrong).
"""

from __future__ import annotations

from typing import Any

import numpy as np

KINDS = ("spike", "level", "trend", "variance", "decoupled", "swap")
#: share of the rows an injected copy turns anomalous
INJECTED_SHARE = 0.15


def robust_spread(values: np.ndarray) -> np.ndarray:
    """Per column, the interquartile range over 1.349 (a standard deviation for Gaussian data),
    the standard deviation where that is 0, and 1 where both are (NaN ignored)."""
    with np.errstate(all="ignore"):
        q75, q25 = np.nanpercentile(values, [75, 25], axis=0)
        spread = (q75 - q25) / 1.349
        sd = np.nanstd(values, axis=0)
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, sd)
    return np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)


def inject(
    values: np.ndarray, rng: np.random.Generator, share: float = INJECTED_SHARE
) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``values`` (rows x metrics) with anomalies of every kind in turn, in separate
    stretches covering about ``share`` of the rows, and the 0/1 mask of the injected rows."""
    n, k = values.shape
    out = np.array(values, dtype=np.float64, copy=True)
    mask = np.zeros(n, dtype=np.int8)
    spread = robust_spread(values)
    budget, kind_no, tries = int(share * n), 0, 0
    while mask.sum() < budget and tries < 200:
        tries += 1
        kind = KINDS[kind_no % len(KINDS)]
        length = 3 if kind == "spike" else int(rng.integers(10, max(11, min(60, n // 10))))
        if length >= n - 2:
            break
        start = int(rng.integers(1, n - length))
        stop = start + length
        if mask[max(0, start - 5) : stop + 5].any():  # apart from the others
            continue
        cols = rng.choice(k, size=min(k, int(rng.integers(1, 4))), replace=False)
        sign = rng.choice([-1.0, 1.0], size=len(cols))
        s = spread[cols]
        rows = slice(start, stop)
        if kind == "spike":
            out[rows, cols] += sign * rng.uniform(6.0, 10.0, size=len(cols)) * s
        elif kind == "level":
            out[rows, cols] += sign * rng.uniform(3.0, 6.0, size=len(cols)) * s
        elif kind == "trend":
            ramp = np.linspace(0.0, 1.0, length)[:, None]
            out[rows, cols] += ramp * sign * rng.uniform(4.0, 8.0, size=len(cols)) * s
        elif kind == "variance":
            centre = np.nanmedian(values[rows][:, cols], axis=0)
            out[rows, cols] = (
                centre
                + (values[rows][:, cols] - centre) * rng.uniform(3.0, 6.0)
                + (rng.standard_normal((length, len(cols))) * s)
            )
        else:  # decoupled, swap: rows from elsewhere, far from these
            other = _elsewhere(n, start, length, rng)
            if other is None:
                continue
            source = slice(other, other + length)
            if kind == "decoupled":
                out[rows, cols] = values[source][:, cols]
            else:
                out[rows] = values[source]
        mask[rows] = 1
        kind_no += 1
    return out, mask


def _elsewhere(n: int, start: int, length: int, rng: np.random.Generator) -> int | None:
    """A start of ``length`` rows at least ``2 * length`` rows away from ``start`` (None: none)."""
    choices = [i for i in range(0, n - length) if abs(i - start) >= 2 * length]
    return int(rng.choice(choices)) if choices else None


def average_precision(mask: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of ``scores`` ranking the rows of ``mask`` (NaN scores last)."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    y = np.asarray(mask, dtype=bool)
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="stable")
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def skill(mask: np.ndarray, scores: np.ndarray, chance: float = 0.0) -> float:
    """Average precision above the share of injected rows, scaled to [0, 1], then above
    ``chance`` (what a random score reaches on this mask, see :func:`chance_skill`): 0 for a score
    no better than random."""
    base = float(np.mean(mask))
    ap = average_precision(mask, scores)
    if not np.isfinite(ap) or base >= 1.0:
        return 0.0
    raw = (ap - base) / (1.0 - base)
    return max(0.0, (raw - chance) / (1.0 - chance)) if chance < 1.0 else 0.0


def chance_skill(mask: np.ndarray, rng: np.random.Generator, draws: int = 50, level: float = 0.95) -> float:
    """The ``level`` quantile of the skill of random scores on ``mask``: with few injected rows a
    random score can look skilled by luck, and a component must do better than that to count."""
    return float(np.quantile([skill(mask, rng.random(len(mask))) for _ in range(draws)], level))


def stability(held_out: np.ndarray) -> float:
    """How alike a component's scores are in the two halves of its held-out rows: 1 minus the
    Kolmogorov-Smirnov distance between them (0 with fewer than 20 finite scores). A component whose
    score drifts within normal rows is less to be trusted on new ones."""
    from scipy.stats import ks_2samp

    x = np.asarray(held_out, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 20:
        return 0.0
    half = len(x) // 2
    return 1.0 - float(ks_2samp(x[:half], x[half:]).statistic)


def evidence(skills: dict[str, float], steadiness: dict[str, float]) -> dict[str, float]:
    """The weighting evidence of ``"injection-stability"``: skill x stability squared (a random score is
    stable but has no skill; a skilled score that drifts between the halves of normal rows counts
    less)."""
    return {name: max(0.0, float(skills[name])) * float(steadiness[name]) ** 2 for name in skills}


def skill_weights(skills: dict[str, float], given: dict[str, float], power: float = 2.0) -> dict[str, float]:
    """Fusion weights from skills: ``given * skill ** power``, divided by their sum (the given
    weights alone when no component shows any skill)."""
    raw = {name: float(given[name]) * max(0.0, float(s)) ** float(power) for name, s in skills.items()}
    total = sum(raw.values())
    if total <= 0.0:
        total_given = sum(float(given[name]) for name in skills)
        return {name: float(given[name]) / total_given for name in skills}
    return {name: w / total for name, w in raw.items()}


def describe(skills: dict[str, float], weights: dict[str, float]) -> dict[str, Any]:
    """The weighting evidence as it is saved with a model."""
    return {"skills": {k: float(v) for k, v in skills.items()}, "weights": dict(weights)}

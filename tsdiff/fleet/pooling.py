"""One label threshold for the hosts of a fleet: the tail of their scores pooled, each host's scale kept.

A host's own threshold is the ``1 - risk`` point of the scores of its held-out training rows. With
a few hundred held-out rows there are too few peaks for an extreme-value fit, and the fallback, the
empirical quantile, is close to the largest held-out score: smoothed scores are correlated, so the
true share of normal rows above it is many times ``risk`` (2% instead of 0.1% for the causal model
on 200 held-out rows). Hosts of one job share the shape of that tail. So the pool standardises each
host's held-out scores by its own median and interquartile range, fits one tail (peaks over
threshold) to all of them, and gives each host ``median + spread * z``, ``z`` the pooled tail's
``1 - risk`` point.

Rules (``tsdiff fleet fit --threshold``):

* ``auto`` (the default): hosts whose own threshold is a fitted tail keep it; hosts whose own tail
  could not be fitted take the pooled one;
* ``pooled``: every host takes the pooled threshold;
* ``host``: every host keeps its own.

The pool is for hosts alike in kind (one job's servers). Series unlike one another (different
instruments, different services) have tails of different shapes; fit them with ``host``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tsdiff.errors import ParameterError

logger = logging.getLogger(__name__)

THRESHOLD_RULES = ("auto", "pooled", "host")
#: the threshold method a host's model is saved with when the pool set it
POOLED = "pooled"
#: fewest hosts a pool is fitted on
MIN_HOSTS = 2


def check_rule(rule: str) -> str:
    if rule not in THRESHOLD_RULES:
        raise ParameterError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    return rule


def robust_scale(scores: np.ndarray) -> tuple[float, float]:
    """A host's median and robust spread (:func:`tsdiff.injection.robust_spread`: the interquartile
    range over 1.349, the standard deviation where that is 0, and 1 where both are) of its finite
    calibration scores."""
    from tsdiff.injection import robust_spread

    x = finite(scores)
    if x.size == 0:
        return 0.0, 1.0
    return float(np.median(x)), float(robust_spread(x[:, None])[0])


def finite(scores: np.ndarray) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    return x[np.isfinite(x)]


def pooled_level(calibrations: Iterable[np.ndarray], risk: float) -> dict[str, Any]:
    """The pooled tail: ``z``, the ``1 - risk`` point of every host's standardised calibration
    scores (a peaks-over-threshold fit), with what it was fitted on."""
    from tsdiff.thresholds import make_threshold

    parts = []
    for scores in calibrations:
        loc, spread = robust_scale(scores)
        parts.append((finite(scores) - loc) / spread)
    pooled = np.concatenate(parts) if parts else np.empty(0)
    if len(parts) < MIN_HOSTS or pooled.size == 0:
        raise ParameterError(
            f"a pooled threshold needs the scores of {MIN_HOSTS} hosts or more, got {len(parts)}"
        )
    model = make_threshold("pot", risk=float(risk)).fit(pooled)
    return {
        "z": float(model.threshold_),
        "risk": float(risk),
        "hosts": len(parts),
        "scores": int(pooled.size),
        "method": str(model.info_.get("method")),
    }


def host_threshold(scores: np.ndarray, level: dict[str, Any]) -> float:
    """A host's threshold under the pooled tail ``level``: its median + spread x ``z``."""
    loc, spread = robust_scale(scores)
    return loc + spread * float(level["z"])


def takes_pool(rule: str, own_method: str) -> bool:
    """Whether a host whose own threshold came from ``own_method`` takes the pooled one."""
    return rule == "pooled" or (rule == "auto" and own_method != "pot")


def choose_thresholds(
    hosts: dict[str, tuple[np.ndarray, str]], risk: float, rule: str
) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Per host (``name -> (calibration scores, own threshold method)``), the pooled threshold of
    those that take it under ``rule``, and the pool's description (None: no pool was fitted, with
    ``host``, or fewer than :data:`MIN_HOSTS` hosts)."""
    check_rule(rule)
    if rule == "host" or len(hosts) < MIN_HOSTS:
        return {}, None
    takers = [name for name, (_, method) in hosts.items() if takes_pool(rule, method)]
    if not takers:
        return {}, None
    level = pooled_level((scores for scores, _ in hosts.values()), risk)
    level["rule"] = rule
    return {name: host_threshold(hosts[name][0], level) for name in takers}, level


def apply_thresholds(model_dir: str | Path, thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """Set each host's pooled threshold in its saved model (re-saved atomically): the records of
    those that failed (``entity``, ``error``); a host whose model cannot be rewritten keeps its own
    threshold."""
    import tsdiff
    from tsdiff.fleet.storage import entity_path

    failed = []
    for entity, value in thresholds.items():
        try:
            path = entity_path(model_dir, entity)
            tsdiff.load(path).set_threshold(value, POOLED).save(path)
        except Exception as exc:  # one host's model must not stop the others
            logger.warning("setting the pooled threshold of %s failed: %s", entity, exc)
            failed.append({"entity": entity, "error": f"{type(exc).__name__}: {exc}"})
    return failed

"""From imputation errors to a score: per-row errors, per-step thresholds, and the steps' vote.

Each recorded denoising step is one voter. A step's per-row error (the mean absolute error over the
metrics present, in robust units, smoothed over time) gets its own threshold, fitted on held-out
normal rows; dividing by it puts every step on one scale, where 1 is "this step flags the row".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tsdiff.diffusion.config import DiffusionConfig
from tsdiff.frame import centered_mean, mean_over_present, trailing_mean


def reduce_errors(
    entry: np.ndarray, smooth_length: int, trailing: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row error of each voter (n, S) and per-row, per-metric error (n, K) from entry errors
    (n, S, K); a voter is one recorded step of one mask family.

    Means over the metrics present in a row (and over the voters, for a metric); a row with no
    value at all gets 0 (no evidence). Both are then smoothed over ``smooth_length`` rows, centred
    or (``trailing``) over the rows up to each row.
    """
    smooth = trailing_mean if trailing else centered_mean
    step_errors = smooth(mean_over_present(entry, axis=2), smooth_length)
    return step_errors, smooth(mean_over_present(entry, axis=1), smooth_length)


def fit_step_thresholds(step_errors: np.ndarray, config: DiffusionConfig) -> tuple[list[Any], np.ndarray]:
    """One threshold model per step (``config.threshold`` at ``config.risk``) fitted on held-out
    rows' step errors (n, S), and the thresholds (floored above 0)."""
    from tsdiff.thresholds import make_threshold

    models = [make_threshold(config.threshold, risk=config.risk).fit(e) for e in step_errors.T]
    tiny = np.finfo(np.float64).tiny
    return models, np.array([max(float(m.threshold_), tiny) for m in models])


def combine_steps(step_errors: np.ndarray, thresholds: np.ndarray, config: DiffusionConfig) -> np.ndarray:
    """One score per row from its step errors over the step thresholds.

    ``"vote"``: the ``m``-th largest ratio (``m`` = :meth:`DiffusionConfig.votes_needed`), which
    is above 1 exactly when at least ``m`` steps flag the row; ``"mean"``: the mean ratio.
    """
    ratios = step_errors / thresholds[None, :]
    if config.combine == "mean":
        return ratios.mean(axis=1)
    m = config.votes_needed()
    return -np.partition(-ratios, m - 1, axis=1)[:, m - 1]  # the m-th largest ratio

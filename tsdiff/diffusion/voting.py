"""From imputation errors to a score: per-row errors, per-step thresholds, and the steps' vote.

Each recorded denoising step is one voter. A step's per-row error (the absolute errors of the
metrics present, optionally in units of each metric's typical error, smoothed over time and
reduced over the metrics by :func:`reduce_errors`) gets its own threshold, fitted on held-out
normal rows; dividing by it puts every step on one scale, where 1 is "this step flags the row".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tsdiff.diffusion.config import DiffusionConfig
from tsdiff.errors import ParameterError
from tsdiff.frame import centered_mean, mean_over_present, trailing_mean

METRIC_REDUCTIONS = ("mean", "blend-top3")


def metric_scales(entry: np.ndarray, floor_share: float = 0.1) -> np.ndarray:
    """Each voter's typical error on each metric, (S, K), from held-out entry errors (n, S, K): the
    mean over the rows where the metric holds a value, floored at ``floor_share`` of the median
    metric's so a metric the model imputes almost perfectly cannot turn noise into evidence."""
    scale = np.nan_to_num(mean_over_present(entry, axis=0), nan=1.0)  # (S, K); no value: 1
    floor = floor_share * np.median(scale, axis=1, keepdims=True)
    return np.maximum(scale, np.maximum(floor, 1e-6)).astype(np.float64)  # as a loaded model holds it


def reduce_errors(
    entry: np.ndarray,
    smooth_length: int,
    trailing: bool = False,
    scales: np.ndarray | None = None,
    power: float = 0.0,
    metrics: str = "mean",
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row error of each voter (n, S) and per-row, per-metric error (n, K) from entry errors
    (n, S, K); a voter is one recorded step of one mask family.

    With ``scales`` (:func:`metric_scales`) and ``power`` > 0, each metric's error is divided by
    its typical error to that power first (1: every metric in units of its own normal error; 0:
    raw robust units). ``metrics="mean"`` averages over the metrics present in a row, then smooths
    over ``smooth_length`` rows; ``"blend-top3"`` smooths each metric first and then takes the mean
    of the row's overall mean and its three largest metrics, so a sustained break of one metric out
    of many is not averaged away. Smoothing is centred, or (``trailing``) over the rows up to each
    row. A row with no value at all gets 0 (no evidence).
    """
    smooth = trailing_mean if trailing else centered_mean
    if scales is not None and power > 0:
        entry = entry / (scales[None] ** power)
    if metrics == "mean":
        step_errors = smooth(mean_over_present(entry, axis=2), smooth_length)
    elif metrics == "blend-top3":
        n, s, k = entry.shape
        smoothed = smooth(np.nan_to_num(entry, nan=0.0).reshape(n, s * k), smooth_length).reshape(n, s, k)
        top = -np.sort(-smoothed, axis=2)[:, :, : min(3, k)].mean(axis=2)
        step_errors = 0.5 * smoothed.mean(axis=2) + 0.5 * top
    else:
        raise ParameterError(f"metrics must be one of {METRIC_REDUCTIONS}, got {metrics!r}")
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

"""Label-free thresholds fitted on anomaly scores of normal data.

Scores are "higher = more anomalous". A threshold is fitted on scores of normal (training) data
only and labels new scores strictly above it. Four methods:

* :class:`QuantileThreshold`: the empirical ``1 - risk`` quantile (a contamination threshold).
* :class:`POTThreshold`: Peaks Over Threshold (Siffer et al., KDD 2017, "Anomaly Detection in
  Streams with Extreme Value Theory"): a generalized Pareto tail fitted by maximum likelihood
  with Grimshaw's trick, which extrapolates to risks the data barely (or never) reach.
* :class:`SPOTThreshold`: streaming POT; normal scores above the initial threshold refine the tail.
* :class:`DSPOTThreshold`: SPOT on the score minus a moving average of recent normal scores, so
  the threshold follows a drifting level.

Every threshold round-trips through a JSON-serialisable dict (:meth:`BaseThreshold.to_dict`,
:meth:`BaseThreshold.from_dict`); streaming ones carry what they need to continue the stream.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import brentq

from tsdiff.errors import (
    AllNaNColumnError,
    EmptyInputError,
    InfiniteValueError,
    InputError,
    NotFittedError,
    ParameterError,
    TooFewRowsError,
)
from tsdiff.serialize import json_ready

logger = logging.getLogger(__name__)

__all__ = [
    "BaseThreshold",
    "BudgetThreshold",
    "DSPOTThreshold",
    "GPDFit",
    "POTThreshold",
    "QuantileThreshold",
    "SPOTThreshold",
    "WindowPOTThreshold",
    "fit_gpd",
    "gpd_quantile",
    "make_threshold",
]

_GRID = 24  # grid points per end of each search interval of Grimshaw's equation
_X_MAX = 1e100  # keeps the positive bound finite when the smallest excess is ~0


@dataclass(frozen=True)
class GPDFit:
    """Maximum-likelihood generalized Pareto fit of excesses (``gamma == 0``: exponential tail)."""

    gamma: float
    sigma: float
    loglik: float


def _grimshaw(x: np.ndarray | float, y: np.ndarray) -> np.ndarray:
    """``u(x) v(x) - 1`` of Grimshaw's equation, evaluated for each ``x`` (rows) over excesses ``y``.

    Written as ``(u-1) + (v-1) + (u-1)(v-1)`` so that the first-order terms cancel exactly and the
    sign stays reliable close to ``x = 0``.
    """
    xy = np.multiply.outer(x, y)
    um1 = np.mean(-xy / (1.0 + xy), axis=-1)
    vm1 = np.mean(np.log1p(xy), axis=-1)
    return um1 + vm1 + um1 * vm1


def _roots(grid: np.ndarray, y: np.ndarray) -> list[float]:
    """Roots of Grimshaw's equation bracketed by sign changes of ``w`` over the sorted ``grid``."""
    w = _grimshaw(grid, y)
    roots = [float(x) for x, v in zip(grid, w, strict=True) if v == 0.0]
    for i in np.flatnonzero(np.sign(w[:-1]) * np.sign(w[1:]) < 0):
        try:
            roots.append(brentq(_grimshaw, grid[i], grid[i + 1], args=(y,), xtol=1e-14, rtol=1e-12))
        except (ValueError, RuntimeError):  # pragma: no cover - a bracket that brentq rejects
            continue
    return roots


def fit_gpd(excesses: Iterable[float]) -> GPDFit | None:
    """Fit a generalized Pareto distribution to positive excesses by maximum likelihood.

    Grimshaw's trick (as in Siffer et al.): with ``x = gamma / sigma`` the likelihood equations
    reduce to ``u(x) v(x) = 1`` with ``u = mean(1 / (1 + x Y))`` and ``v = 1 + mean(log(1 + x Y))``;
    its roots are searched over ``(-1/Y_max, 0)`` and ``(0, 2 (mean - Y_min) / Y_min^2]``, and the
    candidate of highest likelihood is kept, the exponential tail (``gamma = 0``) included, and
    also the uniform tail (``gamma = -1``, ``sigma = Y_max``) for bounded scores.

    Parameters
    ----------
    excesses
        Scores minus the initial threshold, all > 0.

    Returns
    -------
    GPDFit or None
        None when no fit is possible: fewer than two excesses, a non-positive or non-finite one,
        or all of them (nearly) equal, where the likelihood has no proper maximum.
    """
    y = np.asarray(excesses, dtype=float).ravel()
    if y.size < 2 or not np.all(np.isfinite(y)) or y.min() <= 0.0:
        return None
    scale = float(y.mean())
    y = y / scale  # gamma is scale-free; solving at mean 1 keeps huge or tiny scores well conditioned
    y_min, y_max = float(y.min()), float(y.max())
    if y_max - y_min <= 1e-9:
        return None
    n = y.size
    # exponential tail: sigma = mean = 1, log-likelihood -n log(sigma) - n
    best = GPDFit(0.0, 1.0, -float(n))
    # gamma = -1 (uniform on [0, sigma]) is the edge of the region where the MLE exists; its best
    # sigma is y_max. Without it, data with an abrupt end (no root of the equation) would be fitted
    # with the exponential tail and a threshold beyond the end of the data.
    if -n * math.log(y_max) > best.loglik:
        best = GPDFit(-1.0, y_max, -n * math.log(y_max))
    ends = np.logspace(-8, math.log10(0.5), _GRID)
    neg_lo = -1.0 / y_max
    roots = _roots(neg_lo * np.concatenate([1.0 - ends, ends[::-1]]), y)
    pos_hi = min(2.0 * (1.0 - y_min) / y_min**2, _X_MAX)
    if pos_hi > 1e-6:
        decades = math.log10(pos_hi) + 6.0
        roots += _roots(np.logspace(-6, math.log10(pos_hi), max(2 * _GRID, math.ceil(4 * decades))), y)
    for x in roots:
        if x == 0.0 or not np.all(1.0 + x * y > 0.0):
            continue
        gamma = float(np.mean(np.log1p(x * y)))
        sigma = gamma / x
        if not (math.isfinite(gamma) and math.isfinite(sigma) and sigma > 0.0):
            continue
        # log-likelihood -n log(sigma) - (1 + 1/gamma) sum(log(1 + x y)), with sum(log(1 + x y)) = n gamma
        loglik = -n * math.log(sigma) - n * (1.0 + gamma)
        if loglik > best.loglik:
            best = GPDFit(gamma, sigma, loglik)
    return GPDFit(best.gamma, best.sigma * scale, best.loglik - n * math.log(scale))


def gpd_quantile(t: float, gamma: float, sigma: float, risk: float, n: int, n_peaks: int) -> float:
    """Level exceeded with probability ``risk``: ``t + sigma/gamma ((risk n / n_peaks)^-gamma - 1)``.

    Uses the exponential limit ``t - sigma log(risk n / n_peaks)`` at ``gamma = 0`` (``expm1`` keeps
    the transition smooth).
    """
    log_r = math.log(risk * n / n_peaks)
    if gamma == 0.0:
        return t - sigma * log_r
    return t + sigma * math.expm1(-gamma * log_r) / gamma


def _clean(scores: Any) -> np.ndarray:
    """Scores as a 1-d float array without NaN; empty, all-NaN or infinite input is refused."""
    try:
        x = np.atleast_1d(np.asarray(scores, dtype=float))
    except (TypeError, ValueError) as exc:
        raise InputError(f"scores must be numbers: {exc}") from None
    if x.ndim != 1:
        raise InputError(f"scores must be 1-d, got shape {x.shape}")
    if x.size == 0:
        raise EmptyInputError("no scores to fit a threshold on")
    inf = np.flatnonzero(np.isinf(x))
    if inf.size:
        raise InfiniteValueError(f"score at position {inf[0]} is infinite", row=int(inf[0]))
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise AllNaNColumnError("all scores are NaN")
    return x


def _check_number(name: str, value: Any, low: float = 0.0, high: float = 1.0, closed: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.number))
    if not (ok and (low <= value < high if closed else low < value < high)):
        span = f"[{low:g}, {high:g})" if closed else f"({low:g}, {high:g})"
        raise ParameterError(f"{name} must be a number in {span}, got {value!r}")
    return float(value)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class BaseThreshold:
    """Common interface: ``fit`` on normal scores, ``predict`` labels scores above ``threshold_``.

    Attributes set by ``fit``: ``threshold_`` (float) and ``info_`` (dict: the method actually
    used and what the fit found).
    """

    method: ClassVar[str] = ""

    def __init__(self, risk: float = 1e-3) -> None:
        self.risk = _check_number("risk", risk)
        self.threshold_: float | None = None
        self.info_: dict[str, Any] = {}

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, enough to rebuild an unfitted copy."""
        return {"risk": self.risk}

    def fit(self, scores: Any) -> BaseThreshold:
        """Fit the threshold on scores of normal data (NaN ignored)."""
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if self.threshold_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    def predict(self, scores: Any) -> np.ndarray:
        """Label scores against the current threshold: 1 where score > ``threshold_`` (NaN gives 0)."""
        self._check_fitted()
        return (np.asarray(scores, dtype=float) > self.threshold_).astype(np.int8)

    def fitted_state(self) -> dict[str, Any]:
        return {"threshold": self.threshold_, "info": dict(self.info_)}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.threshold_ = float(state["threshold"])
        self.info_ = dict(state["info"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description: method, parameters and fitted state (None if unfitted)."""
        state = None if self.threshold_ is None else self.fitted_state()
        return json_ready({"method": self.method, "params": self.get_params(), "state": state})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BaseThreshold:
        """Rebuild a threshold written by :meth:`to_dict` (on the base class, any method)."""
        try:
            klass = _METHODS[d["method"]]
            params, state = d["params"], d["state"]
        except (KeyError, TypeError) as exc:
            raise ParameterError(f"not a threshold description: missing or unknown {exc}") from None
        if cls is not BaseThreshold and not issubclass(klass, cls):
            raise ParameterError(f"description is of method {d['method']!r}, not {cls.method!r}")
        try:
            obj = klass(**params)
        except TypeError as exc:
            raise ParameterError(f"bad parameters for threshold {d['method']!r}: {exc}") from None
        if state is not None:
            try:
                obj.restore_state(state)
            except (KeyError, TypeError, ValueError) as exc:
                raise ParameterError(f"corrupt {klass.method!r} threshold state: {exc!r}") from None
        return obj


class QuantileThreshold(BaseThreshold):
    """Empirical ``1 - risk`` quantile of the calibration scores (numpy's default interpolation).

    Parameters
    ----------
    risk
        Fraction of normal scores expected above the threshold (the contamination).
    """

    method = "quantile"

    def fit(self, scores: Any) -> QuantileThreshold:
        """Fit the threshold on scores of normal data (NaN ignored)."""
        x = _clean(scores)
        self.threshold_ = float(np.quantile(x, 1.0 - self.risk))
        self.info_ = {
            "method": "quantile",
            "risk": self.risk,
            "n": int(x.size),
            "extrapolation": self.risk < 1.0 / x.size,
        }
        return self


class POTThreshold(BaseThreshold):
    """Peaks Over Threshold: extreme-value threshold exceeded by normal data with probability ``risk``.

    The excesses over ``t`` (the empirical ``initial_level`` quantile) are fitted with a generalized
    Pareto distribution (:func:`fit_gpd`) and the threshold is its ``risk`` quantile
    (:func:`gpd_quantile`). With fewer than ``min_peaks`` excesses, or when the fit fails, the
    empirical ``1 - risk`` quantile is used instead and ``info_["method"]`` says ``"quantile"``.
    Constant scores thus give the constant as threshold, and nothing equal to it is flagged.

    Parameters
    ----------
    risk
        Probability that a normal score exceeds the threshold; below ``1 - initial_level``, since
        only the tail above the initial threshold is modelled.
    initial_level
        Quantile of the calibration scores taken as initial threshold ``t`` (0.98 in the paper).
    min_peaks
        Fewest excesses over ``t`` for a GPD fit.
    """

    method = "pot"

    def __init__(self, risk: float = 1e-3, initial_level: float = 0.98, min_peaks: int = 10) -> None:
        super().__init__(risk)
        self.initial_level = _check_number("initial_level", initial_level)
        if self.risk >= 1.0 - self.initial_level:
            raise ParameterError(
                f"risk ({self.risk}) must be smaller than 1 - initial_level ({1 - self.initial_level:g}):"
                " the Pareto tail models only the scores above the initial threshold"
            )
        self.min_peaks = _check_int("min_peaks", min_peaks, 2)

    def get_params(self) -> dict[str, Any]:
        return {"risk": self.risk, "initial_level": self.initial_level, "min_peaks": self.min_peaks}

    def _pot(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Fit on clean scores ``x``; set ``threshold_`` and ``info_``, return ``t`` and the excesses."""
        n = int(x.size)
        t = float(np.quantile(x, self.initial_level))
        excesses = x[x > t] - t
        info: dict[str, Any] = {
            "method": "pot",
            "risk": self.risk,
            "n": n,
            "n_peaks": int(excesses.size),
            "initial_threshold": t,
            "gamma": None,
            "sigma": None,
            "reason": None,
            "extrapolation": self.risk < 1.0 / n,
        }
        z = None
        if excesses.size < self.min_peaks:
            info["reason"] = f"{excesses.size} peaks above t, fewer than min_peaks={self.min_peaks}"
        elif (fit := fit_gpd(excesses)) is None:
            info["reason"] = "GPD fit failed (peaks all equal)"
        else:
            info.update(gamma=fit.gamma, sigma=fit.sigma)
            if self.risk * n >= excesses.size:  # fewer peaks than expected exceedances (ties at t)
                info["reason"] = "risk not below the fraction of peaks"
            else:
                z = gpd_quantile(t, fit.gamma, fit.sigma, self.risk, n, int(excesses.size))
                if not math.isfinite(z):
                    info["reason"], z = "GPD quantile is not finite", None
        if z is None:
            z = float(np.quantile(x, 1.0 - self.risk))
            info["method"] = "quantile"
            logger.info("POT falls back to the empirical quantile: %s", info["reason"])
        if info["extrapolation"]:
            logger.info(
                "risk %g < 1/n = %g: the threshold extrapolates beyond the calibration data",
                self.risk,
                1.0 / n,
            )
        self.threshold_ = float(z)
        self.info_ = info
        return t, excesses

    def fit(self, scores: Any) -> POTThreshold:
        """Fit the threshold on scores of normal data (NaN ignored)."""
        self._pot(_clean(scores))
        return self


class SPOTThreshold(POTThreshold):
    """Streaming POT: :meth:`fit` runs POT on initial scores, :meth:`update` handles one new score.

    A new score above the threshold is an anomaly and leaves the model unchanged; a normal score
    above the initial threshold ``t`` becomes a peak and the GPD is refitted. Every normal score
    also counts in ``n``, so the threshold is recomputed (cheaply) after each of them. Until
    ``min_peaks`` peaks exist the calibration quantile is kept. :meth:`predict` compares with the
    current threshold without learning; ``n_anomalies_`` counts the scores flagged by the stream.

    Leaving flagged scores out of the peaks, as the paper does, also leaves out the normal data's
    own top ``risk`` fraction, so on a long stationary stream the fitted tail thins and the rate of
    flagged normal scores creeps above ``risk`` (tail probability 1.5-3.4x ``risk=1e-3`` after
    20,000 exponential scores); refit with :meth:`fit` from time to time if the rate matters.

    Parameters
    ----------
    risk, initial_level, min_peaks
        As for :class:`POTThreshold`.
    refit_growth
        Refit only once the peaks outnumber those of the last fit by this fraction (0: on every
        peak, as in the paper). The default 1% refits on every peak up to 100 peaks, and keeps the
        cost linear when most new scores are peaks (a shift of level), while moving the estimates
        by far less than their standard error.
    """

    method = "spot"

    def __init__(
        self, risk: float = 1e-3, initial_level: float = 0.98, min_peaks: int = 10, refit_growth: float = 0.01
    ) -> None:
        super().__init__(risk, initial_level, min_peaks)
        self.refit_growth = _check_number("refit_growth", refit_growth, 0.0, math.inf, closed=True)
        self._n_fit = 0  # number of peaks at the last GPD fit
        self._t = math.nan
        self._peaks: list[float] = []
        self._n = 0
        self._z = math.nan  # threshold on the (drift-corrected, for DSPOT) signal
        self._gamma: float | None = None
        self._sigma: float | None = None
        self.n_anomalies_ = 0

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "refit_growth": self.refit_growth}

    def _start(self, x: np.ndarray) -> None:
        t, excesses = self._pot(x)
        self._t, self._peaks, self._n = t, excesses.tolist(), int(x.size)
        self._n_fit = len(self._peaks)
        self._gamma, self._sigma = self.info_["gamma"], self.info_["sigma"]
        if self.info_["method"] != "pot":  # keep the fallback until a GPD quantile is usable
            self._gamma = self._sigma = None
        self._z = self.threshold_
        self.n_anomalies_ = 0

    def fit(self, scores: Any) -> SPOTThreshold:
        """Run POT on initial scores of normal data (NaN ignored) to start the stream."""
        self._start(_clean(scores))
        return self

    def _offset(self) -> float:
        return 0.0

    def _learn(self, score: float) -> None:
        """Hook: a score was judged normal (DSPOT moves its window)."""

    def _requantile(self) -> None:
        k = len(self._peaks)
        if self._gamma is not None and self.risk * self._n < k:
            z = gpd_quantile(self._t, self._gamma, self._sigma, self.risk, self._n, k)
            if math.isfinite(z):
                self._z = max(z, self._t)
        self.threshold_ = self._z + self._offset()
        self.info_["n"] = self._n

    def _refit(self) -> None:
        k = len(self._peaks)
        due = self._gamma is None or k >= self._n_fit * (1.0 + self.refit_growth)
        if k >= self.min_peaks and due:
            fit = fit_gpd(self._peaks)
            if fit is not None:
                self._n_fit = k
                self._gamma, self._sigma = fit.gamma, fit.sigma
                self.info_.update(method="pot", gamma=fit.gamma, sigma=fit.sigma, reason=None)
        self.info_["n_peaks"] = len(self._peaks)

    def update(self, score: float) -> bool:
        """Process one new score; True if it is an anomaly. NaN and -inf are skipped (False)."""
        self._check_fitted()
        s = float(score)
        if math.isnan(s) or s == -math.inf:
            return False
        excess = s - self._offset()
        if excess > self._z:
            self.n_anomalies_ += 1
            return True
        self._n += 1
        if excess > self._t:
            self._peaks.append(excess - self._t)
            self._refit()
        self._learn(s)
        self._requantile()
        return False

    step = update

    def run(self, scores: Any) -> tuple[np.ndarray, np.ndarray]:
        """Stream an array through :meth:`update`; return the labels (int8, 1 = anomaly) and the
        threshold each score was compared with (on the score scale)."""
        self._check_fitted()
        x = np.asarray(scores, dtype=float).ravel()
        labels = np.zeros(x.size, dtype=np.int8)
        thresholds = np.empty(x.size)
        for i, s in enumerate(x.tolist()):
            thresholds[i] = self.threshold_
            labels[i] = self.update(s)
        return labels, thresholds

    def fitted_state(self) -> dict[str, Any]:
        return {
            **super().fitted_state(),
            "t": self._t,
            "peaks": list(self._peaks),
            "n": self._n,
            "z": self._z,
            "gamma": self._gamma,
            "sigma": self._sigma,
            "n_anomalies": self.n_anomalies_,
            "n_fit": self._n_fit,
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        super().restore_state(state)
        self._t, self._n, self._z = float(state["t"]), int(state["n"]), float(state["z"])
        self._peaks = [float(v) for v in state["peaks"]]
        self._gamma = None if state["gamma"] is None else float(state["gamma"])
        self._sigma = None if state["sigma"] is None else float(state["sigma"])
        self.n_anomalies_ = int(state["n_anomalies"])
        self._n_fit = int(state["n_fit"])


class DSPOTThreshold(SPOTThreshold):
    """SPOT with drift: the tail is modelled on ``score - mean(last depth normal scores)``.

    :meth:`fit` needs more than ``depth`` scores: the first ``depth`` only seed the moving window.
    ``threshold_`` is on the score scale (the residual threshold plus the current local mean), and
    :meth:`run` returns such thresholds, so they follow the drift.

    Parameters
    ----------
    risk, initial_level, min_peaks, refit_growth
        As for :class:`SPOTThreshold`.
    depth
        Number of recent normal scores in the moving average.
    """

    method = "dspot"

    def __init__(
        self,
        risk: float = 1e-3,
        initial_level: float = 0.98,
        min_peaks: int = 10,
        refit_growth: float = 0.01,
        depth: int = 10,
    ) -> None:
        super().__init__(risk, initial_level, min_peaks, refit_growth)
        self.depth = _check_int("depth", depth, 1)
        self._window: deque[float] = deque(maxlen=self.depth)
        self._mean = math.nan

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "depth": self.depth}

    def fit(self, scores: Any) -> DSPOTThreshold:
        """Seed the window with the first ``depth`` scores and run POT on the drift-corrected rest."""
        x = _clean(scores)
        if x.size <= self.depth:
            raise TooFewRowsError(int(x.size), self.depth + 1, f"DSPOT depth {self.depth} + 1 scores")
        csum = np.concatenate([[0.0], np.cumsum(x)])
        local_mean = (csum[self.depth : -1] - csum[: -self.depth - 1]) / self.depth
        self._window = deque(x[-self.depth :].tolist(), maxlen=self.depth)
        self._mean = math.fsum(self._window) / self.depth
        self._start(x[self.depth :] - local_mean)
        self.threshold_ = self._z + self._mean
        return self

    def _offset(self) -> float:
        return self._mean

    def _learn(self, score: float) -> None:
        self._window.append(score)
        self._mean = math.fsum(self._window) / self.depth

    def fitted_state(self) -> dict[str, Any]:
        return {**super().fitted_state(), "window": list(self._window)}

    def restore_state(self, state: dict[str, Any]) -> None:
        super().restore_state(state)
        self._window = deque((float(v) for v in state["window"]), maxlen=self.depth)
        if len(self._window) != self.depth:
            raise ValueError(f"window holds {len(self._window)} scores, depth is {self.depth}")
        self._mean = math.fsum(self._window) / self.depth


class WindowPOTThreshold(POTThreshold):
    """POT refitted on a moving window of recent scores, never below the first fit.

    :meth:`fit` runs POT on the calibration scores (the floor) and seeds the window with them;
    :meth:`update` judges a new score against the current threshold, adds it to the window (flagged
    or not), and every ``every`` scores refits POT on the window: the threshold becomes the larger
    of the floor and that fit. A lasting rise of the score level (drift) thus raises the threshold
    until only about ``risk`` of the recent rows are flagged, while an anomaly shorter than about
    ``risk * window`` rows barely moves it; a quieter stream never lowers it below the floor.

    Parameters
    ----------
    risk, initial_level, min_peaks
        As for :class:`POTThreshold`.
    window
        Recent scores the threshold is refitted on.
    every
        Scores between two refits.
    """

    method = "window"

    def __init__(
        self,
        risk: float = 1e-3,
        initial_level: float = 0.98,
        min_peaks: int = 10,
        window: int = 1440,
        every: int = 60,
    ) -> None:
        super().__init__(risk, initial_level, min_peaks)
        self.window = _check_int("window", window, 2)
        self.every = _check_int("every", every, 1)
        self._recent: deque[float] = deque(maxlen=self.window)
        self._floor = math.nan
        self._since = 0

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "window": self.window, "every": self.every}

    def fit(self, scores: Any) -> WindowPOTThreshold:
        x = _clean(scores)
        self._pot(x)
        self._floor = self.threshold_
        self._recent = deque(x[-self.window :].tolist(), maxlen=self.window)
        self._since = 0
        return self

    def update(self, score: float) -> bool:
        """Process one new score; True if it is above the current threshold. NaN is skipped."""
        self._check_fitted()
        s = float(score)
        if math.isnan(s):
            return False
        flagged = s > self.threshold_
        self._recent.append(s)
        self._since += 1
        if self._since >= self.every:
            self._since = 0
            self._pot(np.asarray(self._recent, dtype=np.float64))
            self.info_["floor"] = self._floor
            self.threshold_ = max(self._floor, float(self.threshold_))
        return bool(flagged)

    def fitted_state(self) -> dict[str, Any]:
        return {
            **super().fitted_state(),
            "recent": list(self._recent),
            "floor": self._floor,
            "since": self._since,
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        super().restore_state(state)
        self._recent = deque((float(v) for v in state["recent"]), maxlen=self.window)
        self._floor, self._since = float(state["floor"]), int(state["since"])


class BudgetThreshold(POTThreshold):
    """An alert budget: about ``budget`` of the recent rows at most are flagged, never below the fit.

    :meth:`fit` runs POT on the calibration scores (the floor) and seeds a window with the last
    ``window`` of them. Each new score is judged against the larger of the floor and the
    ``k``-th largest of the ``window`` scores before it (``k = ceil(budget * window)``), flagged or
    not, so a lasting rise of the scores (a drift, a new normal, or a long anomaly) is flagged for
    about ``k`` rows and then learned, and a score is flagged only when it stands out among the
    recent ones: on a stationary stream about ``budget`` of the rows pass the floor's test and the
    window's. A run of flagged rows keeps the threshold it started with for its first ``hold``
    rows, so the rising edge of one anomaly does not raise the bar above its own peak (a smoothed
    score climbs over a few rows before the labelled onset).

    Unlike :class:`DSPOTThreshold`, which learns only the rows it does not flag and so stays stuck
    above a jump of the level, every row is learned; unlike :class:`WindowPOTThreshold`, nothing is
    extrapolated from a short window, so the threshold moves within a few rows of a change.

    Parameters
    ----------
    risk, initial_level, min_peaks
        As for :class:`POTThreshold` (the floor).
    budget
        Share of the recent rows that may stand above the threshold. The defaults (0.005 of 200
        rows: a row is flagged when it is the highest of the last 200 and above the floor, hold 8)
        were chosen on the development split (``benchmarks/bench_events.py --adapt-grid``).
    window
        Recent scores the budget is counted over.
    hold
        Rows at the start of a flagged run judged against the threshold the run started with.
    """

    method = "budget"

    def __init__(
        self,
        risk: float = 1e-3,
        initial_level: float = 0.98,
        min_peaks: int = 10,
        budget: float = 0.005,
        window: int = 200,
        hold: int = 8,
    ) -> None:
        super().__init__(risk, initial_level, min_peaks)
        self.budget = _check_number("budget", budget)
        self.window = _check_int("window", window, 1)
        self.hold = _check_int("hold", hold, 0)
        self._k = max(1, math.ceil(self.budget * self.window))
        self._recent: deque[float] = deque(maxlen=self.window)
        self._floor = math.nan
        self._run = 0  # flagged rows in the current run
        self._held = math.nan  # the threshold the current run started with

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "budget": self.budget, "window": self.window, "hold": self.hold}

    def fit(self, scores: Any, floor: float | None = None) -> BudgetThreshold:
        """Fit the floor on scores of normal data (NaN ignored) and seed the window with them;
        ``floor``: a threshold set otherwise (a model's own, a fleet's pooled one) instead of POT's."""
        x = _clean(scores)
        self._pot(x)
        if floor is not None:
            if not math.isfinite(float(floor)):
                raise ParameterError(f"floor must be finite, got {floor!r}")
            self.info_["method"], self.threshold_ = "given", float(floor)
        self._floor = float(self.threshold_)
        self._recent = deque(x[-self.window :].tolist(), maxlen=self.window)
        self._run, self._held = 0, math.nan
        self._set()
        return self

    def _set(self) -> None:
        level = self._floor
        if len(self._recent) >= self._k:
            recent = np.fromiter(self._recent, dtype=np.float64, count=len(self._recent))
            level = max(level, float(np.partition(recent, recent.size - self._k)[recent.size - self._k]))
        if 0 < self._run < self.hold:
            level = min(level, self._held)
        self.threshold_ = level
        self.info_["floor"] = self._floor

    def update(self, score: float) -> bool:
        """Process one new score; True if it is above the current threshold. NaN is skipped."""
        self._check_fitted()
        s = float(score)
        if math.isnan(s):
            return False
        flagged = s > self.threshold_
        if flagged:
            if self._run == 0:
                self._held = float(self.threshold_)
            self._run += 1
        else:
            self._run = 0
        self._recent.append(s)
        self._set()
        return bool(flagged)

    def fitted_state(self) -> dict[str, Any]:
        return {
            **super().fitted_state(),
            "recent": list(self._recent),
            "floor": self._floor,
            "run": self._run,
            "held": self._held,
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        super().restore_state(state)
        self._recent = deque((float(v) for v in state["recent"]), maxlen=self.window)
        held = state["held"]  # None (JSON's NaN) outside a flagged run
        self._floor, self._run = float(state["floor"]), int(state["run"])
        self._held = math.nan if held is None else float(held)


_METHODS: dict[str, type[BaseThreshold]] = {
    c.method: c
    for c in (
        POTThreshold,
        SPOTThreshold,
        DSPOTThreshold,
        WindowPOTThreshold,
        BudgetThreshold,
        QuantileThreshold,
    )
}


def make_threshold(method: str, risk: float = 1e-3, **kwargs: Any) -> BaseThreshold:
    """Build a threshold by name: ``"pot"``, ``"spot"``, ``"dspot"``, ``"window"``, ``"budget"`` or
    ``"quantile"``."""
    klass = _METHODS.get(str(method).lower())
    if klass is None:
        raise ParameterError(f"unknown threshold method {method!r}; choose one of {sorted(_METHODS)}")
    try:
        return klass(risk, **kwargs)
    except TypeError as exc:
        raise ParameterError(f"bad arguments for threshold {method!r}: {exc}") from None

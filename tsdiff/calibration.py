"""Calibrators: a detector's raw scores put on a scale that means the same for every detector.

A calibrator is fitted on scores of normal rows (a detector's ``calibration_scores_``, held out
from its training) and maps any score to a common scale, so the scores of unrelated detectors can
be added (:class:`~tsdiff.fusion.FusionDetector`). Each saves its fitted state as named arrays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from tsdiff.errors import ModelFormatError, ParameterError
from tsdiff.serialize import prefixed, unprefixed


def finite_scores(values: np.ndarray) -> np.ndarray:
    """The finite values of ``values`` as float64; :class:`ParameterError` when there are none."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ParameterError("no finite scores to calibrate on")
    return x


class Calibrator(ABC):
    """Fitted on normal scores, maps scores to a common scale; saved as the arrays in ``FIELDS``."""

    #: fitted attributes (each ``<name>_``), saved as the arrays ``<prefix>.<name>``
    FIELDS: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def fit(self, values: np.ndarray) -> Calibrator:
        """Learn the scale from scores of normal rows."""

    @abstractmethod
    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Scores on the common scale (NaN -> 0: no evidence)."""

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return prefixed(prefix, {name: np.asarray(getattr(self, f"{name}_")) for name in self.FIELDS})

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Calibrator:
        out = cls()
        saved = unprefixed(arrays, prefix)
        for name in cls.FIELDS:
            value = saved.get(name)
            if value is None:
                raise ModelFormatError(f"the saved calibration has no array {prefix}.{name}")
            value = np.asarray(value, dtype=np.float64)
            if not np.isfinite(value).all():
                raise ModelFormatError(f"the saved calibration {prefix}.{name} is not finite")
            setattr(out, f"{name}_", value)
        return out


#: the largest surprise a score is given (only infinite or absurd scores reach it)
MAX_SURPRISE = 1e12


class TailCalibrator(Calibrator):
    """Surprise, ``-log10 P(normal score >= s)``, fitted on normal scores.

    The body of the distribution is the empirical CDF (kept as ``n_quantiles`` quantiles); above
    the ``tail_from`` quantile the survival function continues as an exponential fitted to the
    excesses (mean excess, as in peaks-over-threshold with a zero shape), so scores beyond anything
    seen in training keep their order instead of all saturating at the largest one. Surprises add
    like evidence: 2 means one normal row in a hundred scores as high.
    """

    FIELDS = ("probs", "quantiles", "tail")

    def __init__(self, n_quantiles: int = 256, tail_from: float = 0.95) -> None:
        self.n_quantiles = n_quantiles
        self.tail_from = tail_from

    def fit(self, values: np.ndarray) -> TailCalibrator:
        x = finite_scores(values)
        self.probs_ = np.linspace(0.0, self.tail_from, self.n_quantiles)
        self.quantiles_ = np.quantile(x, self.probs_)
        u = float(self.quantiles_[-1])
        excess = x[x > u] - u
        spread = float(np.subtract(*np.quantile(x, [0.75, 0.25])))
        floor = 1e-9 * max(1.0, abs(u)) + 1e-3 * spread
        scale = max(float(excess.mean()) if excess.size else 0.0, floor, 1e-12)
        self.tail_ = np.array([self.tail_from, scale])
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        tail_from, scale = (float(v) for v in self.tail_)
        u = float(self.quantiles_[-1])
        body = np.interp(s, self.quantiles_, self.probs_, left=0.0, right=tail_from)
        out = -np.log10(1.0 - body)
        tail = s > u
        # the exponential tail in the log domain: no underflow, so scores far beyond anything seen
        # in training stay ordered instead of all saturating at the smallest float
        out[tail] = -np.log10(1.0 - tail_from) + (s[tail] - u) / (scale * np.log(10.0))
        return np.where(np.isnan(s), 0.0, np.minimum(out, MAX_SURPRISE))


class ZScoreCalibrator(Calibrator):
    """Robust z: ``(s - median) / (1.4826 MAD)`` of normal scores (floored at a small spread)."""

    FIELDS = ("center", "scale")

    def fit(self, values: np.ndarray) -> ZScoreCalibrator:
        x = finite_scores(values)
        center = float(np.median(x))
        scale = 1.4826 * float(np.median(np.abs(x - center)))
        self.center_ = np.array(center)
        self.scale_ = np.array(max(scale, 1e-3 * float(np.std(x)), 1e-12))
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        z = (np.asarray(scores, dtype=np.float64) - float(self.center_)) / float(self.scale_)
        return np.nan_to_num(z, nan=0.0)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Calibrator:
        if f"{prefix}.center" not in arrays and f"{prefix}.quantiles" in arrays:
            # the layout of models saved before each calibrator had its own: the centre as the one
            # quantile, the scale as the tail's
            arrays = {
                f"{prefix}.center": np.ravel(arrays[f"{prefix}.quantiles"])[0],
                f"{prefix}.scale": np.ravel(arrays[f"{prefix}.tail"])[-1],
            }
        return super().from_arrays(arrays, prefix)


#: calibration name -> calibrator class
CALIBRATORS: dict[str, type[Calibrator]] = {"tail": TailCalibrator, "zscore": ZScoreCalibrator}
CALIBRATIONS = tuple(CALIBRATORS)

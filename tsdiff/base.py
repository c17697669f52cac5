"""The detector contract, implemented once.

A detector subclasses :class:`BaseDetector` and fills in two methods, ``_fit(values)`` and
``_score(values) -> (scores, feature_scores)``, on already validated and scaled arrays. The base
class does the rest for every detector alike: input validation and column matching, the robust
scaler, the label-free threshold fitted on normal data, labels, events, ``DetectionResult``, and
persistence hooks.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from tsdiff.errors import NotFittedError, ParameterError
from tsdiff.frame import RobustScaler, ValidatedFrame, align_columns, validate_frame
from tsdiff.results import DetectionResult, find_events, run_slices

THRESHOLD_METHODS = ("pot", "quantile")


@dataclass(frozen=True)
class StreamGeometry:
    """What a row's score depends on, so a stream can reproduce batch scores exactly.

    A row's score, computed on any stretch of rows that starts at a multiple of ``period`` (counted
    from the start of the stream), at least ``history`` rows before it, and reaches at least
    ``lookahead`` rows past it, equals its score in one batch over the whole stream.
    """

    period: int = 1
    history: int = 0
    lookahead: int = 0

    def combine(self, other: StreamGeometry) -> StreamGeometry:
        return StreamGeometry(
            math.lcm(self.period, other.period),
            max(self.history, other.history),
            max(self.lookahead, other.lookahead),
        )


class BaseDetector(BaseEstimator):
    """Base class of every tsdiff detector (scikit-learn style: parameters in, ``*_`` state out).

    Subclasses declare their parameters in ``__init__`` (stored as given, nothing else) and must
    accept ``threshold`` and ``risk``:

    threshold
        How the label threshold is fitted on scores of training data: ``"pot"`` (peaks over
        threshold, an extreme-value fit of the score tail) or ``"quantile"`` (the empirical
        quantile).
    risk
        Target probability that a normal row is flagged, i.e. the tail probability of the threshold.
    random_state
        Seed (an int, or None for a fresh one each fit): the same seed gives the same scores.
    """

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def _fit(self, values: np.ndarray) -> None:
        """Learn from scaled training values (n_rows, n_features); NaN marks missing cells."""

    @abstractmethod
    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores (n_rows,) and per-metric scores (n_rows, n_features) for scaled values.

        ``offset`` is the position of ``values[0]`` in a longer stream (:class:`~tsdiff.stream.
        StreamScorer` scores a moving buffer); a detector whose scores draw random numbers keys them
        by absolute position with it, so a row scores the same in a stream as in one batch.
        ``memo`` is a dict a stream keeps between calls: a detector may store work keyed by stream
        position there (e.g. per-window results) and reuse it when the same rows come again.
        """

    def _score_parts(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray]:
        """What ``detect`` needs: scores, per-metric scores, component scores (name -> (n_rows,)),
        and the per-metric evidence that :meth:`_root_causes` ranks (default: the per-metric scores)."""
        scores, feature_scores = self._score(values, offset, memo)
        return scores, feature_scores, {}, feature_scores

    def _stream_geometry(self) -> StreamGeometry | None:
        """How far a row's score reaches into the rows around it (None: it cannot be streamed)."""
        return None

    def _input_clip(self) -> float | None:
        """Scaled inputs are clipped to [-clip, clip] before reaching the model (None: not clipped)."""
        return None

    def _min_rows(self) -> int:
        """Fewest rows the detector can score (e.g. one window)."""
        return 1

    def _min_fit_rows(self) -> int:
        """Fewest rows the detector can learn from."""
        return self._min_rows()

    def _calibration_scores(self, values: np.ndarray) -> np.ndarray:
        """Scores of normal data that the threshold is fitted on (default: the training data)."""
        return self._score(values)[0]

    def _root_causes(self, feature_scores: np.ndarray, positions: list[slice]) -> list[list]:
        """Ranked root-cause metric names per event (rows ``positions``); none without a causal model."""
        return [[] for _ in positions]

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state to save: a JSON-ready dict and a dict of named arrays."""
        return {}, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`_get_state` returned."""

    # ----------------------------------------------------------------- the contract
    def fit(self, X: Any, y: Any = None) -> BaseDetector:
        """Learn normal behaviour from ``X`` (a DataFrame of metrics or a 2-d array) and fit the threshold.

        ``y`` is ignored; it is accepted for scikit-learn compatibility.
        """
        self._check_params()
        frame = validate_frame(X, min_rows=self._min_fit_rows(), what="rows to fit on")
        self.feature_names_in_ = list(frame.columns)
        self.n_features_in_ = len(self.feature_names_in_)
        self.columns_named_ = frame.named
        self.scaler_ = RobustScaler(clip=self._input_clip()).fit(frame.values)
        values = self.scaler_.transform(frame.values)
        self._fit(values)
        self._fit_threshold(self._calibration_scores(values))
        return self

    def score(self, X: Any) -> pd.Series:
        """One anomaly score per row of ``X`` (higher is more anomalous), indexed like ``X``."""
        frame, values = self._prepare(X)
        scores, _ = self._score(values)
        return pd.Series(scores, index=frame.index, name="score")

    def predict(self, X: Any) -> pd.Series:
        """0/1 per row of ``X``: 1 where the score is above the fitted threshold."""
        return (self.score(X) > self.threshold_).astype(np.int8).rename("label")

    def detect(self, X: Any, top_k: int = 3) -> DetectionResult:
        """Scores, labels, per-metric scores and events for ``X``.

        Parameters
        ----------
        X
            Data with the columns seen at fit time (any order when named).
        top_k
            Number of metrics named per event.
        """
        frame, values = self._prepare(X)
        scores, feature_scores, components, cause_evidence = self._score_parts(values)
        s = pd.Series(scores, index=frame.index, name="score")
        labels = (s > self.threshold_).astype(np.int8).rename("label")
        fs = pd.DataFrame(feature_scores, index=frame.index, columns=self.feature_names_in_)
        events = find_events(s, labels, fs, top_k=top_k)
        if len(events):
            positions = run_slices(labels.to_numpy())
            events["root_causes"] = self._root_causes(cause_evidence, positions)
        return DetectionResult(
            scores=s,
            labels=labels,
            threshold=float(self.threshold_),
            threshold_method=self.threshold_method_,
            feature_scores=fs,
            events=events,
            components={name: pd.Series(v, index=frame.index, name=name) for name, v in components.items()},
        )

    def save(self, path: str | Path) -> Path:
        """Save the fitted detector to the directory ``path``; reload it with :func:`tsdiff.load`."""
        from tsdiff.persist import save

        return save(self, path)

    # ----------------------------------------------------------------- shared steps
    def _check_params(self) -> None:
        if self.threshold not in THRESHOLD_METHODS:
            raise ParameterError(f"threshold must be one of {THRESHOLD_METHODS}, got {self.threshold!r}")
        if not 0.0 < float(self.risk) < 1.0:
            raise ParameterError(f"risk must be in (0, 1), got {self.risk!r}")
        rs = self.random_state
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, (int, np.integer))):
            raise ParameterError(f"random_state must be an int or None, got {type(rs).__name__}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _prepare(self, X: Any) -> tuple[ValidatedFrame, np.ndarray]:
        self._check_fitted()
        frame = validate_frame(X, min_rows=self._min_rows(), what="rows to score")
        frame = align_columns(frame, self.feature_names_in_, self.columns_named_)
        return frame, self.scaler_.transform(frame.values)

    def _fit_threshold(self, calibration_scores: np.ndarray) -> None:
        from tsdiff.thresholds import make_threshold

        model = make_threshold(self.threshold, risk=float(self.risk))
        model.fit(np.asarray(calibration_scores, dtype=np.float64))
        self.threshold_model_ = model
        self.threshold_ = float(model.threshold_)
        self.threshold_method_ = str(model.info_.get("method", self.threshold))

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.random_state)

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

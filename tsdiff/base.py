"""The detector contract, implemented once.

A detector subclasses :class:`BaseDetector` and fills in two methods, ``_fit(values)`` and
``_score(values) -> (scores, feature_scores)``, on already validated and scaled arrays. The base
class does the rest for every detector alike: input validation and column matching, the robust
scaler, the split of the training rows into a learning part and a held-out part, the calibration
scores of the held-out rows and the label-free threshold fitted on them, labels, events,
``DetectionResult``, and the state that persistence saves.
"""

from __future__ import annotations

import logging
import math
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from tsdiff.checks import check_array, check_int, require
from tsdiff.errors import NotFittedError, ParameterError, TsdiffError
from tsdiff.frame import (
    SCALED_LIMIT,
    RobustScaler,
    ValidatedFrame,
    align_columns,
    check_observed,
    validate_frame,
)
from tsdiff.results import DetectionResult, find_events
from tsdiff.segmentation import SegmentRules, segment_rows

logger = logging.getLogger(__name__)

THRESHOLD_METHODS = ("pot", "quantile")
#: the saved array that holds ``calibration_scores_``
CALIBRATION_ARRAY = "calibration_scores"


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


#: memo key under which a stream says which rows it will read: the stream position of the last
#: row whose score it takes from this call. A detector may leave later rows unscored (NaN), as
#: long as no row up to it changes (see :func:`child_memo`).
MEMO_WANTED = "wanted_until"


def child_memo(memo: dict | None, key: str) -> dict | None:
    """The nested memo of one part of a detector (a component, a mask family), created on first use
    and told which rows the stream will read (:data:`MEMO_WANTED`)."""
    if memo is None:
        return None
    child = memo.setdefault(key, {})
    if MEMO_WANTED in memo:
        child[MEMO_WANTED] = memo[MEMO_WANTED]
    else:
        child.pop(MEMO_WANTED, None)
    return child


@dataclass
class ScoreParts:
    """Everything one scoring pass gives for ``n`` rows (see :meth:`BaseDetector.score_scaled`).

    Attributes
    ----------
    scores
        One score per row, (n,).
    feature_scores
        Per-row, per-metric scores, (n, n_metrics).
    components
        Calibrated scores of the models a composite detector is built from (name -> (n,)).
    evidence
        Per-row evidence that :meth:`BaseDetector.root_causes` ranks, (n, m): averaged over an
        event's rows, it names the event's root causes (default: the per-metric scores).
    """

    scores: np.ndarray
    feature_scores: np.ndarray
    components: dict[str, np.ndarray] = field(default_factory=dict)
    evidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.evidence is None:
            self.evidence = self.feature_scores


class NotFittedDetectorError(NotFittedError, SklearnNotFittedError):
    """A detector used before ``fit``: tsdiff's :class:`~tsdiff.errors.NotFittedError` and
    scikit-learn's alike, so ``except`` clauses written for either catch it."""


class BaseDetector(BaseEstimator):
    """Base class of every tsdiff detector (scikit-learn style: parameters in, ``*_`` state out).

    Subclasses declare their parameters in ``__init__`` (stored as given, nothing else) and must
    accept ``threshold`` and ``risk``:

    threshold
        How the label threshold is fitted on the calibration scores: ``"pot"`` (peaks over
        threshold, an extreme-value fit of the score tail) or ``"quantile"`` (the empirical
        quantile).
    risk
        Target probability that a normal row is flagged, i.e. the tail probability of the threshold.
    random_state
        Seed (an int, or None for a fresh one each fit): the same seed gives the same scores.
    validation_fraction
        Optional. A detector that takes it learns from the first rows only and holds out the last
        ``validation_fraction`` of them (see :meth:`holdout_start`); it may watch them to stop
        training, and its threshold is fitted on their scores, which a model that never learned
        from them gives honestly. Without it, the threshold is fitted on the training rows' scores.

    After ``fit``:

    n_train_rows_
        Rows the detector learned from; the rest of the training data was held out.
    calibration_scores_
        Scores of the last ``len(calibration_scores_)`` training rows (the held-out ones, or all of
        them without a hold-out), on the scale of :meth:`score`; the threshold is fitted on them,
        and a :class:`~tsdiff.fusion.FusionDetector` calibrates its components on them.
    """

    #: values for parameters that a saved model predates (it was fitted and scores that way); a
    #: parameter added later defaults to these, not to the new default, when such a model is loaded
    LEGACY_PARAMS: ClassVar[dict[str, Any]] = {}
    #: arrays that models saved by earlier versions hold beside those of :meth:`_get_state`
    LEGACY_ARRAYS: ClassVar[tuple[str, ...]] = ()

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def _fit(self, values: np.ndarray) -> None:
        """Learn from scaled training values (n_rows, n_features); NaN marks missing cells.

        Only the first ``self.n_train_rows_`` rows may be learned from; later rows are held out
        (they may decide when to stop training, nothing else).
        """

    @abstractmethod
    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores (n_rows,) and per-metric scores (n_rows, n_features) for scaled values.

        ``offset`` is the position of ``values[0]`` in a longer stream (:class:`~tsdiff.stream.
        StreamScorer` scores a moving buffer); a detector whose scores draw random numbers keys them
        by absolute position with it, so a row scores the same in a stream as in one batch.
        ``memo`` is a dict a stream keeps between calls: a detector may store work keyed by stream
        position there (e.g. per-window results) and reuse it when the same rows come again. Its
        :data:`MEMO_WANTED` entry, when set, is the last stream position whose score the stream
        reads from this call; later rows may be left unscored.
        """

    def _calibrate(self, values: np.ndarray) -> np.ndarray:
        """Calibration scores of the training ``values`` (see ``calibration_scores_``).

        Default: the scores of the held-out rows, computed with as many rows before them as a
        score reaches back (:meth:`stream_geometry`; all of them when that is unknown), or the
        scores of every row without a hold-out. A detector that learns something from the
        held-out rows themselves (e.g. how large its residuals are) overrides this.
        """
        start = self.n_train_rows_
        if start >= len(values):
            return self._score(values)[0]
        geometry = self.stream_geometry()
        first = 0 if geometry is None else max(0, start - geometry.history)
        return self._score(values[first:])[0][start - first :]

    def _holdout_bounds(self) -> tuple[int, int]:
        """Fewest rows to hold out, and fewest rows to keep for learning (see :meth:`holdout_start`)."""
        return 1, 1

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state to save: a JSON-ready dict and a dict of named arrays."""
        return {}, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`_get_state` returned."""

    # ----------------------------------------------------------------- what the machinery asks
    def stream_geometry(self) -> StreamGeometry | None:
        """How far a row's score reaches into the rows around it (None: it cannot be streamed)."""
        return None

    def min_rows(self) -> int:
        """Fewest rows the detector can score (e.g. one window)."""
        return 1

    def min_fit_rows(self) -> int:
        """Fewest rows the detector can learn from."""
        return self.min_rows()

    def fitted_components(self) -> dict[str, BaseDetector]:
        """The fitted detectors this one is built from, by name (saved each in a folder of its own)."""
        return {}

    def names_root_causes(self) -> bool:
        """Whether :meth:`root_causes` names metrics (a detector with a causal model)."""
        return False

    def root_causes(self, evidence: np.ndarray, positions: list[slice]) -> list[list]:
        """Ranked root-cause metric names per event (rows ``positions`` of ``evidence``).

        ``evidence`` is :attr:`ScoreParts.evidence`; a detector without a causal model names none.
        """
        return [[] for _ in positions]

    def explain_lookback(self) -> int:
        """Rows before an event that its explanation reads (the onset search starts there)."""
        return 0

    def explain_events(self, evidence: np.ndarray, positions: list[slice], index: Any = None) -> list[Any]:
        """One :class:`~tsdiff.causal.explain.Explanation` per event (rows ``positions`` of
        ``evidence``, over rows labelled ``index``); only detectors with a causal model have them."""
        raise ParameterError(f"{type(self).__name__} has no causal model to explain events with")

    def rank_causes(self, X: Any, start: Any = None, end: Any = None) -> Any:
        """The :class:`~tsdiff.causal.explain.Explanation` of rows ``start``..``end`` of ``X`` (index
        labels, inclusive; None: the first or last row), as an event's (detectors with a causal
        model only).

        ``X`` should reach back some rows before ``start`` (the causal model's ``lag_ + smooth //
        2``), so every mechanism has its history and the onsets can be searched before the start.
        ``.root_causes`` lists the likely origins first, ``.affected`` every metric by deviation.
        """
        if not self.names_root_causes():
            raise ParameterError(f"{type(self).__name__} has no causal model to rank causes with")
        frame, values = self._prepare(X)
        try:
            rows = pd.Series(np.arange(len(frame.index)), index=frame.index).loc[start:end].to_numpy()
        except (KeyError, TypeError) as exc:
            raise ParameterError(f"cannot select rows {start!r} .. {end!r} of this index: {exc}") from None
        if len(rows) == 0:
            raise ParameterError(f"no rows between {start!r} and {end!r}")
        if np.isnan(frame.values[rows]).all():
            raise ParameterError(f"the rows {start!r} .. {end!r} hold no values: nothing to explain")
        evidence = self.score_scaled(values).evidence
        return self.explain_events(evidence, [slice(int(rows[0]), int(rows[-1]) + 1)], frame.index)[0]

    def score_scaled(self, values: np.ndarray, offset: int = 0, memo: dict | None = None) -> ScoreParts:
        """Score values already scaled by ``scaler_`` (what :meth:`score`, :meth:`detect` and a
        stream run on); ``offset`` and ``memo`` as for ``_score``."""
        scores, feature_scores = self._score(values, offset, memo)
        return ScoreParts(scores, feature_scores)

    def holdout_start(self, n_rows: int) -> int:
        """First held-out row of ``n_rows`` training rows (``n_rows`` when nothing is held out).

        The one split rule of every detector: the last ``round(validation_fraction * n_rows)``
        rows, but at least the detector's fewest held-out rows and never so many that fewer than
        its fewest learning rows remain.
        """
        fraction = getattr(self, "validation_fraction", None)
        if fraction is None:
            return n_rows
        fewest_held, fewest_kept = self._holdout_bounds()
        held = max(fewest_held, round(n_rows * float(fraction)))
        return n_rows - max(0, min(held, n_rows - fewest_kept))

    def check_fitted(self) -> None:
        """Raise :class:`~tsdiff.errors.NotFittedError` unless ``fit`` has run."""
        if not hasattr(self, "threshold_"):
            raise NotFittedDetectorError(f"this {type(self).__name__} is not fitted yet; call fit first")

    # ----------------------------------------------------------------- the contract
    def fit(self, X: Any, y: Any = None) -> BaseDetector:
        """Learn normal behaviour from ``X`` (a DataFrame of metrics or a 2-d array) and fit the threshold.

        ``y`` is ignored; it is accepted for scikit-learn compatibility.
        """
        self._check_params()
        frame = validate_frame(X, min_rows=self.min_fit_rows(), what="rows to fit on")
        check_observed(frame, self.holdout_start(frame.n_rows))
        self.feature_names_in_ = list(frame.columns)
        self.n_features_in_ = len(self.feature_names_in_)
        self.columns_named_ = frame.named
        self.scaler_ = self._input_scaler(frame.values)
        values = self.scaler_.transform(frame.values)
        self.n_train_rows_ = self.holdout_start(len(values))
        self._fit(values)
        self.calibration_scores_ = np.asarray(self._calibrate(values), dtype=np.float64)
        self._fit_threshold(self.calibration_scores_)
        return self

    def refit(self, X: Any, fraction: float = 0.2) -> BaseDetector:
        """Fit again on ``X`` (recent rows, with the columns seen at fit time), starting from what
        the model learned: a warm start where the detector has one (the diffusion model trains
        ``fraction`` of a full fit's steps from its current weights; the causal model keeps its
        graph and refits its mechanisms), a full fit otherwise. The scaler, the held-out rows, the
        calibration and the threshold are all redone on ``X``. Returns the detector, refitted."""
        self.check_fitted()
        if not 0.0 < float(fraction) <= 1.0:
            raise ParameterError(f"fraction must be in (0, 1], got {fraction!r}")
        frame = validate_frame(X, min_rows=self.min_fit_rows(), what="rows to refit on")
        frame = align_columns(frame, self.feature_names_in_, self.columns_named_, type(self).__name__)
        check_observed(frame, self.holdout_start(frame.n_rows))
        self.scaler_ = self._input_scaler(frame.values)
        values = self.scaler_.transform(frame.values)
        self.n_train_rows_ = self.holdout_start(len(values))
        self._refit(values, float(fraction))
        self.calibration_scores_ = np.asarray(self._calibrate(values), dtype=np.float64)
        self._fit_threshold(self.calibration_scores_)
        return self

    def _refit(self, values: np.ndarray, fraction: float) -> None:
        """Learn again from scaled ``values``, starting from the fitted state (default: from
        scratch, as :meth:`_fit`)."""
        self._fit(values)

    def _input_scaler(self, values: np.ndarray) -> RobustScaler:
        """The scaler fitted on the training values that every later input goes through."""
        return RobustScaler(clip=SCALED_LIMIT).fit(values)

    def score(self, X: Any, y: Any = None) -> pd.Series:
        """One anomaly score per row of ``X`` (higher is more anomalous), indexed like ``X``.

        ``y`` is ignored (scikit-learn passes one in pipelines and model selection). Unlike a
        scikit-learn estimator's ``score``, this is one value per row, not one for the data."""
        frame, values = self._prepare(X)
        return pd.Series(self.score_scaled(values).scores, index=frame.index, name="score")

    def predict(self, X: Any) -> pd.Series:
        """0/1 per row of ``X``: 1 where the score is above the fitted threshold."""
        return (self.score(X) > self.threshold_).astype(np.int8).rename("label")

    # the names other anomaly-detection libraries use, for code written against them
    def decision_function(self, X: Any) -> np.ndarray:
        """The scores of :meth:`score` as an array, higher is more anomalous (PyOD's convention;
        scikit-learn's outlier detectors have the opposite sign)."""
        return self.score(X).to_numpy()

    def score_samples(self, X: Any) -> np.ndarray:
        """The same as :meth:`decision_function`: one score per row, higher is more anomalous."""
        return self.decision_function(X)

    def fit_predict(self, X: Any, y: Any = None) -> pd.Series:
        """:meth:`fit` on ``X``, then :meth:`predict` its rows (``y`` is ignored)."""
        return self.fit(X).predict(X)

    @property
    def decision_scores_(self) -> np.ndarray:
        """Scores of the training rows the threshold was fitted on (PyOD's name): every training
        row, or the held-out last rows for a detector that holds some out (the others were
        learned from, so their scores would flatter the model). The same as
        ``calibration_scores_``."""
        self.check_fitted()
        return self.calibration_scores_

    @property
    def labels_(self) -> np.ndarray:
        """0/1 for the rows of :attr:`decision_scores_`: 1 above the threshold (PyOD's name)."""
        return (self.decision_scores_ > self.threshold_).astype(np.int8)

    def detect(
        self,
        X: Any,
        top_k: int = 3,
        merge_gap: int | None = None,
        min_rows: int | None = None,
        segmentation: SegmentRules | None = None,
    ) -> DetectionResult:
        """Scores, labels, per-metric scores and events for ``X``.

        Parameters
        ----------
        X
            Data with the columns seen at fit time (any order when named).
        top_k
            Number of metrics named in ``top_metrics`` per event.
        merge_gap, min_rows
            Replace the fields of the same names of ``segmentation``: flagged runs at most
            ``merge_gap`` rows apart may form one event; events spanning fewer than ``min_rows``
            rows are dropped (row labels are not changed).
        segmentation
            How flagged rows are cut into events (:class:`~tsdiff.segmentation.SegmentRules`;
            the defaults were chosen on the development split). A live
            :class:`~tsdiff.stream.StreamScorer` with the same rules cuts the same incidents.
        """
        rules = segmentation or SegmentRules()
        overrides = {k: v for k, v in (("merge_gap", merge_gap), ("min_rows", min_rows)) if v is not None}
        if overrides:
            rules = SegmentRules(**{**rules.__dict__, **overrides})
        frame, values = self._prepare(X)
        parts = self.score_scaled(values)
        s = pd.Series(parts.scores, index=frame.index, name="score")
        labels = (s > self.threshold_).astype(np.int8).rename("label")
        fs = pd.DataFrame(parts.feature_scores, index=frame.index, columns=self.feature_names_in_)
        self._warn_on_drift(labels)
        spans = segment_rows(labels.to_numpy(), np.asarray(parts.feature_scores), rules)
        explanations = None
        if self.names_root_causes():
            explanations = self.explain_events(parts.evidence, spans, frame.index)
        events = find_events(s, labels, fs, top_k=top_k, spans=spans, explanations=explanations)
        return DetectionResult(
            scores=s,
            labels=labels,
            threshold=float(self.threshold_),
            threshold_method=self.threshold_method_,
            feature_scores=fs,
            events=events,
            components={
                name: pd.Series(v, index=frame.index, name=name) for name, v in parts.components.items()
            },
            explanations=explanations,
        )

    def _warn_on_drift(self, labels: pd.Series) -> None:
        """A :class:`~tsdiff.errors.DriftWarning` when far more rows are flagged than ``risk``."""
        import warnings

        from tsdiff.errors import DriftWarning
        from tsdiff.incidents import DRIFT_FACTOR

        share = float(labels.mean()) if len(labels) else 0.0
        if len(labels) >= 100 and share > DRIFT_FACTOR * float(self.risk):
            fallback = ""
            if getattr(self, "threshold_method_", self.threshold) != self.threshold:
                fallback = (
                    f" (and its threshold is only the top of {len(self.calibration_scores_)} calibration "
                    f"scores: too few for a {self.threshold} tail fit; fit on more rows)"
                )
            warnings.warn(
                f"{share:.1%} of the rows are flagged, {share / float(self.risk):.0f} times the model's risk "
                f"({float(self.risk):g}): unless they hold that many anomalies, the data has drifted from "
                "what the model was fitted on; refit it on recent normal rows (a live monitor can adapt: "
                f"tsdiff watch --adapt window, --refit-after){fallback}",
                DriftWarning,
                stacklevel=3,
            )

    def save(self, path: str | Path) -> Path:
        """Save the fitted detector to the directory ``path``; reload it with :func:`tsdiff.load`."""
        from tsdiff.persist import save

        return save(self, path)

    # ----------------------------------------------------------------- saved state
    def export_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Everything ``fit`` learned, as :mod:`tsdiff.persist` writes it: a dict and named arrays."""
        self.check_fitted()
        state, arrays = self._get_state()
        if CALIBRATION_ARRAY in arrays:
            raise ParameterError(f"{type(self).__name__} may not name an array {CALIBRATION_ARRAY!r}")
        model = self.threshold_model_
        config = {
            "feature_names": list(self.feature_names_in_),
            "columns_named": bool(self.columns_named_),
            "scaler": self.scaler_.to_dict(),
            "threshold": {
                "value": self.threshold_,
                "method": self.threshold_method_,
                "model": None if model is None else model.to_dict(),
            },
            "n_train_rows": None if self.n_train_rows_ is None else int(self.n_train_rows_),
            "state": state,
        }
        if getattr(self, "source_", None) is not None:  # where the training data came from
            config["source"] = self.source_
        if self.calibration_scores_ is not None:  # None: loaded from a model saved without them
            arrays = {**arrays, CALIBRATION_ARRAY: self.calibration_scores_}
        return config, arrays

    def import_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`export_state` returned (the parameters are already set)."""
        from tsdiff.thresholds import BaseThreshold

        self.feature_names_in_ = list(config["feature_names"])
        self.n_features_in_ = len(self.feature_names_in_)
        self.columns_named_ = bool(config["columns_named"])
        self.scaler_ = RobustScaler.from_dict(config["scaler"])
        saved = config["threshold"]
        model = saved["model"]
        self.threshold_model_ = None if model is None else BaseThreshold.from_dict(model)
        self.threshold_ = float(saved["value"])
        self.threshold_method_ = str(saved["method"])
        # models saved before these were kept: the training rows are unknown, the scores absent
        self.n_train_rows_ = config.get("n_train_rows")
        self.source_ = config.get("source")
        calibration = arrays.pop(CALIBRATION_ARRAY, None)
        self.calibration_scores_ = None if calibration is None else np.asarray(calibration, np.float64)
        self._check_common_state()
        self._set_state(config["state"], arrays)
        self._check_state()
        extra = sorted(set(arrays) - set(self._get_state()[1]) - set(self.LEGACY_ARRAYS))
        require(not extra, f"holds array(s) {extra} that a {type(self).__name__} does not have")

    def _check_common_state(self) -> None:
        """Refuse a loaded model whose columns, scaler, threshold or held-out scores are broken."""
        k = self.n_features_in_
        require(k >= 1, "names no columns")
        require(len({repr(c) for c in self.feature_names_in_}) == k, "names a column twice")
        check_array("scaler center", self.scaler_.center_, (k,))
        check_array("scaler scale", self.scaler_.scale_, (k,), positive=True)
        clip = self.scaler_.clip
        require(clip is None or (np.isfinite(clip) and clip > 0), f"has a scaler clip of {clip!r}")
        require(np.isfinite(self.threshold_), f"has the threshold {self.threshold_!r}")
        if self.n_train_rows_ is not None:
            check_int("n_train_rows", self.n_train_rows_, 0, 10**12)
        if self.calibration_scores_ is not None:
            check_array("calibration scores", self.calibration_scores_, (None,))
        if self.source_ is not None:
            from tsdiff.sources.prometheus import PrometheusSource

            try:
                PrometheusSource.from_dict(self.source_)
            except (TsdiffError, KeyError, TypeError, ValueError) as exc:
                require(False, f"has a broken data source: {exc}")

    def _check_state(self) -> None:
        """Refuse (with :class:`~tsdiff.errors.ModelFormatError`, see :mod:`tsdiff.checks`) a state
        that :meth:`_set_state` restored but that this detector cannot score with: wrong shapes,
        values out of range, references to columns that do not exist."""

    # ----------------------------------------------------------------- shared steps
    def _check_params(self) -> None:
        if self.threshold not in THRESHOLD_METHODS:
            raise ParameterError(f"threshold must be one of {THRESHOLD_METHODS}, got {self.threshold!r}")
        if not 0.0 < float(self.risk) < 1.0:
            raise ParameterError(f"risk must be in (0, 1), got {self.risk!r}")
        rs = self.random_state
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, (int, np.integer))):
            raise ParameterError(f"random_state must be an int or None, got {type(rs).__name__}")
        fraction = getattr(self, "validation_fraction", None)
        if fraction is not None and not 0.0 < float(fraction) < 1.0:
            raise ParameterError(f"validation_fraction must be in (0, 1), got {fraction!r}")

    def _prepare(self, X: Any) -> tuple[ValidatedFrame, np.ndarray]:
        self.check_fitted()
        frame = validate_frame(X, min_rows=self.min_rows(), what="rows to score")
        frame = align_columns(frame, self.feature_names_in_, self.columns_named_, type(self).__name__)
        return frame, self.scaler_.transform(frame.values)

    def set_threshold(self, value: float, method: str) -> BaseDetector:
        """Replace the fitted label threshold with ``value`` (for example one chosen for a whole
        fleet, :mod:`tsdiff.fleet.pooling`); ``method`` names where it came from and is saved with
        the model as ``threshold_method_``. The calibration scores are kept."""
        self.check_fitted()
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.floating))
            or not math.isfinite(value)
        ):
            raise ParameterError(f"a threshold must be a finite number, got {value!r}")
        self.threshold_ = float(value)
        self.threshold_method_ = str(method)
        self.threshold_model_ = None
        return self

    def _fit_threshold(self, calibration_scores: np.ndarray) -> None:
        from tsdiff.thresholds import make_threshold

        model = make_threshold(self.threshold, risk=float(self.risk))
        model.fit(np.asarray(calibration_scores, dtype=np.float64))
        self.threshold_model_ = model
        self.threshold_ = float(model.threshold_)
        self.threshold_method_ = str(model.info_.get("method", self.threshold))
        if self.threshold_method_ != self.threshold:  # the drift warning repeats it when it matters
            logger.info(
                "%s: the threshold is the empirical %g quantile of %d calibration scores, not a fitted "
                "tail (%s: %s); fit on more rows for a threshold that extrapolates",
                type(self).__name__,
                1.0 - float(self.risk),
                len(calibration_scores),
                self.threshold,
                model.info_.get("reason"),
            )

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.random_state)

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

"""CausalDetector: anomalies are timestamps where a metric stops following its own causal mechanism."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.base import BaseDetector, ScoreParts, StreamGeometry
from tsdiff.errors import ParameterError
from tsdiff.frame import window_mean
from tsdiff.serialize import prefixed, unprefixed

logger = logging.getLogger(__name__)

METHODS = ("pc", "granger")
AGGREGATES = ("mean", "max", "rms")
CONSTANT = ("deviation", "ignore")


class CausalDetector(BaseDetector):
    """Causal-mechanism anomaly detector with root causes (after Yang, Zhang and Hoi, 2022).

    Fitting learns, from normal data, a lagged causal graph over the metrics (``graph_``) and, for
    each metric, a model of its value given its causes and its own recent past (its mechanism).
    Scoring asks, row by row, how far each metric strays from what its mechanism predicts: the
    residual in robust z units (median and MAD of residuals on held-out training rows) is the
    per-metric violation score (``feature_scores``); a row's score aggregates the violations.
    Events are explained (:meth:`~tsdiff.base.BaseDetector.rank_causes`,
    :attr:`~tsdiff.results.DetectionResult.explanations`) from two calibrated channels per metric,
    deviation and violation: ``root_causes`` puts the metrics whose mechanism broke with nothing
    upstream to explain it first, ``affected`` ranks every metric by deviation (see
    :mod:`tsdiff.causal.explain`).

    Parameters
    ----------
    method
        ``"pc"``: the PC algorithm (causal-learn) over current and lagged values with time order
        as background knowledge; ``"granger"``: pairwise Granger tests (statsmodels).
    indep_test, alpha, max_depth
        PC's conditional-independence test, significance level, and largest conditioning set
        (``alpha`` is also the family-wise level of the Granger tests).
    max_lag, lag_criterion
        Largest lag, and the VAR information criterion that picks the lag order below it.
    max_variables
        Most lagged variables (usable metrics x (lag + 1)) the PC search works on; a lag chosen
        above that is lowered to fit. PC's cost grows faster than the square of the variables:
        on SMD machine-1-6 (38 metrics) discovery took 74 s at lag 3 and 31 s at lag 2 on 2 cores,
        with the same detection accuracy.
    max_rows
        Rows sampled for the discovery tests (the mechanisms use every training row).
    mechanism
        ``"linear"`` (ridge) or ``"boosting"`` (histogram gradient boosting).
    ridge_alpha, trim
        Ridge penalty; training rows whose residual lies beyond ``trim`` robust SDs are dropped
        for a second fit, so anomalies in the training data do not bend the mechanisms.
    residual_floor
        Smallest residual spread (robust units of the metric), so a near-perfectly predicted
        metric does not turn tiny deviations into huge scores.
    aggregate
        Row score from the metric violations: ``"mean"``, ``"max"`` or ``"rms"``.
    smooth
        Rows of the centred moving mean applied to each metric's violations before they are
        aggregated (1 or 0: none). Anomalies last many rows while single-row residual noise does
        not; on SMD 1-2..1-8 smoothing over 17 rows raised the mean VUS-PR from 0.30 to 0.36. A live
        row's score waits for as many later rows as the window reaches after it (``smooth_ahead``).
    smooth_ahead
        Rows after each row that its smoothing window reaches (the rest lie before it); None:
        centred, ``smooth - smooth // 2 - 1`` rows (7 of 16). The ``streaming`` preset reaches 3
        rows ahead over the same 16 rows, so a live row's score is final 3 rows later.
    constant_metrics
        How a metric constant in the learning rows enters the score (it has no mechanism, so it
        never counts as violated): ``"deviation"``, its distance from that constant in standard
        deviations of its training values (at least ``residual_floor``); ``"ignore"``, not at
        all (it still shows in explanations). Chosen on the development split: mean VUS-PR over
        SMD, SKAB, synthetic and MSL 0.606 against 0.592 (``"ignore"`` gains 0.007 on SMD and
        loses 0.065 on MSL, whose command channels are flat in training).
    violation_level
        Calibrated violation (a Gaussian-equivalent z, see :mod:`tsdiff.causal.explain`) above
        which a metric's mechanism counts as broken in an explanation.
    validation_fraction
        Share of the training rows (the last ones) held out to calibrate residuals and threshold.
    threshold, risk
        Label threshold, see :class:`~tsdiff.base.BaseDetector`.
    random_state
        Seed of the row sampling and the boosted models.
    """

    def __init__(
        self,
        method: str = "pc",
        indep_test: str = "fisherz",
        alpha: float = 0.01,
        max_depth: int | None = 3,
        max_lag: int = 3,
        lag_criterion: str = "bic",
        max_variables: int = 120,
        max_rows: int = 5000,
        mechanism: str = "linear",
        ridge_alpha: float = 1.0,
        trim: float = 4.0,
        residual_floor: float = 0.05,
        aggregate: str = "mean",
        smooth: int = 16,
        smooth_ahead: int | None = None,
        constant_metrics: str = "deviation",
        violation_level: float = 3.0,
        validation_fraction: float = 0.2,
        threshold: str = "pot",
        risk: float = 1e-3,
        random_state: int | None = None,
    ) -> None:
        self.method = method
        self.indep_test = indep_test
        self.alpha = alpha
        self.max_depth = max_depth
        self.max_lag = max_lag
        self.lag_criterion = lag_criterion
        self.max_variables = max_variables
        self.max_rows = max_rows
        self.mechanism = mechanism
        self.ridge_alpha = ridge_alpha
        self.trim = trim
        self.residual_floor = residual_floor
        self.aggregate = aggregate
        self.smooth = smooth
        self.smooth_ahead = smooth_ahead
        self.constant_metrics = constant_metrics
        self.violation_level = violation_level
        self.validation_fraction = validation_fraction
        self.threshold = threshold
        self.risk = risk
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        from tsdiff.causal.mechanisms import MODELS

        checks = [
            (self.method in METHODS, f"method must be one of {METHODS}"),
            (0.0 < float(self.alpha) < 1.0, "alpha must be in (0, 1)"),
            (int(self.max_lag) >= 1, "max_lag must be >= 1"),
            (int(self.max_rows) >= 50, "max_rows must be >= 50"),
            (int(self.max_variables) >= 2, "max_variables must be >= 2"),
            (self.mechanism in MODELS, f"mechanism must be one of {MODELS}"),
            (float(self.ridge_alpha) >= 0 and float(self.trim) > 0, "ridge_alpha must be >= 0 and trim > 0"),
            (float(self.residual_floor) > 0, "residual_floor must be > 0"),
            (self.aggregate in AGGREGATES, f"aggregate must be one of {AGGREGATES}"),
            (int(self.smooth) >= 0, "smooth must be >= 0"),
            (
                self.smooth_ahead is None or 0 <= int(self.smooth_ahead) < max(int(self.smooth), 1),
                "smooth_ahead must be None or in [0, smooth)",
            ),
            (self.constant_metrics in CONSTANT, f"constant_metrics must be one of {CONSTANT}"),
            (self.max_depth is None or int(self.max_depth) >= 0, "max_depth must be None or >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ParameterError(message)

    def min_rows(self) -> int:
        # a row's violation needs its parents' lagged values, and its score a smoothing window:
        # fewer rows than that would score nothing but a model without its context
        lag = int(getattr(self, "lag_", self.max_lag))
        return lag + max(int(self.smooth), 1)

    def min_fit_rows(self) -> int:
        return 20 * (int(self.max_lag) + 1)

    def _holdout_bounds(self) -> tuple[int, int]:
        # residual spreads need a few rows past the longest lag; discovery needs rows to test
        return int(self.max_lag) + 10, 10 * (int(self.max_lag) + 1)

    # ----------------------------------------------------------------- fit
    def _fit(self, values: np.ndarray) -> None:
        from tsdiff.causal.discovery import choose_lag, discover_granger, discover_pc, screen_metrics
        from tsdiff.torch_runtime import make_seed

        seed = make_seed(self.random_state)
        rng = np.random.default_rng(seed)
        train = values[: self.n_train_rows_]
        started = time.perf_counter()
        screening = screen_metrics(train)
        usable = screening.usable
        self.lag_ = (
            choose_lag(train[:, usable], int(self.max_lag), self.lag_criterion, int(self.max_rows))
            if usable
            else 1
        )
        if self.method == "pc" and usable:
            fits = max(1, int(self.max_variables) // len(usable) - 1)
            if self.lag_ > fits:
                logger.info(
                    "lag %d lowered to %d: %d metrics x %d lags would exceed max_variables=%d",
                    self.lag_,
                    fits,
                    len(usable),
                    self.lag_ + 1,
                    int(self.max_variables),
                )
                self.lag_ = fits
        edges: list[tuple[int, int, int, bool]] = []
        if len(usable) >= 2:
            sub = train[:, usable]
            if self.method == "pc":
                found = discover_pc(
                    sub,
                    self.lag_,
                    float(self.alpha),
                    self.indep_test,
                    int(self.max_rows),
                    self.max_depth,
                    rng,
                )
            else:
                found = discover_granger(sub, self.lag_, float(self.alpha), int(self.max_rows))
            edges = [(usable[c], usable[e], s, o) for c, e, s, o in found]
        self.discovery_seconds_ = time.perf_counter() - started
        self._fit_mechanisms(train, edges, screening, seed)
        logger.info(
            "causal graph: %s, lag %d, discovery %.1fs", self.graph_, self.lag_, self.discovery_seconds_
        )

    def _fit_mechanisms(self, train: np.ndarray, edges: list, screening: Any, seed: int) -> None:
        """Every metric's mechanism over ``edges`` (positions), fitted on ``train``; the graph."""
        from tsdiff.causal.mechanisms import build_specs, fit_mechanisms

        self.screening_ = {
            "usable": screening.usable,
            "constant": screening.constant,
            "duplicate_of": {int(a): int(b) for a, b in screening.duplicate_of.items()},
        }
        k = train.shape[1]
        self.specs_ = build_specs(k, edges, self.lag_, screening.constant, screening.duplicate_of)
        self.models_ = fit_mechanisms(
            self.specs_, train, self.lag_, self.mechanism, float(self.ridge_alpha), float(self.trim), seed
        )
        self.graph_ = self._make_graph(edges, train)
        self.ancestry_ = None

    def _refit(self, values: np.ndarray, fraction: float) -> None:
        """A warm refit: the learned graph and lag are kept (discovery is most of a fit), the
        mechanisms fitted again on the new rows (an edge into or out of a metric that became
        constant or a duplicate is dropped)."""
        from tsdiff.causal.discovery import screen_metrics
        from tsdiff.torch_runtime import make_seed

        train = values[: self.n_train_rows_]
        screening = screen_metrics(train)
        position = {name: i for i, name in enumerate(self.feature_names_in_)}
        usable = set(screening.usable)
        edges = [
            (position[e.cause], position[e.effect], int(e.lag), bool(e.oriented))
            for e in self.graph_.edges.itertuples(index=False)
            if position[e.cause] in usable and position[e.effect] in usable
        ]
        self.discovery_seconds_ = 0.0
        self._fit_mechanisms(train, edges, screening, make_seed(self.random_state))

    def _make_graph(self, edges: list[tuple[int, int, int, bool]], train: np.ndarray) -> Any:
        """The edge table with strengths: absolute standardised ridge coefficients in the mechanisms."""
        from tsdiff.causal.graph import CausalGraph
        from tsdiff.causal.mechanisms import LinearModel

        names = list(self.feature_names_in_)
        rows = np.arange(self.lag_, train.shape[0])
        strength: dict[tuple[int, int, int], float] = {}
        for spec in self.specs_:
            if not spec.predictors:
                continue
            x, y = spec.design(train, rows), train[rows, spec.target]
            ok = ~np.isnan(y) & ~np.isnan(x).any(axis=1)
            if ok.sum() <= x.shape[1] + 1 or not np.nanstd(y[ok]) > 0:
                continue
            sd_x = x[ok].std(axis=0)
            model = LinearModel(alpha=float(self.ridge_alpha), trim=float(self.trim)).fit(x[ok], y[ok])
            std_coef = np.abs(model.coef_) * sd_x / y[ok].std()
            for (col, lag), value in zip(spec.predictors, std_coef, strict=True):
                strength[(col, spec.target, lag)] = float(value)
        table = pd.DataFrame(
            [
                (names[c], names[e], s, strength.get((c, e, s), 0.0), o)
                for c, e, s, o in sorted(set(edges), key=lambda t: (t[1], t[2], t[0]))
            ],
            columns=["cause", "effect", "lag", "strength", "oriented"],
        )
        return CausalGraph(table, names)

    def _calibrate(self, values: np.ndarray) -> np.ndarray:
        """Residual spreads and evidence scales from the training rows; the held-out rows' scores.

        * the score's violations: residual median and robust spread (MAD, at least
          ``residual_floor``) on the held-out rows;
        * the explanations' violation channel: the same residuals over a spread calibrated on the
          held-out rows (:func:`~tsdiff.causal.explain.calibrated_spread`), so a violation of 3 is
          about equally rare on normal rows for every metric, sparse or heavy-tailed alike;
        * the deviation channel: each value's distance from its training median in standard
          deviations of its training values, and per metric the deviation as rare on the held-out
          rows as a violation of ``violation_level``.
        """
        from tsdiff.causal.explain import calibrated_spread
        from tsdiff.causal.mechanisms import residual_scale

        start = self.n_train_rows_
        floor = float(self.residual_floor)
        residuals = self._residuals(values)
        self.residual_center_, self.residual_scale_ = residual_scale(residuals[start:], floor)
        self.violation_scale_ = calibrated_spread(residuals[start:] - self.residual_center_, floor)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # an all-missing column
            self.value_center_ = np.nan_to_num(np.nanmedian(values, axis=0))
            spread = np.nan_to_num(np.nanstd(values, axis=0))
        self.value_scale_ = np.maximum(spread, floor)
        held = (values[start:] - self.value_center_) / self.value_scale_
        level = float(self.violation_level)
        # a deviation as rare on the held-out rows as a calibrated violation of ``level``, and
        # never below ``level`` standard deviations
        self.deviation_level_ = level * calibrated_spread(held, 1.0)
        return self._aggregate(self._channels(values, residuals)[0][start:])

    # ----------------------------------------------------------------- score
    def _residuals(self, values: np.ndarray) -> np.ndarray:
        """Each value minus its mechanism's prediction (NaN where a mechanism lacks an input)."""
        from tsdiff.causal.mechanisms import predict_all

        return values - predict_all(self.specs_, self.models_, values, self.lag_)

    def _channels(
        self, values: np.ndarray, residuals: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row and metric: the smoothed violations the score is made of, the calibrated raw
        violations, and the signed deviations (0 where missing).

        A metric constant in training has no mechanism: its change is a deviation, never a
        violation; with ``constant_metrics="deviation"`` that deviation is its per-metric score.
        ``residuals`` are :meth:`_residuals` of ``values`` when already at hand.
        """
        if residuals is None:
            residuals = self._residuals(values)
        residuals = np.nan_to_num(residuals - self.residual_center_, nan=0.0)
        scored = np.abs(residuals) / self.residual_scale_
        calibrated = np.abs(residuals) / self.violation_scale_
        signed = np.nan_to_num((values - self.value_center_) / self.value_scale_, nan=0.0)
        constant = self.screening_["constant"]
        if constant:
            calibrated[:, constant] = 0.0
            scored[:, constant] = np.abs(signed[:, constant]) if self.constant_metrics == "deviation" else 0.0
        smoothed = window_mean(scored, int(self.smooth), self._ahead()) if int(self.smooth) > 1 else scored
        return smoothed, calibrated, signed

    def _aggregate(self, violations: np.ndarray) -> np.ndarray:
        if self.aggregate == "max":
            return violations.max(axis=1)
        if self.aggregate == "rms":
            return np.sqrt((violations**2).mean(axis=1))
        return violations.mean(axis=1)

    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        smoothed = self._channels(values)[0]
        return self._aggregate(smoothed), smoothed

    def score_scaled(self, values: np.ndarray, offset: int = 0, memo: dict | None = None) -> ScoreParts:
        """Scores and per-metric scores, with the evidence events are explained by: per row, the
        raw violations, absolute deviations and signed deviations side by side (n, 3K)."""
        smoothed, violation, signed = self._channels(values)
        return ScoreParts(
            self._aggregate(smoothed), smoothed, evidence=np.hstack([violation, np.abs(signed), signed])
        )

    def _ahead(self) -> int:
        """Rows after a row that its smoothing window reaches."""
        length = int(self.smooth) if int(self.smooth) > 1 else 1
        return (
            length - length // 2 - 1 if self.smooth_ahead is None else min(int(self.smooth_ahead), length - 1)
        )

    def stream_geometry(self) -> StreamGeometry:
        length = int(self.smooth) if int(self.smooth) > 1 else 1
        ahead = self._ahead()
        return StreamGeometry(history=int(self.lag_) + length - ahead, lookahead=ahead)

    def _ancestry(self) -> np.ndarray:
        from tsdiff.causal.explain import lag_ancestry

        if getattr(self, "ancestry_", None) is None:
            position = {name: j for j, name in enumerate(self.feature_names_in_)}
            edges = [
                (position[r.cause], position[r.effect], int(r.lag), bool(r.oriented))
                for r in self.graph_.edges.itertuples(index=False)
            ]
            self.ancestry_ = lag_ancestry(edges, self.n_features_in_)
        return self.ancestry_

    def names_root_causes(self) -> bool:
        return True

    def explain_lookback(self) -> int:
        return int(self.lag_) + max(int(self.smooth), 1) - self._ahead() - 1

    def explain_events(self, evidence: np.ndarray, positions: list[slice], index: Any = None) -> list[Any]:
        """An :class:`~tsdiff.causal.explain.Explanation` per event (rows ``positions`` of
        ``evidence``, the :attr:`ScoreParts.evidence` of a scoring pass over rows ``index``)."""
        from tsdiff.causal.explain import explain_rows

        k = self.n_features_in_
        evidence = np.asarray(evidence, dtype=np.float64)
        lookback = self.explain_lookback()
        duplicates = dict(self.screening_["duplicate_of"])
        return [
            explain_rows(
                evidence[:, :k],
                evidence[:, k : 2 * k],
                evidence[:, 2 * k :],
                rows,
                list(self.feature_names_in_),
                self._ancestry(),
                duplicates,
                float(self.violation_level),
                self.deviation_level_,
                lookback,
                index=index,
                graph=self.graph_,
            )
            for rows in positions
        ]

    def root_causes(self, evidence: np.ndarray, positions: list[slice]) -> list[list]:
        """Per event, its involved metrics, likely origins first (see :mod:`tsdiff.causal.explain`)."""
        return [e.root_causes for e in self.explain_events(evidence, positions)]

    # ----------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays: dict[str, np.ndarray] = {
            "residual_center": self.residual_center_,
            "residual_scale": self.residual_scale_,
            "violation_scale": self.violation_scale_,
            "value_center": self.value_center_,
            "value_scale": self.value_scale_,
            "deviation_level": self.deviation_level_,
        }
        for spec, model in zip(self.specs_, self.models_, strict=True):
            arrays.update(
                prefixed(f"mechanism.{spec.target}", {k: np.asarray(v) for k, v in model.arrays().items()})
            )
        state = {
            "lag": self.lag_,
            "specs": [[spec.target, [list(p) for p in spec.predictors]] for spec in self.specs_],
            "graph": self.graph_.to_dict(),
            "screening": self.screening_,
            "discovery_seconds": self.discovery_seconds_,
        }
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        from tsdiff.causal.graph import CausalGraph
        from tsdiff.causal.mechanisms import MechanismSpec, model_from_arrays

        self.lag_ = int(state["lag"])
        self.specs_ = [MechanismSpec(int(t), [(int(c), int(s)) for c, s in p]) for t, p in state["specs"]]
        self.models_ = []
        for spec in self.specs_:
            self.models_.append(
                model_from_arrays(self.mechanism, unprefixed(arrays, f"mechanism.{spec.target}"))
            )
        self.graph_ = CausalGraph.from_dict(state["graph"])
        screening = state["screening"]
        self.screening_ = {
            "usable": [int(j) for j in screening["usable"]],
            "constant": [int(j) for j in screening["constant"]],
            "duplicate_of": {int(a): int(b) for a, b in screening["duplicate_of"].items()},
        }
        self.discovery_seconds_ = float(state["discovery_seconds"])
        self.residual_center_ = np.asarray(arrays["residual_center"], dtype=np.float64)
        self.residual_scale_ = np.asarray(arrays["residual_scale"], dtype=np.float64)
        self.violation_scale_ = np.asarray(arrays["violation_scale"], dtype=np.float64)
        self.value_center_ = np.asarray(arrays["value_center"], dtype=np.float64)
        self.value_scale_ = np.asarray(arrays["value_scale"], dtype=np.float64)
        self.deviation_level_ = np.asarray(arrays["deviation_level"], dtype=np.float64)
        self.ancestry_ = None

    def _check_state(self) -> None:
        from tsdiff.causal.mechanisms import LinearModel
        from tsdiff.checks import check_array, check_int, check_trees, require

        k = self.n_features_in_
        lag = check_int("causal lag", self.lag_, 1, max(int(self.max_lag), 1))
        require(sorted(s.target for s in self.specs_) == list(range(k)), "has no mechanism for some metric")
        for spec, model in zip(self.specs_, self.models_, strict=True):
            for col, shift in spec.predictors:
                require(
                    0 <= col < k and 0 <= shift <= lag, f"mechanism {spec.target} reads ({col}, lag {shift})"
                )
            p = len(spec.predictors)
            if isinstance(model, LinearModel):
                check_array(f"mechanism.{spec.target}.coef", model.coef_, (p,))
                require(np.isfinite(model.intercept_), f"mechanism {spec.target} has a non-finite intercept")
            else:
                nodes = model.trees_.nodes
                leaf = check_array(
                    f"mechanism.{spec.target}.is_leaf", nodes["is_leaf"], (None,), integer=True
                )
                check_trees(
                    f"mechanism.{spec.target}", nodes["left"], nodes["right"], model.trees_.roots, leaf == 1
                )
                n = len(leaf)
                check_array(f"mechanism.{spec.target}.value", nodes["value"], (n,))
                check_array(f"mechanism.{spec.target}.threshold", nodes["threshold"], (n,), finite=False)
                inner = leaf == 0
                feature = check_array(
                    f"mechanism.{spec.target}.feature", nodes["feature"], (n,), integer=True
                )
                require(
                    ((feature[inner] >= 0) & (feature[inner] < max(p, 1))).all(),
                    "a tree splits on no predictor",
                )
                require(
                    np.isfinite(model.trees_.baseline), f"mechanism {spec.target} has a non-finite baseline"
                )
        check_array("residual_center", self.residual_center_, (k,))
        check_array("value_center", self.value_center_, (k,))
        for name in ("residual_scale", "violation_scale", "value_scale", "deviation_level"):
            check_array(name, getattr(self, f"{name}_"), (k,), positive=True)
        names = list(self.feature_names_in_)
        require(list(self.graph_.metrics) == names, "has a causal graph over other metrics")
        edges = self.graph_.edges
        known = set(map(repr, names))
        ends = [repr(c) for c in edges["cause"]] + [repr(e) for e in edges["effect"]]
        require(all(e in known for e in ends), "has a causal graph edge to an unknown metric")
        check_array("graph lags", edges["lag"].to_numpy(), (None,), integer=True, low=0, high=lag)
        screening = self.screening_
        twins = screening["duplicate_of"]
        positions = [*screening["usable"], *screening["constant"], *twins, *twins.values()]
        require(all(0 <= j < k for j in positions), "has a screening over other columns")

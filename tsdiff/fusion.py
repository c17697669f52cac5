"""Several detectors fused into one score, each calibrated on the rows it never learned from.

Detectors see anomalies differently (a forecaster asks "could this row be predicted from the last
ones?", a causal model "does each metric still follow its own mechanism?"), and their raw scores
live on unrelated scales. :class:`FusionDetector` fits each component on the same data, turns each
component's score into a common unit with a calibrator fitted on the component's held-out
training scores (``calibration_scores_``; surprise by default, see :mod:`tsdiff.calibration`),
and adds the calibrated scores with weights chosen per series without labels: anomalies are
injected into a copy of the held-out rows (:mod:`tsdiff.injection`) and each component weighs by
how well it finds them (``weights_``), so a weak component cannot drag a good one down. The
label-free threshold is fitted on the fused scores of the same held-out rows.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tsdiff.base import BaseDetector, ScoreParts, StreamGeometry, child_memo
from tsdiff.calibration import CALIBRATIONS, CALIBRATORS, Calibrator
from tsdiff.errors import ModelFormatError, ParameterError
from tsdiff.frame import RobustScaler, align_columns
from tsdiff.injection import chance_skill, evidence, inject, skill, skill_weights, stability

logger = logging.getLogger(__name__)

#: a component name: also its folder in a saved model and its column (``score_<name>``) in results
COMPONENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
WEIGHTINGS = ("injection-stability", "injection", "fixed")
#: held-out rows at most that anomalies are injected into (the weighting's cost)
INJECTION_ROWS = 2000
#: injected rows (over all copies) that a short held-out part is copied up to, and the most copies
INJECTED_ROWS, MAX_COPIES = 1000, 10


def common_tail(held_out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each component's scores of the rows every component held out.

    ``held_out`` maps a component to its calibration scores; each covers the last rows of the same
    training data (:attr:`BaseDetector.calibration_scores_`), so those rows are the common tail.
    """
    n = min(len(h) for h in held_out.values())
    return {name: h[len(h) - n :] for name, h in held_out.items()}


def fit_calibrators(held_out: dict[str, np.ndarray], calibration: str = "tail") -> dict[str, Calibrator]:
    """A calibrator per component, fitted on its scores of the rows every component held out."""
    kind = CALIBRATORS[calibration]
    return {name: kind().fit(h) for name, h in common_tail(held_out).items()}


def normalised(weights: dict[str, float]) -> dict[str, float]:
    """The weights divided by their sum."""
    total = sum(float(w) for w in weights.values())
    return {name: float(w) / total for name, w in weights.items()}


def fuse(calibrated: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The weighted sum of calibrated component scores, the weights divided by their sum."""
    share = normalised({name: weights[name] for name in calibrated})
    return sum(share[name] * part for name, part in calibrated.items())


def injected_skills(
    components: dict[str, BaseDetector], values: np.ndarray, n_held: int, random_state: int | None = None
) -> dict[str, float]:
    """Each fitted component's skill (:func:`~tsdiff.injection.skill`, above what a random score
    reaches by luck) on anomalies injected into (at most :data:`INJECTION_ROWS` of) the last
    ``n_held`` rows of its training ``values``, each copy scored after as many rows before it as the
    scores reach back. Few held-out rows get several copies (at least :data:`INJECTED_ROWS` rows in
    all, at most :data:`MAX_COPIES` copies), so one lucky placement cannot decide."""
    rows = min(n_held, INJECTION_ROWS)
    start = len(values) - rows
    reach = [c.stream_geometry() for c in components.values()]
    history = start if any(g is None for g in reach) else min(start, max(g.history for g in reach))
    rng = np.random.default_rng(random_state)
    copies = [inject(values[start:], rng) for _ in range(min(MAX_COPIES, math.ceil(INJECTED_ROWS / rows)))]
    mask = np.concatenate([m for _, m in copies])
    chance = chance_skill(mask, rng)
    skills = {}
    for name, component in components.items():
        scores = []
        for injected, _ in copies:
            block = component.scaler_.transform(np.vstack([values[start - history : start], injected]))
            scores.append(component.score_scaled(block).scores[history:])
        skills[name] = skill(mask, np.concatenate(scores), chance)
    return skills


class FusionDetector(BaseDetector):
    """Any detectors, fused into one score with per-metric attribution and root causes.

    Fitting clones and fits every component on the same data. Each component holds out its own
    last training rows (its ``validation_fraction``; a component without one is calibrated on its
    training rows); the calibrators are fitted on the rows that every component held out (the
    common tail), and so is the label threshold of the fused score. ``detect`` returns the fused
    score, each calibrated component score (``DetectionResult.components``), per-metric
    attribution that adds up to the fused score (each component's weighted calibrated score shared
    among the metrics in proportion to its own per-metric scores), and events whose
    ``root_causes`` come from the first component that names root causes (a causal model).

    Parameters
    ----------
    components
        ``[(name, detector, weight), ...]``: a name (letters, digits, ``_`` and ``-``), a configured
        detector (cloned at fit time; the fitted ones are ``components_``, by name) and a weight
        >= 0. Weights are divided by their sum.
    calibration
        ``"tail"``: surprise, ``-log10`` of the normal rows' survival function (empirical body,
        exponential tail); ``"zscore"``: robust z of each component score.
    weighting
        ``"injection-stability"`` (the default): each component's given weight times, to the power
        ``weighting_power``, its skill on anomalies injected into the held-out rows (average
        precision above chance) times its stability squared (how alike its scores are in the two
        halves of those rows, :func:`~tsdiff.injection.stability`); ``"injection"``: the skill
        alone (:func:`~tsdiff.injection.skill_weights`); ``"fixed"``: the given weights.
    weighting_power
        How sharply the weights follow the skills (0: the given weights; large: the best one).
    threshold, risk
        Label threshold on the fused score, see :class:`~tsdiff.base.BaseDetector`.
    random_state
        Seed passed to every component (when not None, it replaces their own), and of the
        injected anomalies.
    verbose
        Log the fitting stages.

    Attributes
    ----------
    weights_
        The weights the fused score uses, by component (they add up to 1).
    weighting_
        The evidence they came from: each component's ``skills`` and (``"injection-stability"``)
        ``stability`` (None with fixed weights).
    """

    #: models saved before the weights were chosen per series add the given weights
    LEGACY_PARAMS: ClassVar[dict[str, Any]] = {"weighting": "fixed"}

    def __init__(
        self,
        components: Sequence[tuple[str, BaseDetector, float]] | None = None,
        calibration: str = "tail",
        weighting: str = "injection-stability",
        weighting_power: float = 2.0,
        threshold: str = "pot",
        risk: float = 1e-3,
        random_state: int | None = None,
        verbose: bool = True,
    ) -> None:
        self.components = components
        self.calibration = calibration
        self.weighting = weighting
        self.weighting_power = weighting_power
        self.threshold = threshold
        self.risk = risk
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------------- components
    def _component_specs(self) -> list[tuple[str, Any, float]]:
        """(name, configured detector, weight) of each component, as given."""
        if self.components is None or isinstance(self.components, (str, bytes)):
            raise ParameterError("components must list (name, detector, weight) triples")
        specs = []
        for item in self.components:
            if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 3:
                raise ParameterError(f"a component must be (name, detector, weight), got {item!r}")
            specs.append(tuple(item))
        return specs

    def _templates(self) -> list[tuple[str, BaseDetector, float]]:
        """The components as unfitted clones (with this detector's seed), checked."""
        from sklearn.base import clone

        specs = self._component_specs()
        if not specs:
            raise ParameterError("components must list at least one (name, detector, weight)")
        out, seen = [], set()
        for name, detector, weight in specs:
            if not isinstance(name, str) or not COMPONENT_NAME.fullmatch(name):
                raise ParameterError(
                    f"component name {name!r} must be letters, digits, '_' or '-' (at most 64, "
                    "starting with a letter or digit)"
                )
            if name in seen:
                raise ParameterError(f"two components are named {name!r}")
            seen.add(name)
            if not isinstance(detector, BaseDetector):
                raise ParameterError(
                    f"component {name!r} is not a tsdiff detector: {type(detector).__name__}"
                )
            ok = isinstance(weight, (int, float, np.number)) and not isinstance(weight, bool)
            if not (ok and math.isfinite(float(weight)) and float(weight) >= 0.0):
                raise ParameterError(
                    f"the weight of component {name!r} must be a number >= 0, got {weight!r}"
                )
            template = clone(detector)
            if self.random_state is not None:
                template.set_params(random_state=self.random_state)
            out.append((name, template, float(weight)))
        if sum(w for _, _, w in out) <= 0.0:
            raise ParameterError("the component weights add up to 0")
        return out

    def _check_params(self) -> None:
        super()._check_params()
        if self.calibration not in CALIBRATIONS:
            raise ParameterError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if self.weighting not in WEIGHTINGS:
            raise ParameterError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        power = self.weighting_power
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not 0 <= float(power) < math.inf:
            raise ParameterError(f"weighting_power must be a number >= 0, got {power!r}")
        self._templates()

    def min_rows(self) -> int:
        return max(t.min_rows() for _, t, _ in self._templates())

    def min_fit_rows(self) -> int:
        return max(t.min_fit_rows() for _, t, _ in self._templates())

    def _weights(self) -> dict[str, float]:
        """Component name -> weight, as given."""
        return {name: float(w) for name, _, w in self._component_specs()}

    def _cause_component(self) -> str | None:
        """The first component that names root causes (None: no component does)."""
        return next((name for name, c in self.components_.items() if c.names_root_causes()), None)

    def fitted_components(self) -> dict[str, BaseDetector]:
        self.check_fitted()
        return dict(self.components_)

    def names_root_causes(self) -> bool:
        return self._cause_component() is not None

    # ----------------------------------------------------------------- fit
    def _input_scaler(self, values: np.ndarray) -> RobustScaler:
        """No scaling of its own: each component scales the data itself, so it sees exactly the
        values it would see alone (a component here scores as that detector fitted alone)."""
        return RobustScaler.identity(values.shape[1])

    def _fit(self, values: np.ndarray) -> None:
        data = pd.DataFrame(values, columns=self.feature_names_in_)
        fitted = {}
        for name, template, _ in self._templates():
            if self.verbose:
                logger.info("fitting the %s component (%s)", name, type(template).__name__)
            fitted[name] = template.fit(data)
        self.components_ = fitted

    def _refit(self, values: np.ndarray, fraction: float) -> None:
        """Every component refitted warm on the same rows (see :meth:`BaseDetector.refit`)."""
        data = pd.DataFrame(values, columns=self.feature_names_in_)
        for name, component in self.components_.items():
            if self.verbose:
                logger.info("refitting the %s component (%s)", name, type(component).__name__)
            component.refit(data, fraction)

    def _calibrate(self, values: np.ndarray) -> np.ndarray:
        """Calibrators fitted on the components' scores of the rows they all held out; the fused
        scores of those rows."""
        held = common_tail({name: c.calibration_scores_ for name, c in self.components_.items()})
        self.calibrators_ = fit_calibrators(held, self.calibration)
        given = normalised(self._weights())
        self.weights_, self.weighting_ = given, None
        if self.weighting != "fixed" and len(self.components_) > 1:
            n_held = len(next(iter(held.values())))
            skills = self._injected_skills(values, n_held)
            self.weighting_ = {"skills": skills}
            if self.weighting == "injection-stability":
                steady = {name: stability(h) for name, h in held.items()}
                self.weighting_["stability"] = steady
                skills = evidence(skills, steady)
            self.weights_ = skill_weights(skills, given, float(self.weighting_power))
            if self.verbose:
                logger.info("fusion weights %s from %s", self.weights_, self.weighting_)
        calibrated = {name: self.calibrators_[name].transform(h) for name, h in held.items()}
        return fuse(calibrated, self.weights_)

    def _injected_skills(self, values: np.ndarray, n_held: int) -> dict[str, float]:
        return injected_skills(self.components_, values, n_held, self.random_state)

    def reweigh(self, X: Any, weighting: str = "injection-stability") -> FusionDetector:
        """Choose the weights again (``weighting``) and refit the threshold, the components as they
        are: ``X`` is the training data the model was fitted on (its held-out rows are those the
        weights come from). Upgrades a model saved with fixed weights without refitting it."""
        from tsdiff.frame import validate_frame

        self.check_fitted()
        self.set_params(weighting=weighting)
        self._check_params()
        frame = validate_frame(X, min_rows=self.min_fit_rows(), what="training rows")
        frame = align_columns(frame, self.feature_names_in_, self.columns_named_, type(self).__name__)
        self.calibration_scores_ = np.asarray(
            self._calibrate(self.scaler_.transform(frame.values)), np.float64
        )
        self._fit_threshold(self.calibration_scores_)
        return self

    # ----------------------------------------------------------------- score
    def score_scaled(self, values: np.ndarray, offset: int = 0, memo: dict | None = None) -> ScoreParts:
        parts: dict[str, ScoreParts] = {}
        for name, component in self.components_.items():
            # the components were fitted on these columns in this order: no second validation
            own = child_memo(memo, name)
            parts[name] = component.score_scaled(component.scaler_.transform(values), offset, own)
        calibrated = {name: self.calibrators_[name].transform(p.scores) for name, p in parts.items()}
        given = self.weights_
        weights = normalised(given)
        attribution = np.zeros((len(values), self.n_features_in_), dtype=np.float64)
        for name, surprise in calibrated.items():
            evidence = np.clip(
                np.nan_to_num(np.asarray(parts[name].feature_scores, dtype=np.float64)), 0.0, None
            )
            total = evidence.sum(axis=1, keepdims=True)
            share = np.divide(evidence, total, out=np.zeros_like(evidence), where=total > 0)
            attribution += weights[name] * surprise[:, None] * share
        cause = self._cause_component()
        return ScoreParts(
            scores=fuse(calibrated, given),
            feature_scores=attribution,
            components=calibrated,
            evidence=attribution if cause is None else parts[cause].evidence,
        )

    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        parts = self.score_scaled(values, offset, memo)
        return parts.scores, parts.feature_scores

    def stream_geometry(self) -> StreamGeometry | None:
        geometry: StreamGeometry | None = StreamGeometry()
        for component in self.components_.values():
            own = component.stream_geometry()
            if own is None:
                return None
            geometry = geometry.combine(own)
        return geometry

    def root_causes(self, evidence: np.ndarray, positions: list[slice]) -> list[list]:
        cause = self._cause_component()
        if cause is None:
            return super().root_causes(evidence, positions)
        return self.components_[cause].root_causes(evidence, positions)

    def explain_lookback(self) -> int:
        cause = self._cause_component()
        return 0 if cause is None else self.components_[cause].explain_lookback()

    def explain_events(self, evidence: np.ndarray, positions: list[slice], index: Any = None) -> list[Any]:
        cause = self._cause_component()
        if cause is None:
            return super().explain_events(evidence, positions, index)
        return self.components_[cause].explain_events(evidence, positions, index)

    # ----------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays: dict[str, np.ndarray] = {}
        for name, calibrator in self.calibrators_.items():
            arrays.update(calibrator.to_arrays(f"calibration.{name}"))
        return {"weights": dict(self.weights_), "weighting": self.weighting_}, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore the calibrators; the fitted components were loaded into ``components_`` first."""
        templates = self._templates()
        names = [name for name, _, _ in templates]
        if list(getattr(self, "components_", {})) != names:
            raise ModelFormatError(f"a saved {type(self).__name__} must hold the components {names}")
        for (name, template, _), component in zip(templates, self.components_.values(), strict=True):
            if type(component) is not type(template):
                raise ModelFormatError(
                    f"the saved component {name!r} is a {type(component).__name__}, "
                    f"not a {type(template).__name__}"
                )
            if list(component.feature_names_in_) != list(self.feature_names_in_):
                raise ModelFormatError(f"the saved component {name!r} was fitted on other columns")
        calibrator = CALIBRATORS[self.calibration]
        self.calibrators_ = {name: calibrator.from_arrays(arrays, f"calibration.{name}") for name in names}
        weights = state.get("weights") or normalised(self._weights())  # saved before: the given ones
        if sorted(weights) != sorted(names) or not all(
            isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in weights.values()
        ):
            raise ModelFormatError(f"the saved fusion weights {weights!r} do not fit the components {names}")
        if sum(weights.values()) <= 0:
            raise ModelFormatError("the saved fusion weights add up to 0")
        self.weights_ = {name: float(weights[name]) for name in names}
        self.weighting_ = state.get("weighting")

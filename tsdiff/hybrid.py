"""The hybrid detector: imputation diffusion and causal mechanisms, fused on a common scale.

The two components see anomalies differently. The diffusion model asks "can this stretch be
imputed from its surroundings?" and catches any departure from the learned joint dynamics; the
causal model asks "does each metric still follow its own mechanism?" and names where a fault
started. Their raw scores live on unrelated scales, so each is first turned into *surprise*:
``-log10`` of the probability that a normal row scores at least as high, estimated on held-out
normal training rows (see :class:`TailCalibrator`). Surprises add like evidence: the fused score is
their weighted mean, and the label-free threshold is fitted on the fused scores of the same
held-out rows.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from tsdiff.base import BaseDetector
from tsdiff.errors import ModelFormatError, ParameterError

logger = logging.getLogger(__name__)

CALIBRATIONS = ("tail", "zscore")
#: ImDiffusionDetector parameters of the quick preset (shorter training, one-step scoring)
QUICK_DIFFUSION = {"max_steps": 300, "scoring": "single", "ensemble_steps": 5}
COMPONENTS = ("diffusion", "causal")


class TailCalibrator:
    """Maps a raw score to surprise, ``-log10 P(normal score >= s)``, fitted on normal scores.

    The body of the distribution is the empirical CDF (kept as ``n_quantiles`` quantiles); above
    the ``tail_from`` quantile the survival function continues as an exponential fitted to the
    excesses (mean excess, as in peaks-over-threshold with a zero shape), so scores beyond anything
    seen in training keep their order instead of all saturating at the largest one.
    """

    def __init__(self, n_quantiles: int = 256, tail_from: float = 0.95) -> None:
        self.n_quantiles = n_quantiles
        self.tail_from = tail_from

    def fit(self, values: np.ndarray) -> TailCalibrator:
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size == 0:
            raise ParameterError("no finite scores to calibrate on")
        self.probs_ = np.linspace(0.0, self.tail_from, self.n_quantiles)
        self.quantiles_ = np.quantile(x, self.probs_)
        u = float(self.quantiles_[-1])
        excess = x[x > u] - u
        spread = float(np.subtract(*np.quantile(x, [0.75, 0.25])))
        floor = 1e-9 * max(1.0, abs(u)) + 1e-3 * spread
        self.tail_scale_ = max(float(excess.mean()) if excess.size else 0.0, floor, 1e-12)
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        u = float(self.quantiles_[-1])
        body = np.interp(s, self.quantiles_, self.probs_, left=0.0, right=self.tail_from)
        survival = 1.0 - body
        tail = s > u
        survival[tail] = (1.0 - self.tail_from) * np.exp(-(s[tail] - u) / self.tail_scale_)
        with np.errstate(divide="ignore"):
            out = -np.log10(np.maximum(survival, 1e-300))
        return np.where(np.isnan(s), 0.0, out)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}.probs": self.probs_,
            f"{prefix}.quantiles": self.quantiles_,
            f"{prefix}.tail": np.array([self.tail_from, self.tail_scale_]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> TailCalibrator:
        tail_from, scale = (float(v) for v in arrays[f"{prefix}.tail"])
        out = cls(len(arrays[f"{prefix}.probs"]), tail_from)
        out.probs_ = np.asarray(arrays[f"{prefix}.probs"], dtype=np.float64)
        out.quantiles_ = np.asarray(arrays[f"{prefix}.quantiles"], dtype=np.float64)
        out.tail_scale_ = scale
        return out


class ZScoreCalibrator(TailCalibrator):
    """Robust z: ``(s - median) / (1.4826 MAD)`` of normal scores (floored at a small spread)."""

    def fit(self, values: np.ndarray) -> ZScoreCalibrator:
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size == 0:
            raise ParameterError("no finite scores to calibrate on")
        center = float(np.median(x))
        scale = 1.4826 * float(np.median(np.abs(x - center)))
        scale = max(scale, 1e-3 * float(np.std(x)), 1e-12)
        self.probs_ = np.array([0.0])
        self.quantiles_ = np.array([center])
        self.tail_scale_ = scale
        self.tail_from = 0.0
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        z = (np.asarray(scores, dtype=np.float64) - self.quantiles_[0]) / self.tail_scale_
        return np.nan_to_num(z, nan=0.0)


CALIBRATORS = {"tail": TailCalibrator, "zscore": ZScoreCalibrator}


class HybridDetector(BaseDetector):
    """ImDiffusion and causal-mechanism detectors fused into one score with root causes.

    Fitting trains both components on the same data. Each component holds out the last
    ``validation_fraction`` of the training rows (it does not learn from them); their scores on
    those rows calibrate each component to surprise (``calibration``), and the fused score of the
    same rows sets the label-free threshold. ``detect`` returns the fused score, both calibrated
    component scores (``DetectionResult.components``), per-metric attribution that adds up to the
    fused score (each component's surprise shared among metrics in proportion to its own per-metric
    evidence), and events whose ``root_causes`` come from the causal model.

    Parameters
    ----------
    diffusion, causal
        The component detectors as configured estimators (None: their defaults). They are cloned at
        fit time; the fitted ones are ``diffusion_`` and ``causal_``.
    diffusion_weight
        Weight of the diffusion surprise in the fused score (the causal one gets the rest).
    calibration
        ``"tail"``: surprise, ``-log10`` of the normal rows' survival function (empirical body,
        exponential tail); ``"zscore"``: robust z of each component score.
    threshold, risk
        Label threshold on the fused score, see :class:`~tsdiff.base.BaseDetector`.
    random_state
        Seed passed to both components (when not None, it replaces their own).
    verbose
        Log the fitting stages; the diffusion component shows its own progress bar when its
        ``verbose`` is on.

    Use :meth:`quick` for a configuration that fits an SMD machine (24,000 rows x 38 metrics) in
    about two minutes on two CPU cores.
    """

    _subdetectors = ("diffusion_", "causal_")

    def __init__(
        self,
        diffusion: Any = None,
        causal: Any = None,
        diffusion_weight: float = 0.5,
        calibration: str = "tail",
        threshold: str = "pot",
        risk: float = 1e-3,
        random_state: int | None = None,
        verbose: bool = True,
    ) -> None:
        self.diffusion = diffusion
        self.causal = causal
        self.diffusion_weight = diffusion_weight
        self.calibration = calibration
        self.threshold = threshold
        self.risk = risk
        self.random_state = random_state
        self.verbose = verbose

    @classmethod
    def quick(cls, **params: Any) -> HybridDetector:
        """A faster configuration: a shorter diffusion training and single-step scoring.

        About 2 minutes to fit and score an SMD machine on two CPU cores, against about 5 for the
        defaults; on SMD machine-1-2 it scored VUS-PR 0.393 (``tsdiff demo``) against 0.397 for
        the defaults (benchmarks/RESULTS.md).
        """
        from tsdiff.causal import CausalDetector
        from tsdiff.diffusion import ImDiffusionDetector

        diffusion = ImDiffusionDetector(**QUICK_DIFFUSION, verbose=params.get("verbose", True))
        return cls(diffusion=diffusion, causal=CausalDetector(), **params)

    # ----------------------------------------------------------------- components
    def _templates(self) -> dict[str, Any]:
        from sklearn.base import clone

        from tsdiff.causal import CausalDetector
        from tsdiff.diffusion import ImDiffusionDetector

        diffusion = (
            ImDiffusionDetector(verbose=bool(self.verbose))
            if self.diffusion is None
            else clone(self.diffusion)
        )
        causal = CausalDetector() if self.causal is None else clone(self.causal)
        for name, (template, kind) in {
            "diffusion": (diffusion, ImDiffusionDetector),
            "causal": (causal, CausalDetector),
        }.items():
            if not isinstance(template, kind):
                raise ParameterError(f"{name} must be a {kind.__name__}, got {type(template).__name__}")
            if self.random_state is not None:
                template.set_params(random_state=self.random_state)
        return {"diffusion": diffusion, "causal": causal}

    def _check_params(self) -> None:
        super()._check_params()
        if not 0.0 <= float(self.diffusion_weight) <= 1.0:
            raise ParameterError(f"diffusion_weight must be in [0, 1], got {self.diffusion_weight!r}")
        if self.calibration not in CALIBRATIONS:
            raise ParameterError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        self._templates()

    def _min_rows(self) -> int:
        return max(t._min_rows() for t in self._templates().values())

    def _min_fit_rows(self) -> int:
        return max(t._min_fit_rows() for t in self._templates().values())

    def _frame(self, values: np.ndarray) -> Any:
        import pandas as pd

        return pd.DataFrame(values, columns=self.feature_names_in_)

    # ----------------------------------------------------------------- fit
    def _fit(self, values: np.ndarray) -> None:
        templates = self._templates()
        data = self._frame(values)
        fitted = {}
        for name, template in templates.items():
            if self.verbose:
                logger.info("fitting the %s component (%s)", name, type(template).__name__)
            fitted[name] = template.fit(data)
        self.diffusion_, self.causal_ = fitted["diffusion"], fitted["causal"]
        held_out = [np.asarray(fitted[name]._calibration_values_, dtype=np.float64) for name in COMPONENTS]
        n = min(len(h) for h in held_out)  # both hold out the last rows; align on the common tail
        held_out = [h[len(h) - n :] for h in held_out]
        calibrator = CALIBRATORS[self.calibration]
        self.calibrators_ = [calibrator().fit(h) for h in held_out]
        self._calibration_values_ = self._fuse(
            [c.transform(h) for c, h in zip(self.calibrators_, held_out, strict=True)]
        )

    def _weights(self) -> tuple[float, float]:
        w = float(self.diffusion_weight)
        return w, 1.0 - w

    def _fuse(self, parts: list[np.ndarray]) -> np.ndarray:
        return sum(w * p for w, p in zip(self._weights(), parts, strict=True))

    def _calibration_scores(self, values: np.ndarray) -> np.ndarray:
        return self._calibration_values_

    # ----------------------------------------------------------------- score
    def _parts(self, values: np.ndarray, offset: int = 0, memo: dict | None = None) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        for name, component in zip(COMPONENTS, (self.diffusion_, self.causal_), strict=True):
            # the components were fitted on these columns in this order: no second validation
            own = None if memo is None else memo.setdefault(name, {})
            parts[name] = component._score(component.scaler_.transform(values), offset, own)
        calibrated = [c.transform(parts[n][0]) for c, n in zip(self.calibrators_, COMPONENTS, strict=True)]
        fused = self._fuse(calibrated)
        attribution = np.zeros_like(parts["causal"][1], dtype=np.float64)
        for w, surprise, name in zip(self._weights(), calibrated, COMPONENTS, strict=True):
            evidence = np.clip(np.nan_to_num(np.asarray(parts[name][1], dtype=np.float64)), 0.0, None)
            total = evidence.sum(axis=1, keepdims=True)
            share = np.divide(evidence, total, out=np.zeros_like(evidence), where=total > 0)
            attribution += w * surprise[:, None] * share
        return {
            "scores": fused,
            "feature_scores": attribution,
            "components": dict(zip(COMPONENTS, calibrated, strict=True)),
            "violations": parts["causal"][1],
        }

    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        parts = self._parts(values, offset, memo)
        return parts["scores"], parts["feature_scores"]

    def _score_parts(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray]:
        parts = self._parts(values, offset, memo)
        return parts["scores"], parts["feature_scores"], parts["components"], parts["violations"]

    def _stream_geometry(self) -> Any:
        diffusion, causal = self.diffusion_._stream_geometry(), self.causal_._stream_geometry()
        return diffusion.combine(causal)

    def _root_causes(self, feature_scores: np.ndarray, positions: list[slice]) -> list[list]:
        return self.causal_._root_causes(feature_scores, positions)

    @property
    def graph_(self) -> Any:
        """The causal component's learned graph."""
        self._check_fitted()
        return self.causal_.graph_

    # ----------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays: dict[str, np.ndarray] = {}
        for name, calibrator in zip(COMPONENTS, self.calibrators_, strict=True):
            arrays.update(calibrator.to_arrays(f"calibration.{name}"))
        return {"components": list(COMPONENTS)}, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if state.get("components") != list(COMPONENTS):
            raise ModelFormatError(f"a saved HybridDetector must list the components {list(COMPONENTS)}")
        calibrator = CALIBRATORS[self.calibration]
        self.calibrators_ = [calibrator.from_arrays(arrays, f"calibration.{name}") for name in COMPONENTS]
        if not all(math.isfinite(float(c.tail_scale_)) for c in self.calibrators_):
            raise ModelFormatError("the saved calibration of a HybridDetector is not finite")

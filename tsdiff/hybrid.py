"""The hybrid detector: imputation diffusion and causal mechanisms, fused on a common scale.

The two components see anomalies differently. The diffusion model asks "can this stretch be
imputed from its surroundings?" and catches any departure from the learned joint dynamics; the
causal model asks "does each metric still follow its own mechanism?" and names where a fault
started. :class:`HybridDetector` is the :class:`~tsdiff.fusion.FusionDetector` of these two, with
parameters of its own for them.
"""

from __future__ import annotations

from typing import Any

from tsdiff.errors import ParameterError
from tsdiff.fusion import FusionDetector

#: training steps of the default diffusion component: a fit in about two minutes per SMD machine
#: on 2 cores (900 steps: 167 s), no development dataset more than 0.005 lower (RESULTS.md,
#: "Faster hybrid fits"); the diffusion model alone keeps 900, where fewer cost synthetic data 0.014
DIFFUSION_STEPS = 600


class HybridDetector(FusionDetector):
    """ImDiffusion and causal-mechanism detectors fused into one score with root causes.

    Fitting trains both components on the same data. Each component holds out the last
    ``validation_fraction`` of the training rows (it does not learn from them); their scores on
    those rows calibrate each component to surprise (``calibration``), and the fused score of the
    same rows sets the label-free threshold. ``detect`` returns the fused score, both calibrated
    component scores (``DetectionResult.components``), per-metric attribution that adds up to the
    fused score, and events whose ``root_causes`` come from the causal model (see
    :class:`~tsdiff.fusion.FusionDetector`).

    Parameters
    ----------
    diffusion, causal
        The component detectors as configured estimators (None: their defaults, except that the
        diffusion model trains :data:`DIFFUSION_STEPS` steps instead of its 900). They are cloned at
        fit time; the fitted ones are ``diffusion_`` and ``causal_`` (also ``components_``).
    diffusion_weight
        Weight of the diffusion surprise in the fused score (the causal one gets the rest).
    calibration
        ``"tail"``: surprise, ``-log10`` of the normal rows' survival function (empirical body,
        exponential tail); ``"zscore"``: robust z of each component score.
    weighting, weighting_power
        How the two are weighed per series (``"injection-stability"``, the default: by their skill
        on anomalies injected into the held-out rows times how steady their scores are on those
        rows, starting from ``diffusion_weight``; ``"injection"``: by the skill alone;
        ``"fixed"``: by ``diffusion_weight`` alone); see :class:`~tsdiff.fusion.FusionDetector`.
    threshold, risk
        Label threshold on the fused score, see :class:`~tsdiff.base.BaseDetector`.
    random_state
        Seed passed to both components (when not None, it replaces their own).
    verbose
        Log the fitting stages; the default diffusion component shows its own progress bar.

    The registry's ``"quick"`` preset (``tsdiff.registry.build("hybrid", "quick")``, also
    :meth:`quick`) trains the diffusion model for fewer steps and scores it in one pass per step.
    """

    def __init__(
        self,
        diffusion: Any = None,
        causal: Any = None,
        diffusion_weight: float = 0.5,
        calibration: str = "tail",
        weighting: str = "injection-stability",
        weighting_power: float = 2.0,
        threshold: str = "pot",
        risk: float = 1e-3,
        random_state: int | None = None,
        verbose: bool = True,
    ) -> None:
        self.diffusion = diffusion
        self.causal = causal
        self.diffusion_weight = diffusion_weight
        self.calibration = calibration
        self.weighting = weighting
        self.weighting_power = weighting_power
        self.threshold = threshold
        self.risk = risk
        self.random_state = random_state
        self.verbose = verbose

    @classmethod
    def quick(cls, **params: Any) -> HybridDetector:
        """The registry's ``"quick"`` preset: a shorter diffusion training and single-step scoring."""
        from tsdiff.registry import build

        return build("hybrid", "quick", **params)

    @classmethod
    def streaming(cls, **params: Any) -> HybridDetector:
        """The registry's ``"streaming"`` preset: the diffusion model scored by its causal tail mask
        alone beside the causal model, so a live row's final score arrives within a few rows;
        ``params`` override the preset."""
        from tsdiff.registry import build

        return build("hybrid", "streaming", **params)

    def _component_specs(self) -> list[tuple[str, Any, float]]:
        from tsdiff.causal import CausalDetector
        from tsdiff.diffusion import ImDiffusionDetector

        weight = float(self.diffusion_weight)
        if not 0.0 <= weight <= 1.0:
            raise ParameterError(f"diffusion_weight must be in [0, 1], got {self.diffusion_weight!r}")
        diffusion = (
            ImDiffusionDetector(max_steps=DIFFUSION_STEPS, verbose=bool(self.verbose))
            if self.diffusion is None
            else self.diffusion
        )
        causal = CausalDetector() if self.causal is None else self.causal
        for name, given, kind in (
            ("diffusion", diffusion, ImDiffusionDetector),
            ("causal", causal, CausalDetector),
        ):
            if not isinstance(given, kind):
                raise ParameterError(f"{name} must be a {kind.__name__}, got {type(given).__name__}")
        return [("diffusion", diffusion, weight), ("causal", causal, 1.0 - weight)]

    @property
    def diffusion_(self) -> Any:
        """The fitted diffusion component (an AttributeError before ``fit``, as any fitted attribute)."""
        return self.components_["diffusion"]

    @property
    def causal_(self) -> Any:
        """The fitted causal component."""
        return self.components_["causal"]

    @property
    def graph_(self) -> Any:
        """The causal component's learned graph."""
        return self.causal_.graph_

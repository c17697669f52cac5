"""tsdiff: multivariate time-series anomaly detection.

Importing the package is cheap: detectors and the heavy libraries behind them (torch, scikit-learn,
statsmodels) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tsdiff._version import __version__
from tsdiff.errors import TsdiffError

# public name -> module that defines it; resolved on first attribute access
_LAZY = {
    "DetectionResult": "tsdiff.base",
    "BaseDetector": "tsdiff.base",
    "PCADetector": "tsdiff.baselines",
    "IsolationForestDetector": "tsdiff.baselines",
    "KMeansDetector": "tsdiff.baselines",
    "RandomDetector": "tsdiff.baselines",
    "TsaiForecastDetector": "tsdiff.baselines",
    "TsaiReconstructionDetector": "tsdiff.baselines",
    "ImDiffusionDetector": "tsdiff.diffusion",
    "CausalDetector": "tsdiff.causal",
    "HybridDetector": "tsdiff.hybrid",
    "StreamScorer": "tsdiff.stream",
    "load": "tsdiff.persist",
    "evaluate": "tsdiff.metrics",
}
_SUBMODULES = {
    "baselines",
    "diffusion",
    "datasets",
    "metrics",
    "thresholds",
    "frame",
    "errors",
    "persist",
    "base",
    "plot",
    "causal",
    "hybrid",
    "stream",
    "fleet",
}

__all__ = [
    "BaseDetector",
    "CausalDetector",
    "DetectionResult",
    "HybridDetector",
    "ImDiffusionDetector",
    "IsolationForestDetector",
    "KMeansDetector",
    "PCADetector",
    "RandomDetector",
    "StreamScorer",
    "TsaiForecastDetector",
    "TsaiReconstructionDetector",
    "TsdiffError",
    "__version__",
    "evaluate",
    "load",
]

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.base import BaseDetector, DetectionResult
    from tsdiff.baselines import (
        IsolationForestDetector,
        KMeansDetector,
        PCADetector,
        RandomDetector,
        TsaiForecastDetector,
        TsaiReconstructionDetector,
    )
    from tsdiff.causal import CausalDetector
    from tsdiff.diffusion import ImDiffusionDetector
    from tsdiff.hybrid import HybridDetector
    from tsdiff.metrics import evaluate
    from tsdiff.persist import load
    from tsdiff.stream import StreamScorer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"tsdiff.{name}")
    raise AttributeError(f"module 'tsdiff' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)

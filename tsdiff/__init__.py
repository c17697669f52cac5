"""tsdiff: multivariate time-series anomaly detection.

Importing the package is cheap: detectors and the heavy libraries behind them (torch, scikit-learn,
statsmodels) load on first use. Every registered detector class (:mod:`tsdiff.registry`) is a
name of the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tsdiff._version import __version__
from tsdiff.errors import TsdiffError
from tsdiff.registry import detector_classes

# public name -> module that defines it; resolved on first attribute access
_LAZY = {
    **detector_classes(),
    "DetectionResult": "tsdiff.base",
    "BaseDetector": "tsdiff.base",
    "StreamScorer": "tsdiff.stream",
    "build": "tsdiff.registry",
    "load": "tsdiff.persist",
    "evaluate": "tsdiff.metrics",
}
_SUBMODULES = {
    "baselines",
    "base",
    "calibration",
    "causal",
    "datasets",
    "diffusion",
    "errors",
    "fleet",
    "frame",
    "fusion",
    "hybrid",
    "metrics",
    "persist",
    "plot",
    "registry",
    "stream",
    "tableio",
    "thresholds",
    "tsai",
}

__all__ = sorted({*_LAZY, "TsdiffError", "__version__"})

if TYPE_CHECKING:  # pragma: no cover  (for static analysis; at run time __getattr__ resolves them)
    from tsdiff.base import BaseDetector, DetectionResult
    from tsdiff.baselines import (
        IsolationForestDetector,
        KMeansDetector,
        PCADetector,
        RandomDetector,
        WindowPCADetector,
    )
    from tsdiff.causal import CausalDetector
    from tsdiff.diffusion import ImDiffusionDetector
    from tsdiff.fusion import FusionDetector
    from tsdiff.hybrid import HybridDetector
    from tsdiff.metrics import evaluate
    from tsdiff.persist import load
    from tsdiff.registry import build
    from tsdiff.stream import StreamScorer
    from tsdiff.tsai import (
        TsaiForecastDetector,
        TsaiReconstructionDetector,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"tsdiff.{name}")
    raise AttributeError(f"module 'tsdiff' has no attribute {name!r}")


def __dir__() -> list[str]:
    # the public names and the subpackages; not this module's own imports (Any, importlib, ...)
    return sorted(set(__all__) | _SUBMODULES | {n for n in globals() if n.startswith("__")})

"""Save and load fitted detectors: a directory with ``config.json`` and ``arrays.safetensors``.

Nothing is ever unpickled: the config is JSON (parameters, feature names, scaler, threshold, learned
scalars, package versions) and every array is a safetensors tensor. Only detector classes listed in
:data:`DETECTORS` can be loaded, so a model directory cannot make tsdiff import arbitrary code.
"""

from __future__ import annotations

import importlib
import json
import logging
import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tsdiff._version import __version__
from tsdiff.errors import MissingDependencyError, ModelFormatError, ParameterError

logger = logging.getLogger(__name__)

FORMAT = "tsdiff-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
ARRAYS_FILE = "arrays.safetensors"

#: class name -> module; the only classes :func:`load` will build
DETECTORS: dict[str, str] = {
    "PCADetector": "tsdiff.baselines.pca",
    "IsolationForestDetector": "tsdiff.baselines.iforest",
    "KMeansDetector": "tsdiff.baselines.kmeans",
    "RandomDetector": "tsdiff.baselines.random_score",
    "ImDiffusionDetector": "tsdiff.diffusion.detector",
    "CausalDetector": "tsdiff.causal.detector",
    "HybridDetector": "tsdiff.hybrid",
    "TsaiForecastDetector": "tsdiff.baselines.tsai_forecast",
    "TsaiReconstructionDetector": "tsdiff.baselines.tsai_recon",
}
#: key marking a parameter that is itself a (configured, unfitted) detector
NESTED = "__detector__"


def _versions() -> dict[str, str]:
    import pandas
    import sklearn

    out = {"tsdiff": __version__, "python": platform.python_version(), "numpy": np.__version__}
    out["pandas"] = pandas.__version__
    out["scikit-learn"] = sklearn.__version__
    return out


def _json_ready(value: Any, what: str) -> Any:
    """Check ``value`` survives a JSON round trip (tuples become lists); raise a clear error if not."""
    try:
        return json.loads(json.dumps(value, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"cannot save {what}: {exc}") from None


def save(detector: Any, path: str | Path) -> Path:
    """Write a fitted detector to the directory ``path`` (created if needed) and return it."""
    from safetensors.numpy import save_file

    detector._check_fitted()
    name = type(detector).__name__
    if DETECTORS.get(name) != type(detector).__module__:
        raise ParameterError(f"{name} is not a registered tsdiff detector and cannot be saved")
    params = _encode_params(detector.get_params(deep=False))
    state, arrays = detector._get_state()
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": name,
        "params": _json_ready(params, "the parameters"),
        "feature_names": _json_ready(list(detector.feature_names_in_), "the column names"),
        "columns_named": bool(detector.columns_named_),
        "scaler": detector.scaler_.to_dict(),
        "threshold": {
            "value": detector.threshold_,
            "method": detector.threshold_method_,
            "model": None if detector.threshold_model_ is None else detector.threshold_model_.to_dict(),
        },
        "state": _json_ready(state, "the learned state"),
        "versions": _versions(),
    }
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    save_file(tensors, str(path / ARRAYS_FILE))
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, allow_nan=True))
    for attr in getattr(detector, "_subdetectors", ()):  # fitted components, each in its own folder
        save(getattr(detector, attr), path / attr.rstrip("_"))
    logger.info("saved %s to %s", name, path)
    return path


def load(path: str | Path) -> Any:
    """Load a detector saved with ``detector.save(path)``; it scores exactly as it did when saved."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    config_path = path / CONFIG_FILE
    if not path.is_dir():
        raise ModelFormatError(f"{path} is not a directory holding a saved tsdiff model")
    if not config_path.is_file():
        raise ModelFormatError(f"{path} has no {CONFIG_FILE}; it is not a saved tsdiff model")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFormatError(f"{config_path} is not a tsdiff model config (no 'format': '{FORMAT}')")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path} was saved in model format {version!r}; this tsdiff ({__version__}) reads up to "
            f"{FORMAT_VERSION}: upgrade tsdiff"
        )
    saved_by = config.get("versions", {}).get("tsdiff")
    if saved_by != __version__:
        warnings.warn(
            f"{path} was saved by tsdiff {saved_by}; this is tsdiff {__version__}", UserWarning, stacklevel=2
        )
    name = config.get("class")
    if name not in DETECTORS:
        raise ModelFormatError(f"{path} holds an unknown detector class {name!r}")
    cls = getattr(importlib.import_module(DETECTORS[name]), name)
    try:
        arrays = load_file(str(path / ARRAYS_FILE)) if (path / ARRAYS_FILE).exists() else {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFormatError(f"{path / ARRAYS_FILE} cannot be read: {exc}") from None
    try:
        detector = _construct(cls, config["params"])
        for attr in getattr(cls, "_subdetectors", ()):
            setattr(detector, attr, load(path / attr.rstrip("_")))
        _restore(detector, config, arrays)
    except (ModelFormatError, MissingDependencyError):
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise ModelFormatError(f"{path} is incomplete or corrupt: {type(exc).__name__}: {exc}") from None
    return detector


def _encode_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters with nested detectors written as ``{NESTED: class name, "params": ...}``."""
    from tsdiff.base import BaseDetector

    out = {}
    for key, value in params.items():
        if isinstance(value, BaseDetector):
            name = type(value).__name__
            if DETECTORS.get(name) != type(value).__module__:
                raise ParameterError(f"parameter {key}: {name} is not a registered tsdiff detector")
            value = {NESTED: name, "params": _encode_params(value.get_params(deep=False))}
        out[key] = value
    return out


def _decode_params(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise ModelFormatError("the saved parameters are not a JSON object")
    out = {}
    for key, value in params.items():
        if isinstance(value, dict) and NESTED in value:
            name = value[NESTED]
            if name not in DETECTORS:
                raise ModelFormatError(f"parameter {key} names an unknown detector class {name!r}")
            cls = getattr(importlib.import_module(DETECTORS[name]), name)
            value = _construct(cls, value.get("params", {}))
        out[key] = value
    return out


def _construct(cls: type, params: Any) -> Any:
    """A detector from saved parameters. A parameter added after the model was saved takes the
    value that reproduces the old behaviour (the class's ``_absent_params``), not the new default.
    """
    return cls(**{**getattr(cls, "_absent_params", {}), **_decode_params(params)})


def _restore(detector: Any, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    from tsdiff.frame import RobustScaler
    from tsdiff.thresholds import BaseThreshold

    detector.feature_names_in_ = list(config["feature_names"])
    detector.n_features_in_ = len(detector.feature_names_in_)
    detector.columns_named_ = bool(config["columns_named"])
    detector.scaler_ = RobustScaler.from_dict(config["scaler"])
    if len(detector.scaler_.center_) != detector.n_features_in_:
        raise ModelFormatError("the saved scaler does not match the saved column names")
    saved = config["threshold"]
    model = saved["model"]
    detector.threshold_model_ = None if model is None else BaseThreshold.from_dict(model)
    detector.threshold_ = float(saved["value"])
    detector.threshold_method_ = str(saved["method"])
    detector._set_state(config["state"], arrays)

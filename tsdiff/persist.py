"""Save and load fitted detectors: a directory with ``config.json`` and ``arrays.safetensors``.

Nothing is ever unpickled: the config is JSON (parameters, feature names, scaler, threshold, learned
scalars, package versions) and every array is a safetensors tensor. Only the detector classes of
:func:`tsdiff.registry.detector_classes` can be loaded, so a model directory cannot make tsdiff
import arbitrary code. A detector built from others (a :class:`~tsdiff.fusion.FusionDetector`)
saves each fitted component in a folder of its own, named after the component.
"""

from __future__ import annotations

import importlib
import logging
import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tsdiff._version import __version__
from tsdiff.errors import MissingDependencyError, ModelFormatError, ParameterError
from tsdiff.registry import detector_classes
from tsdiff.serialize import envelope, json_ready, read_document, to_json

logger = logging.getLogger(__name__)

FORMAT = "tsdiff-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
ARRAYS_FILE = "arrays.safetensors"
#: key marking a parameter that is itself a (configured, unfitted) detector
NESTED = "__detector__"


def _versions() -> dict[str, str]:
    import pandas
    import sklearn

    out = {"tsdiff": __version__, "python": platform.python_version(), "numpy": np.__version__}
    out["pandas"] = pandas.__version__
    out["scikit-learn"] = sklearn.__version__
    return out


def _registered_class(detector: Any, what: str) -> str:
    name = type(detector).__name__
    if detector_classes().get(name) != type(detector).__module__:
        raise ParameterError(f"{what}: {name} is not a registered tsdiff detector")
    return name


def save(detector: Any, path: str | Path) -> Path:
    """Write a fitted detector to the directory ``path`` (created if needed) and return it."""
    from safetensors.numpy import save_file

    detector.check_fitted()
    name = _registered_class(detector, "cannot save")
    state, arrays = detector.export_state()
    components = detector.fitted_components()
    body = {
        "class": name,
        "params": encode_params(detector.get_params(deep=False)),
        **state,
        "components": list(components),
        "versions": _versions(),
    }
    text = to_json(envelope(FORMAT, FORMAT_VERSION, body), f"the {name}", indent=2)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path / ARRAYS_FILE))
    (path / CONFIG_FILE).write_text(text)
    for component_name, component in components.items():
        save(component, path / component_name)
    logger.info("saved %s to %s", name, path)
    return path


def load(path: str | Path) -> Any:
    """Load a detector saved with ``detector.save(path)``; it scores exactly as it did when saved."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from tsdiff.fusion import COMPONENT_NAME, FusionDetector

    path = Path(path)
    config_path = path / CONFIG_FILE
    if not path.is_dir():
        raise ModelFormatError(f"{path} is not a directory holding a saved tsdiff model")
    if not config_path.is_file():
        raise ModelFormatError(f"{path} has no {CONFIG_FILE}; it is not a saved tsdiff model")
    config = read_document(config_path, FORMAT, FORMAT_VERSION, ModelFormatError, "tsdiff model config")
    saved_by = config.get("versions", {}).get("tsdiff")
    if saved_by != __version__:
        warnings.warn(
            f"{path} was saved by tsdiff {saved_by}; this is tsdiff {__version__}", UserWarning, stacklevel=2
        )
    cls = _detector_class(config.get("class"), f"{path} holds")
    try:
        arrays = load_file(str(path / ARRAYS_FILE)) if (path / ARRAYS_FILE).exists() else {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFormatError(f"{path / ARRAYS_FILE} cannot be read: {exc}") from None
    try:
        detector = _construct(cls, config["params"])
        # the component folders (models saved before "components" was kept list them in "state")
        names = config.get("components", config["state"].get("components", []))
        if names:
            if not isinstance(detector, FusionDetector):
                raise ModelFormatError(f"{path}: a {cls.__name__} has no components")
            bad = [n for n in names if not isinstance(n, str) or not COMPONENT_NAME.fullmatch(n)]
            if bad:  # a name is a folder inside this one: nothing else may be read
                raise ModelFormatError(f"{path}: {bad[0]!r} is not a component name")
            detector.components_ = {name: load(path / name) for name in names}
        detector.import_state(config, arrays)
    except (ModelFormatError, MissingDependencyError):
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as exc:
        raise ModelFormatError(f"{path} is incomplete or corrupt: {type(exc).__name__}: {exc}") from None
    return detector


def _detector_class(name: Any, where: str) -> type:
    module = detector_classes().get(name) if isinstance(name, str) else None
    if module is None:
        raise ModelFormatError(f"{where} an unknown detector class {name!r}")
    return getattr(importlib.import_module(module), name)


def encode_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON-ready values, a nested detector (also inside a list, such as a fusion's
    components) written as ``{NESTED: class name, "params": ...}``."""
    from tsdiff.base import BaseDetector

    def encode(key: str, value: Any) -> Any:
        if isinstance(value, BaseDetector):
            name = _registered_class(value, f"parameter {key}")
            return {NESTED: name, "params": encode_params(value.get_params(deep=False))}
        if isinstance(value, (list, tuple)):
            return [encode(key, v) for v in value]
        return json_ready(value)

    return {key: encode(key, value) for key, value in params.items()}


def decode_params(params: Any) -> dict[str, Any]:
    """What :func:`encode_params` wrote, with nested detectors built (unfitted)."""
    if not isinstance(params, dict):
        raise ModelFormatError("the saved parameters are not a JSON object")

    def decode(key: str, value: Any) -> Any:
        if isinstance(value, dict) and NESTED in value:
            cls = _detector_class(value[NESTED], f"parameter {key} names")
            return _construct(cls, value.get("params", {}))
        if isinstance(value, list):
            return [decode(key, v) for v in value]
        return value

    return {key: decode(key, value) for key, value in params.items()}


def _construct(cls: type, params: Any) -> Any:
    """A detector from saved parameters. A parameter added after the model was saved takes the
    value that reproduces the old behaviour (the class's ``LEGACY_PARAMS``), not the new default.
    """
    return cls(**{**cls.LEGACY_PARAMS, **decode_params(params)})

"""Save and load fitted detectors: a directory with ``config.json`` and ``arrays.safetensors``.

Nothing is ever unpickled: the config is JSON (parameters, feature names, scaler, threshold, learned
scalars, package versions) and every array is a safetensors tensor. Only the detector classes of
:func:`tsdiff.registry.detector_classes` can be loaded, so a model directory cannot make tsdiff
import arbitrary code. A detector built from others (a :class:`~tsdiff.fusion.FusionDetector`)
saves each fitted component in a folder of its own, named after the component.

Saving is atomic: the whole folder (components included) is written under a temporary name beside
``path`` and then renamed into place, so a reader sees the old model or the new one, never a mix.
Every save draws a save id, stored in ``config.json`` and in the safetensors metadata; a load
refuses arrays whose id differs from the config's (files of two saves put together), after a few
retries that let a concurrent save finish. Neither saving nor loading follows a symbolic link, and
only regular files are read (a FIFO cannot block a load).
"""

from __future__ import annotations

import glob
import importlib
import logging
import os
import platform
import shutil
import time
import uuid
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
#: config key and safetensors metadata key of the id shared by one save's files
SAVE_ID = "save_id"
#: a load that finds the model being replaced tries again this many times, this far apart
LOAD_RETRIES, LOAD_RETRY_SECONDS = 5, 0.05


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
    """Write a fitted detector to the directory ``path`` and return it, atomically.

    ``path`` must not exist, or be an earlier saved tsdiff model (which is replaced); any other
    existing file or folder is refused with :class:`~tsdiff.errors.ParameterError`, so saving
    never deletes what is not a model.
    """
    detector.check_fitted()
    path = check_save_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    staging = path.parent / f".{path.name}.saving-{token}"
    try:
        _write(detector, staging)
        try:  # what load would refuse is never saved (nor does it replace a good model)
            _load(staging)
        except ModelFormatError as exc:
            raise ModelFormatError(f"not saved to {path}: the model would not load ({exc})") from None
        _replace(staging, path, token)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("saved %s to %s", type(detector).__name__, path)
    return path


def check_save_target(path: str | Path) -> Path:
    """``path`` as a place :func:`save` may write: absent, an empty folder, or a saved model (which
    is replaced); :class:`~tsdiff.errors.ParameterError` otherwise (checked before a long fit)."""
    path = Path(path)
    if path.is_symlink():
        raise ParameterError(f"{path} is a symbolic link; save to a real folder")
    if path.exists() and not (path.is_dir() and (_is_model_dir(path) or not any(path.iterdir()))):
        raise ParameterError(f"{path} exists and is not a saved tsdiff model; refusing to replace it")
    return path


def _is_model_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and not (path / CONFIG_FILE).is_symlink()


def _write(detector: Any, path: Path) -> None:
    """Write ``detector`` (and its components, in folders of their own) into the new folder ``path``."""
    from safetensors.numpy import save_file

    name = _registered_class(detector, "cannot save")
    state, arrays = detector.export_state()
    components = detector.fitted_components()
    save_id = uuid.uuid4().hex
    body = {
        "class": name,
        "params": encode_params(detector.get_params(deep=False)),
        **state,
        "components": list(components),
        "versions": _versions(),
        SAVE_ID: save_id,
    }
    text = to_json(envelope(FORMAT, FORMAT_VERSION, body), f"the {name}", indent=2)
    path.mkdir()
    save_file(
        {k: np.ascontiguousarray(v) for k, v in arrays.items()},
        str(path / ARRAYS_FILE),
        metadata={SAVE_ID: save_id},
    )
    (path / CONFIG_FILE).write_text(text)
    for component_name, component in components.items():
        _write(component, path / component_name)


def _replace(staging: Path, path: Path, token: str) -> None:
    """Put the finished folder ``staging`` at ``path``: a rename, after moving an old model aside."""
    retired = path.parent / f".{path.name}.replaced-{token}"
    moved = False
    if path.exists():
        os.replace(path, retired)  # a concurrent load in this instant sees no model: a typed error
        moved = True
    try:
        os.replace(staging, path)
    except OSError:
        if moved and not path.exists():
            os.replace(retired, path)  # put the old model back
        raise
    if moved:
        shutil.rmtree(retired, ignore_errors=True)


def load(path: str | Path) -> Any:
    """Load a detector saved with ``detector.save(path)``; it scores exactly as it did when saved.

    A model being replaced by a concurrent save is read again (a few times) until its files
    belong to one save; otherwise :class:`~tsdiff.errors.ModelFormatError`.
    """
    for attempt in range(LOAD_RETRIES):
        try:
            return _load(Path(path))
        except _TornRead as exc:
            if attempt == LOAD_RETRIES - 1:
                raise ModelFormatError(str(exc)) from None
            time.sleep(LOAD_RETRY_SECONDS)
    raise AssertionError("unreachable")  # pragma: no cover


class _TornRead(ModelFormatError):
    """The files read belong to different saves (or vanished mid-read): worth reading again."""


def _regular_file(path: Path, what: str) -> Path:
    if path.is_symlink():
        raise ModelFormatError(f"{path} is a symbolic link; a saved model holds only regular files")
    if path.exists() and not path.is_file():
        raise ModelFormatError(f"{path} is not a regular file ({what})")
    return path


def _load(path: Path) -> Any:
    from safetensors import SafetensorError, safe_open

    from tsdiff.fusion import COMPONENT_NAME, FusionDetector

    if path.is_symlink():
        raise ModelFormatError(f"{path} is a symbolic link; load the model folder itself")
    config_path = _regular_file(path / CONFIG_FILE, "the model config")
    if not path.is_dir() or not config_path.is_file():
        if any(path.parent.glob(f".{glob.escape(path.name)}.replaced-*")):
            raise _TornRead(f"{path} is being replaced; no model there for an instant")
        if not path.is_dir():
            raise ModelFormatError(f"{path} is not a directory holding a saved tsdiff model")
        raise ModelFormatError(f"{path} has no {CONFIG_FILE}; it is not a saved tsdiff model")
    try:
        config = read_document(config_path, FORMAT, FORMAT_VERSION, ModelFormatError, "tsdiff model config")
    except FileNotFoundError:
        raise _TornRead(f"{path} was replaced while it was read") from None
    saved_by = config.get("versions", {}).get("tsdiff")
    if saved_by != __version__:
        warnings.warn(
            f"{path} was saved by tsdiff {saved_by}; this is tsdiff {__version__}", UserWarning, stacklevel=3
        )
    cls = _detector_class(config.get("class"), f"{path} holds")
    arrays_path = _regular_file(path / ARRAYS_FILE, "the model arrays")
    arrays: dict[str, np.ndarray] = {}
    saved_id = None
    try:
        if arrays_path.exists():
            with safe_open(str(arrays_path), framework="numpy") as handle:
                saved_id = (handle.metadata() or {}).get(SAVE_ID)
                arrays = {key: handle.get_tensor(key) for key in handle.keys()}
    except FileNotFoundError:
        raise _TornRead(f"{path} was replaced while it was read") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFormatError(f"{arrays_path} cannot be read: {exc}") from None
    if config.get(SAVE_ID) != saved_id:
        raise _TornRead(
            f"{path}: {ARRAYS_FILE} and {CONFIG_FILE} come from different saves (save ids "
            f"{saved_id!r} and {config.get(SAVE_ID)!r})"
        )
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
            detector.components_ = {name: _load(path / name) for name in names}
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


def detector_from_spec(spec: dict[str, Any]) -> Any:
    """An unfitted detector from ``{"class": name, "params": encode_params(...)}`` (what a fleet
    index keeps of the detector it was fitted with); parameters it does not name take today's
    defaults."""
    if not isinstance(spec, dict):
        raise ModelFormatError("a detector description must be a JSON object with class and params")
    cls = _detector_class(spec.get("class"), "the description names")
    return cls(**decode_params(spec.get("params", {})))


def _construct(cls: type, params: Any) -> Any:
    """A detector from saved parameters. A parameter added after the model was saved takes the
    value that reproduces the old behaviour (the class's ``LEGACY_PARAMS``), not the new default.
    """
    return cls(**{**cls.LEGACY_PARAMS, **decode_params(params)})

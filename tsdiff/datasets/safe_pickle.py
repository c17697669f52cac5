"""Reading pickled numpy arrays without running pickled code.

Plain :func:`pickle.load` calls whatever callable a file names, so a crafted file can run anything.
:func:`load_array_pickle` resolves only the few numpy callables that rebuild a numeric array (and the
``_codecs.encode`` step that protocol-2 pickles use for raw bytes); any other name is refused.
"""

from __future__ import annotations

import codecs
import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from tsdiff.errors import DatasetError


def _numpy_core(submodule: str, name: str) -> Any:
    # numpy 2 moved numpy.core to numpy._core; pickles written by numpy 1 still name the old path.
    for module in (f"numpy._core.{submodule}", f"numpy.core.{submodule}"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise DatasetError(f"this numpy has no {submodule}.{name}")


def _numeric_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise DatasetError("refusing a pickled array of Python objects (only numeric arrays are read)")
    return dtype


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise DatasetError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _allowed() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _numeric_dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = _numpy_core("multiarray", "_reconstruct")
        allowed[(f"{core}.multiarray", "scalar")] = _numpy_core("multiarray", "scalar")
        allowed[(f"{core}.numeric", "_frombuffer")] = _numpy_core("numeric", "_frombuffer")
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path
        self._allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DatasetError(
                f"{self._path}: refusing to unpickle {module}.{name} (only numpy arrays are allowed)"
            ) from None


def load_array_pickle(path: Path) -> np.ndarray:
    """Unpickle a numeric numpy array from ``path``, refusing anything else.

    Raises
    ------
    DatasetError
        When the file is missing, is not a pickle, names a callable other than the numpy array
        constructors, or holds something other than a numeric array.
    """
    try:
        with open(path, "rb") as handle:
            value = _ArrayUnpickler(handle, path).load()
    except DatasetError as exc:
        if str(path) in str(exc):
            raise
        raise DatasetError(f"{path}: {exc}") from exc
    except FileNotFoundError as exc:
        raise DatasetError(f"file not found: {path}") from exc
    except Exception as exc:  # a malformed pickle can fail in many ways; all mean "not our format"
        raise DatasetError(f"cannot unpickle {path} as a numpy array: {type(exc).__name__}: {exc}") from exc
    if not isinstance(value, np.ndarray):
        raise DatasetError(f"{path} holds a {type(value).__name__}, expected a numpy array")
    if value.dtype.kind not in "biuf":
        raise DatasetError(f"{path} holds a {value.dtype} array, expected numbers")
    return value

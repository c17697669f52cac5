"""How tsdiff writes what it keeps: JSON values, a format envelope, and named array bundles.

* :func:`json_ready` turns numpy scalars, tuples and NaN into what ``json`` writes as standard
  JSON; every JSON file and JSON line tsdiff writes goes through it.
* :func:`envelope` / :func:`open_envelope`: each kind of document (a saved model, a fleet index, a
  stream snapshot) starts with ``{"format": KIND, "format_version": N}``; a reader refuses another
  kind, and a version newer than it knows, with a typed error naming the file.
* Arrays are saved as flat bundles of named arrays, a part's names under a dotted prefix
  (``model.layer.weight``, ``calibration.causal.quantiles``): :func:`prefixed` and
  :func:`unprefixed`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from tsdiff.errors import ParameterError, TsdiffError


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars as Python ones, tuples as lists, dict keys as strings and NaN as
    None (recursively); anything else is left as it is."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def to_json(value: Any, what: str, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_ready` ``(value)``; :class:`ParameterError` naming ``what`` when a
    part of it is not JSON (an object, say)."""
    try:
        return json.dumps(json_ready(value), **kwargs)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"cannot save {what}: {exc}") from None


def envelope(kind: str, version: int, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` behind the ``format`` and ``format_version`` keys of its kind."""
    return {"format": kind, "format_version": version, **body}


def open_envelope(
    document: Any, kind: str, version: int, error: type[TsdiffError], what: str, where: str = ""
) -> dict[str, Any]:
    """``document`` checked to be of ``kind`` in a version up to ``version``, else ``error``: "WHERE:
    not a WHAT". A document without a version is version 1."""
    at = f"{where}: " if where else ""
    if not isinstance(document, dict) or document.get("format") != kind:
        raise error(f"{at}not a {what} (no 'format': '{kind}')")
    found = document.get("format_version", 1)
    if isinstance(found, bool) or not isinstance(found, int) or found > version:
        raise error(
            f"{at}{what} in format version {found!r}; this tsdiff reads up to {version}: upgrade tsdiff"
        )
    return document


def read_document(path: Path, kind: str, version: int, error: type[TsdiffError], what: str) -> dict[str, Any]:
    """The JSON file ``path`` checked by :func:`open_envelope`; ``error`` naming the file when it
    cannot be read or is not JSON."""
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path} is not valid JSON: {exc}") from None
    return open_envelope(document, kind, version, error, what, str(path))


def prefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` named ``prefix.<name>``."""
    return {f"{prefix}.{name}": value for name, value in arrays.items()}


def unprefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays named ``prefix.<name>``, by ``<name>``."""
    start = f"{prefix}."
    return {name[len(start) :]: value for name, value in arrays.items() if name.startswith(start)}

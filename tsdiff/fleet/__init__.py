"""One detector per entity (host, service) across a fleet, fitted and scored on a Dask cluster.

Needs the ``fleet`` extra (``pip install 'tsdiff[fleet]'``); neither ``import tsdiff`` nor
``import tsdiff.fleet`` imports Dask (a run does).

>>> from tsdiff.fleet import fit_fleet, score_fleet                           # doctest: +SKIP
>>> fit_fleet(train, tsdiff.KMeansDetector(), "models/", entity_col="host")   # doctest: +SKIP
>>> result = score_fleet(today, "models/")                                    # doctest: +SKIP
>>> result.scores, result.failed                                              # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "FleetResult": "tsdiff.fleet.runner",
    "fit_fleet": "tsdiff.fleet.runner",
    "score_fleet": "tsdiff.fleet.runner",
    "entity_dirname": "tsdiff.fleet.storage",
    "entity_path": "tsdiff.fleet.storage",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tsdiff.fleet' has no attribute {name!r}")

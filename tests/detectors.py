"""Every registered detector, in its tiny preset, for the contract suite and other fast tests.

The list is :data:`tsdiff.registry.DETECTORS`: a detector joins the contract suite by joining the
registry. Detectors whose extra is not installed skip the tests that build them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tsdiff.registry import DETECTORS as REGISTRY
from tsdiff.registry import build


def tiny(name: str) -> Callable[..., object]:
    """A factory of detector ``name`` in its tiny preset (keyword arguments on top) that skips the
    calling test when the detector's extra is not installed."""
    entry = REGISTRY[name]

    def make(**kw: object) -> object:
        if not entry.available():
            pytest.skip(f"{name} needs the {entry.extra} extra (pip install 'tsdiff[{entry.extra}]')")
        return build(name, "tiny", **kw)

    return make


DETECTORS: dict[str, Callable[..., object]] = {name: tiny(name) for name in REGISTRY}
#: detectors whose scores carry information (the random score is excluded from accuracy checks)
INFORMATIVE = [name for name in DETECTORS if name != "random"]

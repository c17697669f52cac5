"""Import tsai where torchvision cannot load.

fastai, under tsai, imports torchvision when it loads, for image models and transforms that tsai's
time-series models never call. A torchvision wheel built for another torch (the usual case beside a
CPU-only torch) fails in that import, and takes tsai down with it. :func:`load_tsai` therefore tries
the real torchvision first and, only when that import fails, registers a minimal stand-in in
``sys.modules``: the few names fastai reads while loading, each of which raises if it is ever called.
A working torchvision is always used as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import types
import warnings
from typing import Any

from tsdiff.errors import MissingDependencyError

logger = logging.getLogger(__name__)

#: marks the stand-in module (``torchvision.__tsdiff_stand_in__``)
STAND_IN_FLAG = "__tsdiff_stand_in__"
INSTALL_HINT = "install the tsai extra: pip install 'tsdiff[tsai]'"
#: tsai architecture -> module that defines it (the only ones a detector, or a saved model, may name)
ARCHS = {
    "TSTPlus": "tsai.models.TSTPlus",
    "InceptionTimePlus": "tsai.models.InceptionTimePlus",
    "ResNetPlus": "tsai.models.ResNetPlus",
}


def _unavailable(name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"torchvision.{name} is not available: torchvision could not be loaded beside this torch, "
            "and tsdiff only needs the time-series models of tsai"
        )

    call.__name__ = name.rsplit(".", 1)[-1]
    return call


def torchvision_stand_in() -> dict[str, types.ModuleType]:
    """The stand-in modules by name: ``torchvision`` with ``models`` (empty) and ``transforms.functional``.

    These are exactly the names fastai touches at import time: ``torchvision.__version__``,
    ``from torchvision.models import *`` and ``torchvision.transforms.functional.pad``.
    """
    root = types.ModuleType("torchvision", "stand-in for a torchvision that cannot load (see tsdiff)")
    root.__version__ = "0.0"
    setattr(root, STAND_IN_FLAG, True)
    models = types.ModuleType("torchvision.models")
    models.__all__ = []
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.pad = _unavailable("transforms.functional.pad")
    root.models, root.transforms, transforms.functional = models, transforms, functional
    return {m.__name__: m for m in (root, models, transforms, functional)}


def ensure_torchvision() -> bool:
    """Make ``import torchvision`` succeed; True when the stand-in had to be registered.

    The real module is imported first; the stand-in replaces it only when that raises (not
    installed, or built for another torch). Submodules left behind by the failed import are removed
    so they cannot mix with the stand-in.
    """
    current = sys.modules.get("torchvision")
    if current is not None:
        return bool(getattr(current, STAND_IN_FLAG, False))
    try:
        importlib.import_module("torchvision")
        return False
    except Exception as exc:  # ImportError, or RuntimeError/OSError from a mismatched build
        logger.info("torchvision cannot be imported (%s: %s); using a stand-in", type(exc).__name__, exc)
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
    sys.modules.update(torchvision_stand_in())
    return True


def tsai_installed() -> bool:
    """Whether tsai and fastai are installed (without importing them)."""
    from tsdiff.registry import DETECTORS

    return DETECTORS["tsai-forecast"].available()


def load_tsai() -> None:
    """Import tsai's models and fastai's training loop, or raise :class:`MissingDependencyError`."""
    if not tsai_installed():
        raise MissingDependencyError(f"the tsai detectors need tsai and fastai: {INSTALL_HINT}")
    ensure_torchvision()
    try:
        with warnings.catch_warnings():  # deprecation notes from inside fastai/tsai are not the user's
            warnings.simplefilter("ignore")
            importlib.import_module("fastai.learner")
            importlib.import_module("tsai.models.layers")
    except ImportError as exc:
        raise MissingDependencyError(f"tsai cannot be imported ({exc}): {INSTALL_HINT}") from None

"""The data shipped with tsdiff: SMD ``machine-1-2`` (see ``datasets/SMD/SOURCE.md``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tsdiff.datasets.base import Dataset
from tsdiff.datasets.paths import project_root
from tsdiff.datasets.smd import load_smd
from tsdiff.errors import DatasetError

BUNDLED_MACHINE = "machine-1-2"


def bundled_smd_root() -> Path:
    """Folder of the bundled SMD copy.

    Looked for first as package data (``tsdiff._bundled/SMD``, the top-level ``datasets/`` folder as
    installed), then in ``<project root>/datasets/SMD`` (a source checkout).
    """
    packaged = _packaged_root()
    candidates = [packaged] if packaged is not None else []
    candidates.append(project_root() / "datasets" / "SMD")
    for folder in candidates:
        if (folder / "test_label" / f"{BUNDLED_MACHINE}.txt").is_file():
            return folder
    looked = ", ".join(str(p) for p in candidates) if candidates else "nowhere"
    raise DatasetError(f"bundled SMD data not found; looked in: {looked}")


def _packaged_root() -> Path | None:
    try:
        folder = resources.files("tsdiff._bundled") / "SMD"
    except (ImportError, TypeError, ValueError, AttributeError, NotImplementedError):
        return None  # not installed as package data (e.g. a plain source checkout)
    return Path(str(folder))


def load_bundled() -> Dataset:
    """The default demo data: SMD ``machine-1-2`` (23,694 train and test rows, 38 metrics, 10 labelled
    anomaly segments with their root-cause metrics).
    """
    dataset = load_smd(BUNDLED_MACHINE, root=bundled_smd_root())
    dataset.metadata["bundled"] = True
    return dataset


def load_demo() -> Dataset:
    """Alias of :func:`load_bundled`."""
    return load_bundled()

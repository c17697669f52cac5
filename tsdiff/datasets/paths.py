"""Where dataset files are looked for, and file look-ups that fail with a message naming the file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tsdiff.errors import DatasetError

DATA_ENV = "TSDIFF_DATA"


def project_root() -> Path:
    """The folder holding the ``tsdiff`` package directory (the repository root in a checkout)."""
    return Path(__file__).resolve().parent.parent.parent


def default_root(name: str) -> Path:
    """Folder of the dataset ``name`` when a loader is given no ``root``.

    Looks at ``$TSDIFF_DATA/<name>`` first, then ``<project root>/../shared/datasets/<name>``.

    Parameters
    ----------
    name
        Dataset folder name, e.g. ``"SMD"`` or ``"SKAB"``.

    Returns
    -------
    pathlib.Path
        The first of those folders that exists.

    Raises
    ------
    DatasetError
        When none exists; the message lists every place looked at.
    """
    candidates = default_root_candidates(name)
    for path in candidates:
        if path.is_dir():
            return path
    looked = ", ".join(str(p) for p in candidates)
    hint = "" if os.environ.get(DATA_ENV) else f" (set ${DATA_ENV} to a folder holding {name}/)"
    raise DatasetError(f"no folder for dataset {name!r}; looked in: {looked}{hint}")


def default_root_candidates(name: str) -> list[Path]:
    """The folders :func:`default_root` tries, in order."""
    out = []
    env = os.environ.get(DATA_ENV)
    if env:
        out.append(Path(env).expanduser() / name)
    out.append(project_root().parent / "shared" / "datasets" / name)
    return out


def resolve_root(root: str | os.PathLike[str] | None, name: str) -> Path:
    """``root`` as a Path when given (it must be a folder), else :func:`default_root`."""
    if root is None:
        return default_root(name)
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(f"{name} root folder not found: {path}")
    return path


def find_file(folder: Path, stem: str, suffixes: Sequence[str], what: str) -> Path:
    """The first existing ``folder/(stem + suffix)``; DatasetError naming the expected file otherwise."""
    tried = [folder / f"{stem}{suffix}" for suffix in suffixes]
    for path in tried:
        if path.is_file():
            return path
    names = " or ".join(str(p) for p in tried)
    raise DatasetError(f"{what} file not found: {names}")


def require_file(path: Path, what: str) -> Path:
    """``path`` itself when it is a file; DatasetError naming it otherwise."""
    if not path.is_file():
        raise DatasetError(f"{what} file not found: {path}")
    return path

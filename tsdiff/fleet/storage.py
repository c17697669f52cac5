"""Where a fleet's models live: one model directory per entity, and an index of them.

Layout of ``model_dir``::

    fleet.json                 the index: columns, detector, one entry per fitted entity, failures
    entities/<entity name>/    a saved detector (config.json + arrays.safetensors)

Entity names become directory names by percent-encoding every character outside ``A-Z a-z 0-9 - _ .``
(and a leading dot), so ``web/01`` is ``web%2F01`` and ``..`` is ``%2E.``: no name can reach outside
``entities/``, hide a file, or collide with another name. The folder is always derived from the
entity again, never read from the index, so an edited index cannot point elsewhere either.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np

from tsdiff.errors import InputError, ModelFormatError
from tsdiff.fileio import FileLock, write_atomic
from tsdiff.serialize import envelope, read_document, to_json

INDEX_FILE = "fleet.json"
LOCK_FILE = ".fleet.lock"
ENTITIES_DIR = "entities"
FORMAT = "tsdiff-fleet"
FORMAT_VERSION = 1
#: longest encoded entity name (file systems allow 255 bytes per name)
MAX_NAME_BYTES = 200


def entity_dirname(entity: Any) -> str:
    """The directory name of ``entity``: reversible, safe on every common file system."""
    text = str(entity)
    if not text:
        raise InputError("an entity has an empty name", row=entity)
    name = urllib.parse.quote(text, safe="-_.")
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InputError(f"entity name {text[:40]!r}... is too long for a directory name", row=entity)
    return name


def entity_type(entity: Any) -> str:
    """The kind of an entity name as the index records it (``str``, ``int``, ``float``, ...)."""
    if isinstance(entity, str):
        return "str"
    if isinstance(entity, (bool, np.bool_)):
        return "bool"
    if isinstance(entity, (int, np.integer)):
        return "int"
    if isinstance(entity, (float, np.floating)):
        return "float"
    return type(entity).__name__


def check_entity_names(entities: Any, known: dict[str, str] | None = None) -> None:
    """Refuse entities that would share a folder and an index entry: ``1`` and ``"1"`` (or
    ``1.0``), or a name an earlier run recorded with another type (``known``: name -> type)."""
    seen: dict[str, Any] = {}
    for entity in entities:
        key = str(entity)
        if key in seen and (entity_type(seen[key]), seen[key]) != (entity_type(entity), entity):
            raise InputError(
                f"entities {seen[key]!r} ({entity_type(seen[key])}) and {entity!r} ({entity_type(entity)}) "
                f"would share the model of {key!r}; give them distinct names",
                row=entity,
            )
        seen[key] = entity
        recorded = (known or {}).get(key)
        if recorded is not None and recorded != entity_type(entity):
            raise InputError(
                f"entity {entity!r} ({entity_type(entity)}) would replace the model of the {recorded} "
                f"entity {key!r} fitted earlier; give it a distinct name",
                row=entity,
            )


def entity_path(model_dir: str | Path, entity: Any) -> Path:
    """``model_dir/entities/<name>``, checked to lie directly inside ``model_dir/entities``."""
    root = Path(model_dir) / ENTITIES_DIR
    path = root / entity_dirname(entity)
    if path.resolve().parent != root.resolve():
        raise InputError(f"entity {entity!r} would be stored outside {root}", row=entity)
    return path


def read_index(model_dir: str | Path) -> dict[str, Any]:
    """The fleet index of ``model_dir``; :class:`ModelFormatError` when there is none."""
    path = Path(model_dir) / INDEX_FILE
    if not path.is_file():
        raise ModelFormatError(f"{model_dir} has no {INDEX_FILE}: it is not a fleet model directory")
    return read_document(path, FORMAT, FORMAT_VERSION, ModelFormatError, "tsdiff fleet index")


def update_index(
    model_dir: str | Path,
    settings: dict[str, Any],
    fitted: dict[str, dict[str, Any]],
    failed: dict[str, str],
) -> dict[str, Any]:
    """Merge one fit run into the index (atomically replaced) and return it.

    Entities fitted now replace their old entries; an entity that failed now keeps the model of an
    earlier run, if any, and is listed under ``failed`` until a later run fits it. The read, merge
    and write happen under an exclusive lock on ``.fleet.lock``, so fits running at once into one
    folder each keep their entities.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(model_dir / LOCK_FILE):
        try:
            index = read_index(model_dir)
        except ModelFormatError:
            if (model_dir / INDEX_FILE).exists():
                raise
            index = envelope(FORMAT, FORMAT_VERSION, {"entities": {}, "failed": {}})
        index.pop("version", None)  # an index written before the envelope had its own version key
        index.update({"format_version": FORMAT_VERSION, **settings})
        index["entities"].update(fitted)
        index["failed"] = {k: v for k, v in {**index.get("failed", {}), **failed}.items() if k not in fitted}
        write_atomic(model_dir / INDEX_FILE, to_json(index, "the fleet index", indent=1, default=str))
    return index

"""Server Machine Dataset (SMD, OmniAnomaly, KDD 2019) and its ``interpretation_label`` format."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from tsdiff.datasets.base import Dataset, segments
from tsdiff.datasets.paths import find_file, resolve_root
from tsdiff.errors import DatasetError, ParameterError

_MACHINE = re.compile(r"^(?:machine-)?(\d+)-(\d+)$")
_INTERPRETATION_LINE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*:\s*(\d+(?:\s*,\s*\d+)*)\s*,?\s*$")


def smd_machine_name(machine: str) -> str:
    """Canonical ``"machine-G-I"`` from ``"machine-G-I"`` or ``"G-I"``; ParameterError otherwise."""
    match = _MACHINE.match(str(machine).strip())
    if match is None:
        raise ParameterError(f"machine must look like 'machine-1-2' or '1-2', got {machine!r}")
    return f"machine-{int(match.group(1))}-{int(match.group(2))}"


def load_smd(machine: str = "machine-1-2", root: str | os.PathLike[str] | None = None) -> Dataset:
    """Load one machine of SMD.

    Expected layout under ``root`` (the public ``ServerMachineDataset/`` folder; each data file may be plain
    ``.txt`` or gzipped ``.txt.gz``)::

        train/machine-G-I.txt[.gz]          CSV, ',' delimiter, no header, one row per minute, 38 floats
        test/machine-G-I.txt[.gz]           same format
        test_label/machine-G-I.txt[.gz]     one 0/1 integer per line, one line per test row
        interpretation_label/machine-G-I.txt[.gz]   optional; lines "start-end:d1,d2,..." with 0-based,
                                            half-open [start, end) test rows and 1-based metric numbers

    Parameters
    ----------
    machine
        ``"machine-1-2"`` or ``"1-2"``.
    root
        The SMD folder; default :func:`~tsdiff.datasets.default_root` of ``"SMD"``.

    Returns
    -------
    Dataset
        Columns ``m1`` … ``m38`` (1-based, matching ``interpretation_label``), RangeIndex on both parts,
        ``root_causes`` from ``interpretation_label`` when present. The training part is unlabelled.

    Raises
    ------
    ParameterError
        When ``machine`` is not a machine name.
    DatasetError
        When a file is missing or malformed (the message names it).
    """
    name = smd_machine_name(machine)
    folder = resolve_root(root, "SMD")
    suffixes = (".txt.gz", ".txt")
    train_path = find_file(folder / "train", name, suffixes, "SMD train")
    test_path = find_file(folder / "test", name, suffixes, "SMD test")
    label_path = find_file(folder / "test_label", name, suffixes, "SMD test label")

    train = read_headerless_csv(train_path)
    test = read_headerless_csv(test_path)
    if train.shape[1] != test.shape[1]:
        raise DatasetError(f"{test_path} has {test.shape[1]} columns but {train_path} has {train.shape[1]}")
    columns = [f"m{k}" for k in range(1, train.shape[1] + 1)]
    train.columns = columns
    test.columns = columns
    labels = read_label_lines(label_path, len(test))

    root_causes = None
    metadata: dict = {
        "source": "SMD (NetManAIOps/OmniAnomaly ServerMachineDataset)",
        "machine": name,
        "files": {"train": str(train_path), "test": str(test_path), "test_label": str(label_path)},
    }
    interp_dir = folder / "interpretation_label"
    interp = [interp_dir / f"{name}{s}" for s in suffixes if (interp_dir / f"{name}{s}").is_file()]
    if interp:
        root_causes = read_interpretation_labels(interp[0], len(test), columns)
        metadata["files"]["interpretation_label"] = str(interp[0])
        metadata["interpretation_check"] = compare_with_labels(root_causes, labels)

    return Dataset(
        name=f"SMD/{name}",
        train=train,
        test=test,
        labels=pd.Series(labels, index=test.index, name="label"),
        root_causes=root_causes,
        metadata=metadata,
    )


def read_headerless_csv(path: Path) -> pd.DataFrame:
    """A header-less comma-separated float file (gzip inferred from ``.gz``) as a RangeIndex DataFrame."""
    try:
        frame = pd.read_csv(path, header=None, dtype=np.float64, sep=",")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path} as comma-separated numbers: {exc}") from exc
    if frame.empty:
        raise DatasetError(f"{path} holds no rows")
    frame.columns = range(frame.shape[1])
    return frame


def read_label_lines(path: Path, n_rows: int) -> np.ndarray:
    """One 0/1 integer per line; the count must equal ``n_rows``."""
    try:
        raw = pd.read_csv(path, header=None, sep=",", dtype=np.float64)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path} as one 0/1 label per line: {exc}") from exc
    if raw.shape[1] != 1:
        raise DatasetError(f"{path} must hold one label per line, found {raw.shape[1]} columns")
    values = raw.iloc[:, 0].to_numpy()
    if len(values) != n_rows:
        raise DatasetError(f"{path} has {len(values)} labels but the test part has {n_rows} rows")
    if not np.isin(values, (0.0, 1.0)).all():
        raise DatasetError(f"{path} holds values other than 0 and 1")
    return values.astype(np.int64)


def read_interpretation_labels(path: Path, n_rows: int, columns: list[str]) -> pd.DataFrame:
    """Parse an OmniAnomaly ``interpretation_label`` file into ``root_causes`` rows.

    Each non-empty line is ``start-end:d1,d2,...``: 0-based half-open ``[start, end)`` test rows and
    1-based metric numbers, mapped to ``columns[d - 1]``.
    """
    text = _read_text(path)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _INTERPRETATION_LINE.match(line)
        if match is None:
            raise DatasetError(f"{path}, line {number}: expected 'start-end:d1,d2,...', got {line.strip()!r}")
        start, end = int(match.group(1)), int(match.group(2))
        dims = [int(d) for d in match.group(3).split(",")]
        if not 0 <= start < end <= n_rows:
            raise DatasetError(f"{path}, line {number}: segment {start}-{end} is outside 0-{n_rows}")
        bad = [d for d in dims if not 1 <= d <= len(columns)]
        if bad:
            raise DatasetError(f"{path}, line {number}: metric number(s) {bad} outside 1-{len(columns)}")
        rows.append({"start": start, "end": end, "metrics": [columns[d - 1] for d in dims]})
    return pd.DataFrame(rows, columns=["start", "end", "metrics"]).astype(
        {"start": np.int64, "end": np.int64}
    )


def compare_with_labels(root_causes: pd.DataFrame, labels: np.ndarray) -> dict:
    """How the root-cause segments line up with the runs of 1s in the labels (reported, not corrected)."""
    runs = set(segments(labels))
    spans = {(int(s), int(e)) for s, e in zip(root_causes["start"], root_causes["end"], strict=True)}
    return {
        "label_runs": len(runs),
        "segments": len(spans),
        "exact_matches": len(runs & spans),
        "segments_not_label_runs": sorted(spans - runs),
        "label_runs_without_segment": sorted(runs - spans),
    }


def _read_text(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return handle.read()
        return path.read_text(encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path} as text: {exc}") from exc

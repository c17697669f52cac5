"""The ``--output`` log of a watcher: one JSON line per final row, appended, never rewritten.

The log, not the watcher's state, says which rows are logged: a restart reads the time of the last
complete line and writes no row at or before it again. So a crash between the log and the state
(or a state that could not be saved) logs no row twice, and a restart never deletes a line: a
file it did not write, or one rotated away, is only appended to. The one repair is a partial last
line that this log wrote itself (a crash in the middle of a write): it is cut, since the same row
is written again whole.

The log is held under an exclusive lock (``<file>.lock``), so a second watcher writing into it is
refused rather than interleaving its lines.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from tsdiff.errors import ParameterError
from tsdiff.fileio import FileLock

logger = logging.getLogger(__name__)

#: bytes read from the end of the log to find its last row
TAIL_BYTES = 1 << 16


class RowLog:
    """Append final rows to ``path``, skipping rows it already holds (see the module docstring).

    ``key`` names the field that tells the rows of several streams apart in one log (a fleet's
    ``entity``); the rows of each are in time order, and each stream's last logged time is kept.
    """

    def __init__(self, path: str | Path, key: str | None = None) -> None:
        self.path = Path(path)
        self.key = key
        self.lock = FileLock(self.path.with_name(self.path.name + ".lock"))
        self.logged_until: dict[Any, pd.Timestamp] = {}

    def open(self, saved: dict[str, Any] | None = None) -> None:
        """Lock the log, cut a partial last line of its own (``saved`` is what :meth:`identity`
        returned when the state was saved) and read the time of the last row of each stream: among
        the lines after the snapshot when the log is the one the state knows, else in its tail."""
        if not self.lock.acquire(blocking=False):
            raise ParameterError(
                f"the output {self.path} is in use by another tsdiff watch (process {self.lock.holder()})"
            )
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            ours = saved is not None and saved.get("inode") == self._inode() and int(saved["bytes"]) <= size
            handle.seek(int(saved["bytes"]) if ours and saved else max(0, size - TAIL_BYTES))
            tail = handle.read()
        partial = b"" if tail.endswith(b"\n") or not tail else tail.rsplit(b"\n", 1)[-1]
        if partial:
            if ours:  # a line cut by a crash, after the snapshot: it is written again whole
                with open(self.path, "r+b") as handle:
                    handle.truncate(size - len(partial))
                logger.warning("cut a partial last line of %s (a write cut short)", self.path)
            else:  # not ours to cut: the next line starts on a line of its own
                with open(self.path, "ab") as handle:
                    handle.write(b"\n")
        for line in tail.splitlines():
            found = _row_time(line, self.key)
            if found is not None:
                key, stamp = found
                if key not in self.logged_until or stamp > self.logged_until[key]:
                    self.logged_until[key] = stamp
        if self.logged_until:
            logger.info("%s holds rows up to %s: none of them is written again", self.path, self.logged_until)

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write the records whose time is after the last row logged of their stream; flush them."""
        new = []
        for r in records:
            key = None if self.key is None else r.get(self.key)
            stamp = pd.Timestamp(r["time"])
            if key in self.logged_until and stamp <= self.logged_until[key]:
                continue
            new.append(r)
            self.logged_until[key] = stamp
        if not new:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in new))
            handle.flush()
            os.fsync(handle.fileno())

    def identity(self) -> dict[str, Any]:
        """What the state records of the log: its inode and size now."""
        size = self.path.stat().st_size if self.path.exists() else 0
        return {"inode": self._inode(), "bytes": size}

    def _inode(self) -> int | None:
        try:
            return self.path.stat().st_ino
        except OSError:
            return None

    def close(self) -> None:
        self.lock.release()


def _row_time(line: bytes, key: str | None = None) -> tuple[Any, pd.Timestamp] | None:
    """The stream key and time of a logged row (a JSON object with ``time`` and ``score``)."""
    try:
        record = json.loads(line)
        if isinstance(record, dict) and "score" in record and isinstance(record.get("time"), str):
            stamp = pd.Timestamp(record["time"])
            if pd.isna(stamp) or stamp.tz is None:  # a watcher's rows are zoned
                return None
            return (None if key is None else record.get(key)), stamp
    except (ValueError, TypeError):
        return None
    return None


def final_records(out: pd.DataFrame, detail: bool = False) -> list[dict[str, Any]]:
    """The final rows of a :class:`~tsdiff.stream.StreamScorer` update as JSON-ready records:
    ``time``, ``seconds``, ``score``, ``label``, ``gap`` and ``top_metrics`` (a row without data is
    a gap: no score, no label); with ``detail``, also ``top_shares`` and ``root_causes``."""
    final = out[out["final"].astype(bool)] if len(out) else out
    records = []
    for stamp, row in final.iterrows():
        gap = bool(row["gap"]) or pd.isna(row["score"])
        record = {
            "time": pd.Timestamp(stamp).isoformat(),
            "seconds": pd.Timestamp(stamp).value / 1e9,
            "score": None if gap else float(row["score"]),
            "label": None if gap else int(row["label"]),
            "gap": gap,
            "top_metrics": [] if gap else [str(m) for m in row["top_metrics"]],
        }
        if detail:
            record["top_shares"] = [] if gap else [float(v) for v in row["top_shares"]]
            record["root_causes"] = [] if gap else [str(m) for m in row["root_causes"]]
        records.append(record)
    return records

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
    """Append final rows to ``path``, skipping rows it already holds (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock = FileLock(self.path.with_name(self.path.name + ".lock"))
        self.logged_until: pd.Timestamp | None = None

    def open(self, saved: dict[str, Any] | None = None) -> None:
        """Lock the log, cut a partial last line of its own (``saved`` is what :meth:`identity`
        returned when the state was saved) and read the time of its last row."""
        if not self.lock.acquire(blocking=False):
            raise ParameterError(
                f"the output {self.path} is in use by another tsdiff watch (process {self.lock.holder()})"
            )
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read()
        partial = b"" if tail.endswith(b"\n") or not tail else tail.rsplit(b"\n", 1)[-1]
        if partial:
            ours = saved is not None and saved.get("inode") == self._inode() and int(saved["bytes"]) <= size
            if ours and size - len(partial) >= int(saved["bytes"]):
                with open(self.path, "r+b") as handle:  # a line cut by a crash, after the snapshot
                    handle.truncate(size - len(partial))
                logger.warning("cut a partial last line of %s (a write cut short)", self.path)
            else:  # not ours to cut: the next line starts on a line of its own
                with open(self.path, "ab") as handle:
                    handle.write(b"\n")
        for line in reversed(tail.splitlines()):
            stamp = _row_time(line)
            if stamp is not None:
                self.logged_until = stamp
                break
        if self.logged_until is not None:
            logger.info(
                "%s holds rows up to %s; none up to it is written again", self.path, self.logged_until
            )

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write the records whose time is after the last row logged, and flush them to disk."""
        new = [r for r in records if self.logged_until is None or pd.Timestamp(r["time"]) > self.logged_until]
        if not new:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in new))
            handle.flush()
            os.fsync(handle.fileno())
        self.logged_until = pd.Timestamp(new[-1]["time"])

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


def _row_time(line: bytes) -> pd.Timestamp | None:
    """The time of a logged row (a JSON object with ``time`` and ``score``), else None."""
    try:
        record = json.loads(line)
        if isinstance(record, dict) and "score" in record and isinstance(record.get("time"), str):
            stamp = pd.Timestamp(record["time"])
            return None if pd.isna(stamp) or stamp.tz is None else stamp  # a watcher's rows are zoned
    except (ValueError, TypeError):
        return None
    return None

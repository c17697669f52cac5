"""Files that must survive a crash or a second process: atomic writes and exclusive locks.

:func:`write_atomic` writes a whole file or nothing (a temporary file beside it, flushed to disk,
then renamed over it). :class:`FileLock` is an exclusive advisory lock (POSIX ``flock``) on a
lock file, released when the holder releases it or dies, even by SIGKILL; it records the holder's
process id so a refused caller can say who holds it. Where ``flock`` does not exist, locks are not
taken.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


def write_atomic(path: str | Path, text: str, durable: bool = True) -> None:
    """Replace ``path`` with ``text`` in one step: a reader (or a restart after a crash) sees the old
    file or the new one, never a mix; ``durable`` also flushes it to disk before the rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class FileLock:
    """An exclusive lock on the file ``path`` (created when missing; never deleted, so two
    processes always lock the same file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle: Any = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; without ``blocking``, return False at once when another process holds it."""
        if self._handle is not None:
            return True
        handle = open(self.path, "a+")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                handle.close()
                return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return True

    def holder(self) -> str:
        """The process id written by the holder (``"unknown"`` when unreadable)."""
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._handle is None:
            return
        if fcntl is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

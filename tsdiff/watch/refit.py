"""Refitting a model that drifted away from its data, in the background, on the rows seen lately.

:class:`Refitter` keeps the last ``window`` rows a watcher read. Once the watcher's incident
tracker has reported drift (far more rows flagged than the model's ``risk``) for ``after`` rows in
a row, it refits a copy of the model warm on those rows in a background thread
(:meth:`~tsdiff.base.BaseDetector.refit`), while the old model goes on scoring.
:meth:`Refitter.take` hands the new model over when it is ready; the watcher swaps it in between
two polls (see ``Watcher._swap``). A failed refit is logged and counted, and tried again after
another ``after`` rows of drift. With ``every``, a refit also starts on a schedule: once that many
rows have passed since the model in charge was fitted (a model that follows the seasons and the
releases without waiting for drift).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.errors import ParameterError

logger = logging.getLogger(__name__)


class Refitter:
    """Background refits of ``detector`` (see the module docstring).

    Parameters
    ----------
    detector
        The fitted model; each refit is a copy of it refitted warm on the recent rows
        (:meth:`~tsdiff.base.BaseDetector.refit`).
    after
        Rows of uninterrupted drift before a refit starts (None: drift never starts one).
    window
        Rows kept to refit on (the latest ones; rows without any value are left out).
    every
        Rows between scheduled refits (None: none), counted from the start and from each swap.
    """

    def __init__(self, detector: Any, after: int | None, window: int, every: int | None = None) -> None:
        if (
            (after is not None and int(after) < 1)
            or (every is not None and int(every) < 1)
            or int(window) < 1
        ):
            raise ParameterError("the refit's drift time, schedule and window must be at least one row")
        least = int(detector.min_fit_rows())
        if int(window) < least:
            raise ParameterError(f"the refit window of {int(window)} rows is below the model's {least}")
        self.detector = detector
        self.after = None if after is None else int(after)
        self.every = None if every is None else int(every)
        self.window = int(window)
        self.rows: deque[tuple[Any, np.ndarray]] = deque(maxlen=self.window)
        self.drifting_rows = 0
        self.rows_since_fit = 0
        self.refits = 0
        self.failures = 0
        self._thread: threading.Thread | None = None
        self._result: Any = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def observe(self, frame: pd.DataFrame, drifting: bool) -> None:
        """The rows of one poll, and whether the tracker reports drift after them."""
        values = frame.to_numpy(dtype=np.float64)
        for stamp, row in zip(frame.index, values, strict=True):
            if not np.isnan(row).all():
                self.rows.append((stamp, row))
        self.drifting_rows = self.drifting_rows + len(frame) if drifting else 0
        self.rows_since_fit += len(frame)
        drifted = self.after is not None and self.drifting_rows >= self.after
        due = self.every is not None and self.rows_since_fit >= self.every
        if (drifted or due) and not self.running and self._result is None:
            self._start()

    def _start(self) -> None:
        if len(self.rows) < int(self.detector.min_fit_rows()):
            return
        frame = pd.DataFrame(
            np.vstack([r for _, r in self.rows]),
            index=pd.DatetimeIndex([t for t, _ in self.rows]),
            columns=list(self.detector.feature_names_in_),
        )
        drifted = self.after is not None and self.drifting_rows >= self.after
        why = (
            f"drift for {self.drifting_rows} rows" if drifted else f"scheduled, {self.rows_since_fit} rows on"
        )
        logger.warning("refitting the model on the last %d rows (%s)", len(frame), why)
        self._thread = threading.Thread(target=self._fit, args=(frame,), name="tsdiff-refit", daemon=True)
        self._thread.start()

    def _fit(self, frame: pd.DataFrame) -> None:
        import copy

        try:  # a warm refit of a copy: the model in charge goes on scoring meanwhile
            model = copy.deepcopy(self.detector).refit(frame)
        except Exception as exc:  # a refit must never stop the watcher
            logger.warning("the refit failed (%s: %s); the old model goes on", type(exc).__name__, exc)
            with self._lock:
                self.failures += 1
                self.drifting_rows = 0
                self.rows_since_fit = 0  # a schedule tries again one period later
            return
        source = getattr(self.detector, "source_", None)
        if source is not None:
            model.source_ = {**source, "fitted_from": str(frame.index[0]), "fitted_to": str(frame.index[-1])}
        with self._lock:
            self._result = model

    def take(self) -> Any:
        """The refitted model once it is ready (once), else None."""
        with self._lock:
            model, self._result = self._result, None
        if model is not None:
            self.refits += 1
            self.drifting_rows = 0
            self.rows_since_fit = 0
            self.detector = model
        return model

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a running refit (tests, and a watcher shutting down)."""
        if self._thread is not None:
            self._thread.join(timeout)

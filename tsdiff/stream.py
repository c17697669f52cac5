"""Score a live stream with a fitted detector: new rows in, their scores out, bounded memory.

:class:`StreamScorer` keeps only the rows a score still depends on. Window models need rows *after*
a row to score it as they would in one batch (a diffusion window imputes its middle from both
sides), so a row's **final** score is returned ``latency`` rows after the row arrived; with
``provisional=True`` every row also gets an immediate provisional score, computed as if the stream
ended there (what a batch over the rows so far gives), followed later by its final score.

Rules for awkward input:

* **Order**: the rows of one update are sorted by time first. A row whose timestamp is not after
  the last row already received (late, out of order across updates, or a duplicate) is dropped and
  counted in ``dropped_`` (``on_late="raise"`` raises :class:`~tsdiff.errors.LateRowError` instead,
  before anything of that update is kept). Duplicates inside one update keep the first row.
* **Gaps**: with ``freq`` (e.g. ``"1min"``) and a DatetimeIndex, missing timestamps are inserted as
  rows without values (returned with ``gap=True``), so windows keep their length in time. Without
  ``freq``, consecutive rows are taken as consecutive steps.
* **Missing values**: NaN cells are never used as observations (the models treat them as missing);
  a row without any value is a gap like a filled timestamp (``gap=True``, no score, no label).
* **Restart**: :meth:`state` returns a JSON-ready snapshot; :meth:`from_state` rebuilds a scorer
  that continues exactly where the snapshot was taken.

The final scores of a stream equal :meth:`~tsdiff.base.BaseDetector.score` of the same rows in one
batch (up to float rounding): the scorer rescored a buffer that starts on the detector's window grid
and holds enough rows before and after each row (:class:`~tsdiff.base.StreamGeometry`). Detectors
that fill a missing cell with the last value seen (the baselines) carry it only across the rows the
scorer keeps.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsdiff.base import MEMO_WANTED
from tsdiff.errors import InputError, LateRowError, ParameterError
from tsdiff.frame import align_columns, validate_frame
from tsdiff.segmentation import SegmentRules
from tsdiff.serialize import envelope, json_ready, open_envelope

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.base import ScoreParts

logger = logging.getLogger(__name__)

STATE_FORMAT = "tsdiff-stream-state"
#: streaming thresholds a scorer can adapt with (tsdiff.thresholds)
ADAPT_METHODS = ("budget", "window", "dspot", "spot")
STATE_VERSION = 2


class StreamScorer:
    """Incremental scoring of new rows with a fitted detector.

    Parameters
    ----------
    detector
        A fitted tsdiff detector (any that declares how far its scores reach; the random baseline
        does not).
    provisional
        Also return an immediate, provisional score for rows whose final score must wait.
    freq
        Expected spacing of a DatetimeIndex (a pandas offset such as ``"1min"``); missing
        timestamps are filled with empty rows (returned with ``gap=True``, no score and no label:
        NaN). None: no gap filling.
    tolerance
        With ``freq``: a timestamp this close to the grid (a fraction of ``freq``, default 0.1) is
        moved onto it (a scrape a second late); one farther off is refused with
        :class:`~tsdiff.errors.InputError`, and only that update is lost.
    on_late
        ``"drop"`` (default) or ``"raise"`` for rows that arrive at or before the last timestamp.
    top_k
        Metrics named per anomalous row (``top_metrics``, and ``root_causes`` of the incident it
        belongs to; the incidents themselves carry complete rankings).
    adapt
        ``None`` (default): a row is flagged above the detector's fitted threshold. Otherwise the
        threshold follows the stream, started on the detector's held-out calibration scores:
        ``"budget"`` flags a final row when it is the highest of the last 200 and above the fitted
        threshold (:class:`~tsdiff.thresholds.BudgetThreshold`: a lasting rise of the scores is
        flagged for a few rows, then learned); ``"window"`` refits peaks-over-threshold
        on the last 1,440 final scores every 60 rows,
        never below the fitted threshold (:class:`~tsdiff.thresholds.WindowPOTThreshold`);
        ``"dspot"`` and ``"spot"`` learn from the scores of the rows they do not flag
        (:class:`~tsdiff.thresholds.DSPOTThreshold`: relative to the mean of the last ten, so a
        slow drift of the level moves the threshold with it). ``threshold`` is the current one.
    segmentation
        How final rows are cut into incidents (:class:`~tsdiff.segmentation.SegmentRules`; by
        default :meth:`~tsdiff.base.BaseDetector.detect`'s, so the incidents of a stream are the
        events of a batch over the same rows).

    Attributes
    ----------
    latency
        Rows that must follow a row before its final score is known.
    dropped_
        Late or duplicate rows dropped so far.
    incidents
        The :class:`~tsdiff.incidents.IncidentTracker` the final rows go through.
    changes
        The incident changes (``("opened" | "resolved", incident)``) of the last :meth:`update`
        or :meth:`flush`.
    """

    def __init__(
        self,
        detector: Any,
        provisional: bool = False,
        freq: Any = None,
        on_late: str = "drop",
        top_k: int = 3,
        tolerance: float = 0.1,
        segmentation: Any = None,
        adapt: str | None = None,
    ) -> None:
        from tsdiff.incidents import IncidentTracker

        detector.check_fitted()
        self.adapt = None if adapt is None else str(adapt).lower()
        self.adaptive = self._adaptive_threshold(detector, self.adapt)
        if not 0.0 <= float(tolerance) < 0.5:
            raise ParameterError(f"tolerance must be in [0, 0.5), got {tolerance!r}")
        self.tolerance = float(tolerance)
        geometry = detector.stream_geometry()
        if geometry is None:
            raise ParameterError(
                f"{type(detector).__name__} cannot score a stream (its scores have no bounded reach)"
            )
        if on_late not in ("drop", "raise"):
            raise ParameterError(f"on_late must be 'drop' or 'raise', got {on_late!r}")
        self.detector = detector
        self.provisional = bool(provisional)
        self.freq_text = None if freq is None else str(freq)
        try:
            self.freq = pd.tseries.frequencies.to_offset(freq) if freq is not None else None
        except (ValueError, TypeError):
            raise ParameterError(f"freq {freq!r} is not a pandas frequency such as '1min' or '30s'") from None
        self.on_late = on_late
        self.top_k = int(top_k)
        self.geometry = geometry
        self.latency = int(geometry.lookahead)
        self.min_rows = max(int(detector.min_rows()), 1)
        #: identifies the model a snapshot (:meth:`state`) belongs to
        self.fingerprint = model_fingerprint(detector)
        k = detector.n_features_in_
        self._values = np.empty((0, k))  # raw rows of the buffer
        self._index: list[Any] = []
        self._gap: list[bool] = []
        self._start = 0  # stream position of the buffer's first row
        self._received = 0  # rows received (stream positions 0 .. received - 1)
        self._final = 0  # first stream position without a final score yet
        self.incidents = IncidentTracker(detector, segmentation, top_k=self.top_k)
        self.changes: list[tuple[str, Any]] = []
        self.dropped_ = 0
        self._memo: dict = {}  # work the detector keeps between updates, keyed by stream position

    @staticmethod
    def _adaptive_threshold(detector: Any, adapt: str | None) -> Any:
        if adapt is None:
            return None
        from tsdiff.thresholds import make_threshold

        if adapt not in ADAPT_METHODS:
            raise ParameterError(f"adapt must be None or one of {ADAPT_METHODS}, got {adapt!r}")
        calibration = getattr(detector, "calibration_scores_", None)
        if calibration is None:
            raise ParameterError(
                "adapting the threshold needs the detector's held-out calibration scores; this model "
                "was saved without them: refit it"
            )
        adaptive = make_threshold(adapt, risk=float(getattr(detector, "risk", 1e-3)))
        if adapt == "budget":  # never below the model's own threshold, however it was set
            return adaptive.fit(calibration, floor=float(detector.threshold_))
        return adaptive.fit(calibration)

    @property
    def threshold(self) -> float:
        """The threshold final rows are flagged above now (the detector's, or the adapted one)."""
        return float(self.detector.threshold_ if self.adaptive is None else self.adaptive.threshold_)

    # ----------------------------------------------------------------- input
    def _as_frame(self, rows: Any, index: Any) -> pd.DataFrame:
        if isinstance(rows, dict):
            rows = pd.DataFrame([rows], index=[index if index is not None else self._next_label()])
        elif isinstance(rows, pd.Series):
            rows = rows.to_frame().T
        elif not isinstance(rows, pd.DataFrame):
            values = np.asarray(rows, dtype=object)
            values = values.reshape(1, -1) if values.ndim == 1 else values
            start = self._next_label()
            rows = pd.DataFrame(values, index=pd.RangeIndex(start, start + len(values)))
            if not self.detector.columns_named_:
                rows.columns = range(rows.shape[1])
            else:
                rows.columns = self.detector.feature_names_in_[: rows.shape[1]]
        return rows

    def _next_label(self) -> Any:
        if not self._index:
            return self._received
        last = self._index[-1]
        return last + 1 if isinstance(last, (int, np.integer)) else self._received

    def _clean(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        if not frame.index.is_monotonic_increasing:
            frame = frame.sort_index(kind="stable")
        duplicated = frame.index.duplicated(keep="first")
        late = np.zeros(len(frame), dtype=bool)
        if self._index:
            try:
                late = np.asarray(frame.index <= self._index[-1])
            except TypeError as exc:
                raise ParameterError(
                    f"the new rows' index ({frame.index.dtype}) cannot be compared with the stream's "
                    f"({type(self._index[-1]).__name__}): {exc}"
                ) from None
        bad = duplicated | late
        if bad.any():
            if self.on_late == "raise":
                first = frame.index[int(np.argmax(bad))]
                raise LateRowError(
                    f"row {first!r} is not after the last row received ({self._index[-1]!r})", row=first
                )
            frame = frame[~bad]
        return frame, int(bad.sum())

    def _fill_gaps(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        gap = np.zeros(len(frame), dtype=bool)
        if self.freq is None or not len(frame):
            return frame, gap
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise ParameterError("freq needs rows with a DatetimeIndex")
        frame = self._snap(frame)
        first = self._index[-1] + self.freq if self._index else frame.index[0]
        full = pd.date_range(first, frame.index[-1], freq=self.freq)
        if not full.isin(frame.index).all() or not frame.index.isin(full).all():
            gap = ~full.isin(frame.index)
            frame = frame.reindex(full)
        return frame, gap

    def _snap(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Timestamps within ``tolerance`` of the grid moved onto it; any other is an InputError."""
        step = pd.Timedelta(self.freq)
        anchor = self._index[-1] if self._index else frame.index[0]
        offset = (frame.index - anchor) / step
        nearest = np.round(np.asarray(offset, dtype=np.float64))
        off = np.abs(offset - nearest) > self.tolerance
        if off.any():
            row = frame.index[int(np.argmax(off))]
            raise InputError(
                f"row {row!r} is off the stream's {self.freq_text} grid by more than "
                f"{self.tolerance:.0%} of a step",
                row=row,
            )
        snapped = anchor + pd.to_timedelta(nearest * step.value, unit="ns")
        if snapped.duplicated().any() or (self._index and (snapped <= self._index[-1]).any()):
            row = frame.index[int(np.argmax(snapped.duplicated()))]
            raise InputError(f"row {row!r} falls on a grid step another row already took", row=row)
        return frame.set_axis(pd.DatetimeIndex(snapped, name=frame.index.name))

    # ----------------------------------------------------------------- update
    def update(self, rows: Any, index: Any = None) -> pd.DataFrame:
        """Add new rows and return the rows whose score is now known.

        Parameters
        ----------
        rows
            A DataFrame (its index gives the timestamps), a dict of one row (``index`` gives its
            timestamp; by default the next integer), or an array of rows.

        Returns
        -------
        DataFrame
            One row per scored row, indexed by its timestamp: ``score``, ``label`` (1 above the
            detector's threshold), ``final`` (False for a provisional score), ``gap`` (a filled
            missing timestamp), calibrated component scores (``score_<name>``) for hybrid models,
            ``top_metrics`` (with ``top_shares``: each one's share of the row's per-metric
            evidence) and, on anomalous final rows, ``root_causes`` of the event in progress.
            A row may appear twice: provisionally, then final.
        """
        frame, late = self._clean(self._as_frame(rows, index))
        if len(frame):
            frame, gap = self._fill_gaps(frame)
            checked = validate_frame(frame, min_rows=1, what="rows", allow_all_nan=True)
            checked = align_columns(checked, self.detector.feature_names_in_, self.detector.columns_named_)
        # everything is checked: from here on the update cannot fail on bad input (a failed update
        # keeps nothing, and does not count its late rows as dropped)
        if late:
            self.dropped_ += late
            logger.warning("dropped %d late or duplicate row(s)", late)
        if not len(frame):
            return self._empty()
        self._values = np.vstack([self._values, checked.values])
        self._index.extend(checked.index)
        # a row without any value is a gap too (a dead target): no evidence of normality
        self._gap.extend((gap | np.isnan(checked.values).all(axis=1)).tolist())
        first_new = self._received
        self._received += len(checked.values)
        return self._emit(last_final=self._received - 1 - self.latency, first_new=first_new)

    def warm(self, rows: Any) -> None:
        """Feed rows that were scored elsewhere (by the model this one replaces): they fill the
        buffer the next rows' scores reach back into, but emit nothing, open no incident and
        teach an adapting threshold nothing."""
        from tsdiff.incidents import IncidentTracker

        self.update(rows)
        self.flush()
        self._final = max(self._final, self._received)  # fewer rows than min_rows: never emitted
        self.incidents = IncidentTracker(self.detector, self.incidents.rules, top_k=self.top_k)
        self.adaptive = self._adaptive_threshold(self.detector, self.adapt)
        self.changes = []

    def flush(self) -> pd.DataFrame:
        """Final scores of every row still waiting, as a batch ending here would give (end of stream)."""
        return self._emit(last_final=self._received - 1, first_new=self._received)

    def _emit(self, last_final: int, first_new: int) -> pd.DataFrame:
        self.changes = []
        if self._received < self.min_rows or (last_final < self._final and not self.provisional):
            return self._empty()
        det = self.detector
        scaled = det.scaler_.transform(self._values)
        # the rows read from this call: a detector may skip work for later ones (see MEMO_WANTED)
        self._memo[MEMO_WANTED] = self._received - 1 if self.provisional else last_final
        parts = det.score_scaled(scaled, self._start, self._memo)
        out = []
        for pos in range(self._final, last_final + 1):
            out.append(self._row(pos, parts, final=True))
        self._final = max(self._final, last_final + 1)
        if self.provisional:
            for pos in range(max(first_new, self._final), self._received):
                out.append(self._row(pos, parts, final=False))
        self._trim()
        if not out:
            return self._empty()
        return pd.DataFrame(out, index=pd.Index([r.pop("_index") for r in out])).rename_axis(None)

    def _row(self, pos: int, parts: ScoreParts, final: bool) -> dict:
        det = self.detector
        i = pos - self._start
        score = float(parts.scores[i])
        gap = bool(self._gap[i])
        threshold = self.threshold
        label: Any = int(score > threshold)
        if gap:  # no data: no score and no label, never the last ones carried forward
            score, label = float("nan"), float("nan")
        elif final and self.adaptive is not None:  # the threshold learns from final scores only
            label = int(self.adaptive.update(score))
        names = det.feature_names_in_
        top = np.argsort(-np.asarray(parts.feature_scores[i]), kind="stable")[: self.top_k]
        row: dict[str, Any] = {
            "_index": self._index[i],
            "score": score,
            "label": label,
            "final": final,
            "gap": gap,
        }
        if self.adaptive is not None:
            row["threshold"] = threshold
        for name, values in parts.components.items():
            row[f"score_{name}"] = float(values[i])
        row["top_metrics"] = [] if gap else [names[j] for j in top]
        evidence = np.maximum(np.asarray(parts.feature_scores[i], dtype=np.float64), 0.0)
        total = float(evidence.sum())
        row["top_shares"] = [] if gap or total <= 0 else [float(evidence[j] / total) for j in top]
        causes: list[Any] = []
        if final:
            stale = None if self.adaptive is None else score > float(self.detector.threshold_)
            self.changes += self.incidents.update(
                self._index[i], score, label, parts.feature_scores[i], parts.evidence[i], stale=stale
            )
            current = self.incidents.current
            if label == 1 and current is not None:
                causes = current.root_causes[: self.top_k]
        row["root_causes"] = causes
        return row

    def _trim(self) -> None:
        """Drop rows no score depends on any more, keeping the buffer on the detector's window grid
        and at least ``min_rows`` long, so a scorer warmed with it (a model taking over) can score
        its next row even at the end of a stream."""
        g = self.geometry
        keep_from = self._final - max(g.history + g.period, self.min_rows)
        new_start = max(self._start, (keep_from // g.period) * g.period)
        if new_start > self._start:
            cut = new_start - self._start
            self._values = self._values[cut:]
            del self._index[:cut]
            del self._gap[:cut]
            self._start = new_start
            _forget_before(self._memo, new_start)

    def _empty(self) -> pd.DataFrame:
        """No rows, but the columns and dtypes of a real answer (so ``out[out.final]`` works)."""
        return pd.DataFrame(
            {
                "score": pd.Series(dtype=np.float64),
                "label": pd.Series(dtype=np.int64),
                "final": pd.Series(dtype=bool),
                "gap": pd.Series(dtype=bool),
                "top_metrics": pd.Series(dtype=object),
                "top_shares": pd.Series(dtype=object),
                "root_causes": pd.Series(dtype=object),
            }
        )

    @property
    def rows_received(self) -> int:
        """Rows received so far (warm rows included)."""
        return self._received

    def warm_rows(self) -> int:
        """Rows before its first live row that a new scorer is best warmed with (:meth:`warm`): enough
        for that row's score to be final ``latency`` rows later and to equal a batch score of a
        longer series."""
        return max(self.min_rows, self.geometry.history + self.geometry.period)

    def buffered_frame(self) -> pd.DataFrame:
        """The raw rows held in memory (gaps as missing values), with their index: what a model
        taking over from this one is warmed with (:meth:`warm`)."""
        return pd.DataFrame(
            self._values.copy(),
            index=pd.Index(list(self._index)),
            columns=list(self.detector.feature_names_in_),
        )

    @property
    def buffered_rows(self) -> int:
        """Rows held in memory (bounded by the detector's reach, not by the stream's length)."""
        return len(self._index)

    # ----------------------------------------------------------------- restart
    def state(self) -> dict[str, Any]:
        """A JSON-ready snapshot; :meth:`from_state` continues from it without losing a row."""
        index = pd.Index(self._index)
        timestamps = isinstance(index, pd.DatetimeIndex)
        if timestamps:  # UTC epochs and the zone's name: a DST change cannot break the restore
            labels: Any = json_ready(index.asi8.tolist())
            zone = None if index.tz is None else str(index.tz)
        else:
            labels, zone = json_ready(self._index), None
        return envelope(
            STATE_FORMAT,
            STATE_VERSION,
            {
                "model": self.fingerprint,
                "index": labels,
                "index_is_time": timestamps,
                "time_unit": str(index.unit) if timestamps else None,
                "time_zone": zone,
                "values": json_ready(self._values.tolist()),
                "gap": list(self._gap),
                "start": self._start,
                "received": self._received,
                "final": self._final,
                "incidents": self.incidents.state(),
                "segmentation": dict(self.incidents.rules.__dict__),
                "adapt": None if self.adaptive is None else self.adaptive.to_dict(),
                "dropped": self.dropped_,
                "provisional": self.provisional,
                "freq": None if self.freq is None else self.freq.freqstr,
                "on_late": self.on_late,
                "top_k": self.top_k,
                "tolerance": self.tolerance,
            },
        )

    @classmethod
    def from_state(cls, detector: Any, state: dict[str, Any]) -> StreamScorer:
        """Rebuild a scorer for ``detector`` (the one the snapshot was taken with) from :meth:`state`.

        A snapshot of another model (or of the same columns in another order), or one whose
        counters do not add up, is refused with :class:`~tsdiff.errors.ParameterError`: restoring it
        would lose rows or score some twice.
        """
        open_envelope(state, STATE_FORMAT, STATE_VERSION, ParameterError, "tsdiff stream state")
        try:
            out = cls(
                detector,
                state["provisional"],
                state["freq"],
                state["on_late"],
                state["top_k"],
                state.get("tolerance", 0.1),
                SegmentRules(**state["segmentation"]),
                None if state["adapt"] is None else state["adapt"]["method"],
            )
            if state["adapt"] is not None:
                from tsdiff.thresholds import BaseThreshold

                out.adaptive = BaseThreshold.from_dict(state["adapt"])
            if state.get("model") != out.fingerprint:
                raise ParameterError(
                    "the stream state was taken with another model (or the same columns in another "
                    "order); it cannot continue with this one"
                )
            values = np.array(
                [[np.nan if v is None else v for v in row] for row in state["values"]], dtype=np.float64
            ).reshape(-1, detector.n_features_in_)
            out._values = values
            out._index = _restore_index(state)
            out._gap = [bool(g) for g in state["gap"]]
            out._start, out._received, out._final = (
                _count(state, "start"),
                _count(state, "received"),
                _count(state, "final"),
            )
            out.incidents.restore(state["incidents"])
            out.dropped_ = _count(state, "dropped")
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ParameterError):
                raise
            raise ParameterError(
                f"the stream state is incomplete or corrupt: {type(exc).__name__}: {exc}"
            ) from None
        n = len(values)
        consistent = (
            len(out._index) == n == len(out._gap)
            and out._start + n == out._received
            and out._start <= out._final <= out._received
        )
        if not consistent:
            raise ParameterError(
                "the stream state is inconsistent (its rows and counters do not add up: "
                f"start {out._start} + {n} buffered rows, received {out._received}, final {out._final})"
            )
        return out


def _count(state: dict[str, Any], key: str) -> int:
    value = state[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParameterError(f"the stream state's {key!r} is {value!r}, not a count")
    return value


def _restore_index(state: dict[str, Any]) -> list[Any]:
    """The buffered rows' labels; timestamps from UTC epochs in the saved zone (or, for snapshots
    taken before epochs were kept, from ISO strings, converted to UTC first)."""
    labels = state["index"]
    if not state["index_is_time"]:
        return list(labels)
    if labels and isinstance(labels[0], str):  # an older snapshot: ISO strings
        return list(pd.DatetimeIndex(pd.to_datetime(labels, utc=True)))
    unit = state.get("time_unit") or "ns"
    index = pd.DatetimeIndex(np.asarray(labels, dtype="int64").astype(f"datetime64[{unit}]"))
    zone = state.get("time_zone")
    if zone is not None:
        index = index.tz_localize("UTC").tz_convert(zone)
    return list(index)


def model_fingerprint(detector: Any) -> str:
    """A short hash of everything a fitted detector scores with (its class, parameters, columns in
    order, threshold, scaler and learned arrays, its components'), equal for a model and its saved
    and reloaded copy."""
    import hashlib

    from tsdiff.persist import encode_params
    from tsdiff.serialize import to_json

    digest = hashlib.sha256()
    config, arrays = detector.export_state()
    head = {"class": type(detector).__name__, "params": encode_params(detector.get_params(deep=False))}
    digest.update(to_json({**head, **config}, "the model", indent=None, default=str).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    for name, component in detector.fitted_components().items():
        digest.update(f"{name}={model_fingerprint(component)}".encode())
    return digest.hexdigest()[:32]


def _forget_before(memo: dict, position: int) -> None:
    """Drop memo entries keyed by stream positions before ``position`` (nested per component)."""
    for key in list(memo):
        if isinstance(memo[key], dict):
            _forget_before(memo[key], position)
        elif isinstance(key, (int, np.integer)) and key < position:
            del memo[key]

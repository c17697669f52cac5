"""Read metrics from a Prometheus server's HTTP API into a multivariate frame.

:class:`PrometheusSource` runs range queries (``/api/v1/query_range``) for a list of PromQL
queries and/or one selector, and aligns every returned series on one time grid:

* the grid runs from ``start`` to ``end`` (both rounded down to ``step``) in UTC; a sample the
  server does not return (missing, stale, or a gap in scraping) is NaN, which every tsdiff
  detector treats as missing;
* long ranges are cut into chunks of at most :data:`MAX_POINTS` points per series (the server
  refuses more than 11,000);
* **column names**: a named query (``{"cpu": "rate(...)"}``) that returns one series is called by
  its name; otherwise each series is named by its labels in Prometheus' own notation,
  ``metric_name{label="value",...}`` with the labels sorted (``name{...}`` for a named query, the
  query's own text for an unnamed expression without labels such as ``time()``); names are stable
  across runs and servers;
* a query that returns no series is an error naming it when reading data to fit on; a watcher
  reading new rows gets its columns missing instead (see :meth:`PrometheusSource.read`);
* HTTP failures, PromQL errors and unexpected answers are :class:`~tsdiff.errors.SourceError`
  naming the query.

HTTP goes through ``requests`` (:mod:`tsdiff.sources.http`: bearer tokens, basic auth, a CA for
TLS). Times are RFC 3339 text, Unix seconds, or
relative to now (``now``, ``now-2h``, ``now-140s``); see :func:`parse_time`.
"""

from __future__ import annotations

import math
import re
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.errors import ParameterError, SourceError
from tsdiff.sources.http import Auth

#: most points per series one range query may ask for (the server's limit is 11,000)
MAX_POINTS = 10_000
#: most rows one read may produce (a week at one-second steps is 604,800)
MAX_ROWS = 2_000_000
#: seconds an instant query looks back for a series' last sample (Prometheus' default lookback)
LOOKBACK_SECONDS = 300.0
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(text: Any) -> float:
    """Seconds in a Prometheus duration (``90s``, ``1m30s``, ``2h``, ``500ms``) or a plain number."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip()
        try:
            seconds = float(raw)
        except ValueError:
            parts = _DURATION.findall(raw)
            if not parts or "".join(f"{n}{u}" for n, u in parts) != raw:
                raise ParameterError(f"{text!r} is not a duration such as 60s, 5m or 1h30m") from None
            seconds = sum(float(n) * DURATION_UNITS[u] for n, u in parts)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ParameterError(f"a duration must be positive, got {text!r}")
    return seconds


def parse_time(text: Any, now: float | None = None) -> pd.Timestamp:
    """A UTC timestamp from RFC 3339 text, Unix seconds, or ``now`` with an optional offset
    (``now-2h``, ``now-140s``, ``now+5m``)."""
    if isinstance(text, pd.Timestamp) and not pd.isna(text):
        return text.tz_localize("UTC") if text.tz is None else text.tz_convert("UTC")
    raw = str(text).strip()
    clock = time.time() if now is None else float(now)
    match = re.fullmatch(r"now(?:([+-])(.+))?", raw)
    if match:
        offset = 0.0 if match.group(1) is None else parse_duration(match.group(2))
        seconds = clock + (offset if match.group(1) == "+" else -offset)
        return pd.Timestamp(seconds, unit="s", tz="UTC")
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ParameterError(f"{text!r} is not a time (RFC 3339, Unix seconds, or now-2h)")
        return pd.Timestamp(seconds, unit="s", tz="UTC")
    try:
        stamp = pd.Timestamp(raw)
    except ValueError:
        raise ParameterError(f"{text!r} is not a time (RFC 3339, Unix seconds, or now-2h)") from None
    if pd.isna(stamp):
        raise ParameterError(f"{text!r} is not a time (RFC 3339, Unix seconds, or now-2h)")
    if stamp.tz is None:
        raise ParameterError(f"{text!r} has no time zone; write it in RFC 3339 (e.g. 2024-01-01T00:00:00Z)")
    return stamp.tz_convert("UTC")


def series_name(labels: Mapping[str, str], query_name: str | None = None) -> str:
    """A series' column name: ``metric{a="1",b="2"}`` with sorted labels (``__name__`` as the
    metric); a named query puts its name in front instead of the metric name."""
    labels = dict(labels)
    metric = labels.pop("__name__", "")
    head = query_name if query_name is not None else metric
    if not labels:
        return head or "{}"
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{head}{{{inner}}}"


_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_series_name(name: str) -> tuple[str, dict[str, str]]:
    """The head and the labels of a column named by :func:`series_name` (``metric{a="1"}`` ->
    ``("metric", {"a": "1"})``); a name that is not of that form is a head without labels."""
    text = str(name)
    if not text.endswith("}") or "{" not in text:
        return text, {}
    head, inner = text[: text.index("{")], text[text.index("{") + 1 : -1]
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(inner):
        match = _LABEL.match(inner, pos)
        if match is None:
            return text, {}
        value = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), match.group(2))
        labels[match.group(1)] = value
        pos = match.end()
    return head, labels


def common_labels(columns: Sequence[Any]) -> dict[str, str]:
    """The labels every column shares, with the same value (the monitored host's ``instance``,
    ``job``, ...): none when a column has no labels (a named query)."""
    shared: dict[str, str] | None = None
    for column in columns:
        _, labels = parse_series_name(str(column))
        shared = dict(labels) if shared is None else {k: v for k, v in shared.items() if labels.get(k) == v}
    return shared or {}


def short_name(column: Any, shared: Mapping[str, str]) -> str:
    """A column's name without the labels every column shares: ``node_load1{instance="a"}`` ->
    ``node_load1`` when ``instance="a"`` is shared."""
    head, labels = parse_series_name(str(column))
    if not labels:
        return str(column)
    rest = {k: v for k, v in labels.items() if shared.get(k) != v}
    return series_name({"__name__": head, **rest})


def is_series_selector(query: str) -> bool:
    """Whether ``query`` is a plain series selector (``name``, ``name{...}`` or ``{...}``), whose
    samples are the scraped ones, rather than an expression computed from them."""
    strings = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'
    text = re.sub(strings, '""', str(query).strip())
    return re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*\s*(\{[^{}]*\})?|\{[^{}]*\}", text) is not None


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class PrometheusSource:
    """Range queries against one Prometheus server, as a frame on a regular time grid.

    Parameters
    ----------
    url
        The server's base URL, e.g. ``http://127.0.0.1:9090``.
    queries
        PromQL queries: a list (each series named by its labels) or a mapping name -> query.
    selector
        A series selector such as ``{job="node"}`` or ``node_cpu_seconds_total``: each series it
        matches becomes a column named by its labels.
    step
        Grid spacing (a duration such as ``60s``).
    timeout
        Seconds to wait for one HTTP answer.
    auth
        Credentials and TLS trust for the server (:class:`~tsdiff.sources.http.Auth`: a bearer
        token file, a basic-auth user and password file, a CA file); the file paths, never the
        secrets, are saved with a model.
    """

    def __init__(
        self,
        url: str,
        queries: Sequence[str] | Mapping[str, str] | None = None,
        selector: str | None = None,
        step: Any = "60s",
        timeout: float = 30.0,
        auth: Auth | None = None,
    ) -> None:
        parsed = urllib.parse.urlparse(str(url))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ParameterError(f"{url!r} is not an http(s) URL of a Prometheus server")
        self.url = str(url).rstrip("/")
        if isinstance(queries, Mapping):
            named = [(str(k), str(v)) for k, v in queries.items()]
        else:
            named = [(None, str(q)) for q in (queries or [])]
        if selector:
            named.append((None, str(selector)))
        if not named:
            raise ParameterError("give at least one query or a selector")
        self.queries: list[tuple[str | None, str]] = named
        self.step = parse_duration(step)
        self.timeout = float(timeout)
        self.auth = auth or Auth()
        self._http: Any = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (saved with a model, so a watcher asks the same queries)."""
        out = {
            "url": self.url,
            "queries": [[name, query] for name, query in self.queries],
            "step": self.step,
        }
        if not self.auth.empty:
            out["auth"] = self.auth.to_dict()
        return out

    @classmethod
    def from_dict(
        cls, state: Mapping[str, Any], url: str | None = None, auth: Auth | None = None
    ) -> PrometheusSource:
        """The source a model was fitted from; ``url`` and ``auth``, when given, replace its own."""
        saved = Auth.from_dict(state.get("auth")) if auth is None or auth.empty else auth
        out = cls(url or state["url"], queries=["up"], step=state["step"], auth=saved)
        out.queries = [(None if n is None else str(n), str(q)) for n, q in state["queries"]]
        return out

    # ----------------------------------------------------------------- reading
    def complete_until(self, delay: float | None = None) -> pd.Timestamp:
        """The latest time whose rows the server will not change any more, by the server's clock.

        A row at time t holds each series' last sample at or before t, so it is complete once every
        series has a sample after t. For a series selector that is the oldest of its series'
        newest samples (a series with none in the last :data:`LOOKBACK_SECONDS`, or for a selector
        without a metric name in the last four steps, has stopped and does not hold rows back); a
        computed query's samples carry the evaluation time, so its rows are read ``delay`` seconds
        behind the server's clock (default: one step, the time a scrape takes to land).
        ``delay``, when given, also holds back the selectors' rows.
        """
        server_now = self.server_time().value / 1e9
        bound = server_now - (delay or 0.0)
        for _, query in self.queries:
            if not is_series_selector(query):
                bound = min(bound, server_now - (self.step if delay is None else delay))
                continue
            newest = self._newest_samples(query, server_now)
            if newest:
                bound = min(bound, min(newest))
            else:  # no current series: a scrape that started before now may still land
                bound = min(bound, server_now - max(self.step, delay or 0.0))
        return pd.Timestamp(round(bound * 1e9), unit="ns", tz="UTC")

    def server_time(self) -> pd.Timestamp:
        """The server's clock (a watcher never trusts its own)."""
        seconds = float(self._instant("time()", None, "time()")["result"][0])
        return pd.Timestamp(round(seconds * 1e9), unit="ns", tz="UTC")

    def _newest_samples(self, selector: str, server_now: float) -> list[float]:
        """The time of each current series' newest sample. ``timestamp()`` drops the metric name,
        so for a selector without one (``{job="node"}``: many metrics with the same other labels)
        the current series are listed by an instant query, and their newest samples read from
        their raw samples of the last few steps (of the whole lookback when one has none there)."""
        if not selector.strip().startswith("{"):
            answer = self._instant(f"timestamp({selector})", server_now, selector)["result"]
            return [float(item["value"][1]) for item in answer]

        def key(item: dict[str, Any]) -> tuple:
            return tuple(sorted(item.get("metric", {}).items()))

        current = {key(item) for item in self._instant(selector, server_now, selector)["result"]}
        newest: dict[tuple, float] = {}
        for window in (min(LOOKBACK_SECONDS, max(4 * self.step, 60.0)), LOOKBACK_SECONDS):
            answer = self._instant(f"{selector}[{window:g}s]", server_now, selector)["result"]
            newest = {
                key(item): max(float(t) for t, _ in item["values"]) for item in answer if item.get("values")
            }
            if current <= set(newest):
                break
        return [newest[k] for k in current if k in newest]

    def _instant(self, promql: str, at: Any, query: str) -> dict[str, Any]:
        params = {"query": promql} if at is None else {"query": promql, "time": str(at)}
        return self._get("/api/v1/query", params, query).get("data") or {}

    def grid(self, start: Any, end: Any) -> pd.DatetimeIndex:
        """The time grid from ``start`` to ``end`` (rounded down to the step), UTC."""
        a, b = parse_time(start), parse_time(end)
        step_ns = round(self.step * 1e9)
        first = (a.value // step_ns) * step_ns
        last = (b.value // step_ns) * step_ns
        if last < first:
            raise ParameterError(f"the end {end!r} is before the start {start!r}")
        rows = (last - first) // step_ns + 1
        if rows > MAX_ROWS:
            raise ParameterError(
                f"{start!r} .. {end!r} at a {self.step:g} s step is {rows:,} rows, more than the "
                f"{MAX_ROWS:,} one read may produce: use a larger --step, or split the range into "
                f"reads of at most {MAX_ROWS:,} rows"
            )
        return pd.DatetimeIndex(np.arange(first, last + 1, step_ns).astype("datetime64[ns]")).tz_localize(
            "UTC"
        )

    def read(self, start: Any, end: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Every series of every query between ``start`` and ``end``, one column each, on the grid.

        Without ``columns`` (reading data to fit on), a query that returns no series is a
        :class:`~tsdiff.errors.SourceError` naming it. With ``columns`` (a model's: a watcher
        reading new rows), a query without series is left out, so its columns are missing, and a
        named query that a model knows as one column but that returns several series (a label
        change, or a renamed target overlapping the old one) still gives that column: at each row,
        the value of the series whose last sample is the latest among those with a value there.
        """
        index = self.grid(start, end)
        out: dict[str, np.ndarray] = {}
        for name, query in self.queries:
            found = self._series(query, index)
            if not found and columns is None:
                raise SourceError(
                    f"no series between {index[0].isoformat()} and {index[-1].isoformat()}", query=query
                )
            _add_columns(out, name, query, found, columns)
        return _frame(out, index)

    def read_entities(
        self, start: Any, end: Any, label: str, columns: Sequence[str] | None = None
    ) -> dict[str, pd.DataFrame]:
        """The series of every query between ``start`` and ``end`` split by the value of their label
        ``label`` (a host's ``instance``, say): one frame per entity, its columns named as
        :meth:`read` names them but without that label, so every entity has the same columns. A
        series without the label belongs to no entity and is left out. ``columns`` as for
        :meth:`read` (every entity's model has the same columns); no query is refused for lack
        of series."""
        index = self.grid(start, end)
        per: dict[str, dict[str, np.ndarray]] = {}
        for name, query in self.queries:
            groups: dict[str, dict[Any, np.ndarray]] = {}
            for labels, values in self._series(query, index).items():
                entity = labels.get(label)
                if entity is not None:
                    rest = _Labels({k: v for k, v in labels.items() if k != label})
                    groups.setdefault(entity, {})[rest] = values
            for entity, found in groups.items():
                _add_columns(per.setdefault(entity, {}), name, query, found, columns)
        return {entity: _frame(out, index) for entity, out in per.items()}

    def _series(self, query: str, index: pd.DatetimeIndex) -> dict[Any, np.ndarray]:
        """Series of one query on ``index``: labels (a hashable tuple) -> values."""
        step_ns = round(self.step * 1e9)
        first = int(index[0].value)
        out: dict[Any, np.ndarray] = {}
        labels_of: dict[Any, dict[str, str]] = {}
        for lo in range(0, len(index), MAX_POINTS):
            chunk = index[lo : lo + MAX_POINTS]
            for item in self._query_range(query, chunk[0].value / 1e9, chunk[-1].value / 1e9):
                labels = {str(k): str(v) for k, v in item.get("metric", {}).items()}
                key = tuple(sorted(labels.items()))
                labels_of[key] = labels
                values = out.setdefault(key, np.full(len(index), np.nan))
                for stamp, text in item.get("values", []):
                    pos = round((float(stamp) * 1e9 - first) / step_ns)
                    if 0 <= pos < len(index):
                        values[pos] = _sample(text, query)
        return {_Labels(labels_of[key]): values for key, values in out.items()}

    def _query_range(self, query: str, start: float, end: float) -> list[dict[str, Any]]:
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{self.step:g}"}
        body = self._get("/api/v1/query_range", params, query)
        data = body.get("data") or {}
        if data.get("resultType") != "matrix":
            raise SourceError(
                f"expected a range vector (matrix), got {data.get('resultType')!r}", query=query
            )
        return list(data.get("result") or [])

    def _get(self, path: str, params: Mapping[str, str], query: str) -> dict[str, Any]:
        if self._http is None:  # made on first use: a source is built before it is read
            from tsdiff.sources.http import HttpClient

            self._http = HttpClient(self.url, self.timeout, self.auth)
        return self._http.get_json(path, params, query)


def _add_columns(
    out: dict[str, np.ndarray],
    name: str | None,
    query: str,
    found: dict[Any, np.ndarray],
    columns: Sequence[str] | None,
) -> None:
    """The columns of one query's series ``found`` (labels -> values), added to ``out``."""
    wanted = None if columns is None else {str(c) for c in columns}
    if name is not None and (len(found) == 1 or (wanted is not None and name in wanted)):
        named = {name: _overlay(list(found.values()))} if found else {}
    else:  # each series by its labels (an unnamed scalar expression by the query itself)
        named = {series_name(labels, name) if labels else query: v for labels, v in found.items()}
    for column, values in named.items():
        if column in out:
            raise SourceError(f"two series are both named {column!r}; name the queries apart", query=query)
        out[column] = values


def _frame(columns: dict[str, np.ndarray], index: pd.DatetimeIndex) -> pd.DataFrame:
    frame = pd.DataFrame(columns, index=index)
    frame.index.name = "timestamp"
    return frame


def _overlay(series: list[np.ndarray]) -> np.ndarray:
    """One column from several series of a named query: at each row, the value of the series whose
    last sample is latest among those that have a value there."""
    if len(series) == 1:
        return series[0]

    def last_sample(values: np.ndarray) -> int:
        present = np.flatnonzero(~np.isnan(values))
        return int(present[-1]) if len(present) else -1

    out = np.full(len(series[0]), np.nan)
    for values in sorted(series, key=last_sample):  # the latest series written last, over the others
        out = np.where(np.isnan(values), out, values)
    return out


class _Labels(dict):
    """A label set usable as a dict key (hashable by its sorted items)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


def _sample(text: Any, query: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise SourceError(
            f"the server returned a sample {text!r} that is not a number", query=query
        ) from None
    return value if math.isfinite(value) else math.nan  # +Inf / NaN samples carry no evidence

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
  ``metric_name{label="value",...}`` with the labels sorted (``name{...}`` for a named query);
  names are stable across runs and servers;
* HTTP failures, PromQL errors and unexpected answers are :class:`~tsdiff.errors.SourceError`
  naming the query.

Only the standard library's HTTP client is used. Times are RFC 3339 text, Unix seconds, or
relative to now (``now``, ``now-2h``, ``now-140s``); see :func:`parse_time`.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.errors import ParameterError, SourceError

#: most points per series one range query may ask for (the server's limit is 11,000)
MAX_POINTS = 10_000
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
    if isinstance(text, pd.Timestamp):
        return text.tz_localize("UTC") if text.tz is None else text.tz_convert("UTC")
    raw = str(text).strip()
    clock = time.time() if now is None else float(now)
    match = re.fullmatch(r"now(?:([+-])(.+))?", raw)
    if match:
        offset = 0.0 if match.group(1) is None else parse_duration(match.group(2))
        seconds = clock + (offset if match.group(1) == "+" else -offset)
        return pd.Timestamp(seconds, unit="s", tz="UTC")
    try:
        return pd.Timestamp(float(raw), unit="s", tz="UTC")
    except ValueError:
        pass
    try:
        stamp = pd.Timestamp(raw)
    except ValueError:
        raise ParameterError(f"{text!r} is not a time (RFC 3339, Unix seconds, or now-2h)") from None
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
    """

    def __init__(
        self,
        url: str,
        queries: Sequence[str] | Mapping[str, str] | None = None,
        selector: str | None = None,
        step: Any = "60s",
        timeout: float = 30.0,
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (saved with a model, so a watcher asks the same queries)."""
        return {
            "url": self.url,
            "queries": [[name, query] for name, query in self.queries],
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any], url: str | None = None) -> PrometheusSource:
        out = cls(url or state["url"], queries=["up"], step=state["step"])
        out.queries = [(None if n is None else str(n), str(q)) for n, q in state["queries"]]
        return out

    # ----------------------------------------------------------------- reading
    def complete_until(self, delay: float | None = None) -> pd.Timestamp:
        """The latest time whose rows the server will not change any more, by the server's clock.

        A row at time t holds each series' last sample at or before t, so it is complete once every
        series has a sample after t. For a series selector that is the oldest of its series'
        newest samples (a series with none in the last :data:`LOOKBACK_SECONDS` has stopped and
        does not hold rows back); a computed query's samples carry the evaluation time, so its rows
        are read ``delay`` seconds behind the server's clock (default: one step, the time a scrape
        takes to land). ``delay``, when given, also holds back the selectors' rows.
        """
        server_now = self._instant("time()", None, "time()")["result"][0]
        bound = float(server_now) - (delay or 0.0)
        for _, query in self.queries:
            if not is_series_selector(query):
                bound = min(bound, float(server_now) - (self.step if delay is None else delay))
                continue
            newest = self._instant(f"timestamp({query})", server_now, query)["result"]
            if newest:
                bound = min(bound, min(float(item["value"][1]) for item in newest))
            else:  # no current series: a scrape that started before now may still land
                bound = min(bound, float(server_now) - max(self.step, delay or 0.0))
        return pd.Timestamp(round(bound * 1e9), unit="ns", tz="UTC")

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
        return pd.DatetimeIndex(np.arange(first, last + 1, step_ns).astype("datetime64[ns]")).tz_localize(
            "UTC"
        )

    def read(self, start: Any, end: Any) -> pd.DataFrame:
        """Every series of every query between ``start`` and ``end``, one column each, on the grid."""
        index = self.grid(start, end)
        columns: dict[str, np.ndarray] = {}
        for name, query in self.queries:
            found = self._series(query, index)
            if name is not None and len(found) == 1:
                found = {name: next(iter(found.values()))}
            else:
                found = {series_name(labels, name): values for labels, values in found.items()}
            for column, values in found.items():
                if column in columns:
                    raise SourceError(
                        f"two series are both named {column!r}; name the queries apart", query=query
                    )
                columns[column] = values
        frame = pd.DataFrame(columns, index=index)
        frame.index.name = "timestamp"
        return frame

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
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            problem = _error_text(raw) or f"HTTP {exc.code} {exc.reason}"
            raise SourceError(f"{self.url} refused the query: {problem}", query=query) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SourceError(f"cannot reach {self.url}: {reason}", query=query) from None
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise SourceError(f"{self.url} did not answer with JSON", query=query) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise SourceError(f"{self.url}: {_error_text(raw) or 'the query failed'}", query=query)
        return body


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


def _error_text(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw[:200].decode("utf-8", "replace").strip()
    if isinstance(body, dict) and body.get("error"):
        kind = body.get("errorType")
        return f"{kind}: {body['error']}" if kind else str(body["error"])
    return ""

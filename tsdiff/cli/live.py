"""The live commands: ``stream`` (CSV rows on stdin, JSON lines or Alertmanager alerts out) and
``watch`` (a Prometheus server polled, scored and served at ``/metrics``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tsdiff.cli.common import EXIT_ANOMALY, EXIT_OK, auth_from, progress, quieted
from tsdiff.errors import ParameterError


def run_stream(args: argparse.Namespace) -> int:
    import csv

    import tsdiff
    from tsdiff.errors import InputError
    from tsdiff.stream import StreamScorer

    detector = quieted(tsdiff.load(args.model))
    rules = None
    if args.merge_gap is not None:
        from tsdiff.segmentation import SegmentRules

        step = None if args.freq is None else _freq_seconds(args.freq)
        rules = SegmentRules().with_merge_gap(args.merge_gap, step)
    scorer = StreamScorer(
        detector,
        provisional=args.provisional,
        freq=args.freq,
        tolerance=args.tolerance,
        adapt=args.adapt,
        segmentation=rules,
    )
    reader = csv.reader(sys.stdin, delimiter=args.sep)
    header = next(reader, None)
    if header is None:
        raise InputError("no CSV header on stdin")
    if header:  # a byte-order mark (a file saved by a spreadsheet) is not part of the first name
        header[0] = header[0].removeprefix("\ufeff")
    _check_stream_header(header, detector, args)
    labels = {"model": str(args.model), **parse_labels(args.label)}
    poster = None
    if args.alertmanager is not None:
        from tsdiff.alerting import AlertmanagerPoster

        poster = AlertmanagerPoster(args.alertmanager, labels)
    try:
        return _stream_rows(args, reader, header, scorer, labels, poster)
    finally:
        if poster is not None:
            poster.close()


def _stream_rows(
    args: argparse.Namespace, reader: Any, header: list[str], scorer: Any, labels: dict, poster: Any
) -> int:
    import json

    import pandas as pd

    from tsdiff.errors import InputError
    from tsdiff.serialize import json_ready
    from tsdiff.tableio import set_time_index

    anomalies, scored, lines = 0, 0, 0
    last_final = None
    from tsdiff.incidents import alertmanager_alert

    def emit(out: pd.DataFrame, changes: list) -> None:
        nonlocal anomalies, scored, last_final
        for ts, row in out.iterrows():
            record = {"time": ts.isoformat() if hasattr(ts, "isoformat") else json_ready(ts)}
            record.update({k: json_ready(v) for k, v in row.items()})
            if record.get("final"):
                anomalies += int(record["label"] == 1)
                scored += 1
                last_final = ts
            if not args.incidents:
                sys.stdout.write(json.dumps(record) + "\n")
        if args.incidents:
            for _, incident in changes:
                sys.stdout.write(json.dumps(alertmanager_alert(incident, labels)) + "\n")
        sys.stdout.flush()
        if poster is not None:
            poster.update(changes)

    for line_no, cells in enumerate(reader, start=2):
        if not cells:
            continue
        lines += 1
        if len(cells) != len(header):
            sys.stderr.write(
                f"tsdiff: line {line_no}: {len(cells)} fields, expected {len(header)}; skipped\n"
            )
            continue
        try:
            frame = set_time_index(
                pd.DataFrame([cells], columns=header),
                args.time_column,
                f"line {line_no}",
                time_unit=args.time_unit,
                time_format=args.time_format,
            )
            out = scorer.update(_numeric_cells(frame))
            emit(out, scorer.changes)
        except InputError as exc:  # one bad line must not stop a monitor: report it and go on
            where = f"line {line_no}: "
            sys.stderr.write(f"tsdiff: {'' if str(exc).startswith(where) else where}{exc}; skipped\n")
    out = scorer.flush()
    emit(out, scorer.changes)
    if last_final is not None:  # the end of the input ends an incident still open
        emit(out.iloc[:0], scorer.incidents.close(last_final))
    if lines and not scored:
        sys.stderr.write(
            f"tsdiff: {lines} row(s) read, none scored: the model needs at least {scorer.min_rows} rows\n"
        )
    return EXIT_ANOMALY if args.fail_on_anomaly and anomalies else EXIT_OK


def _check_stream_header(header: list[str], detector: object, args: argparse.Namespace) -> None:
    """Refuse (exit 2) a header that cannot be the model's: a data line, other columns, another
    separator. Checked once, so a monitor is never left skipping every line in silence."""
    from tsdiff.errors import ColumnMismatchError, InputError
    from tsdiff.tableio import find_time_column

    def number(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    if header and sum(number(c) for c in header) > len(header) // 2:
        raise InputError(
            "the first line holds numbers, not column names: the CSV header is missing "
            "(tail -n +1 -f FILE keeps it; tail -n N drops it)"
        )
    time_column = find_time_column(header, args.time_column, "the CSV header")
    names = [c for c in header if c != time_column]
    if not detector.columns_named_:  # type: ignore[attr-defined]
        if len(names) != detector.n_features_in_:  # type: ignore[attr-defined]
            raise InputError(
                f"the CSV header has {len(names)} metric columns; the model has {detector.n_features_in_}"
            )  # type: ignore[attr-defined]
        return
    expected = [str(c) for c in detector.feature_names_in_]  # type: ignore[attr-defined]
    missing = [c for c in expected if c not in names]
    extra = [c for c in names if c not in expected]
    if missing or extra:
        hint = ""
        if len(header) == 1 and args.sep == "," and any(sep in header[0] for sep in ";\t|"):
            hint = " (is the separator another one? --sep)"
        raise (
            ColumnMismatchError(missing=missing, extra=extra)
            if not hint
            else InputError(f"the CSV header {header[0]!r} is one column{hint}")
        )


def _numeric_cells(frame: object) -> object:
    """One CSV row of text cells as numbers: an empty cell is missing, anything else must parse."""
    from tsdiff.errors import NonNumericColumnError

    out = frame.copy()  # type: ignore[attr-defined]
    for column in out.columns:
        cell = str(out[column].iloc[0]).strip()
        if cell == "" or cell.lower() == "nan":
            out[column] = float("nan")
            continue
        try:
            out[column] = float(cell)
        except ValueError:
            raise NonNumericColumnError(
                f"column {column!r} holds {cell!r}, not a number", column=column
            ) from None
    return out


def run_watch(args: argparse.Namespace) -> int:
    """Poll, score and serve until SIGTERM/SIGINT (or ``--until``); the state is saved after every poll."""
    import math
    import signal
    import threading
    from pathlib import Path

    import tsdiff
    from tsdiff.sources.prometheus import PrometheusSource
    from tsdiff.watch import Watcher, serve

    detector = quieted(tsdiff.load(args.model))
    if getattr(detector, "source_", None) is None:
        raise ParameterError(
            f"the model in {args.model} was not fitted from Prometheus (tsdiff fit --prometheus)"
        )
    source = PrometheusSource.from_dict(detector.source_, url=args.prometheus, auth=auth_from(args))
    host, port = listen_address(args.listen)
    if args.interval is not None and not (math.isfinite(args.interval) and args.interval > 0):
        raise ParameterError(f"--interval must be a positive number of seconds, got {args.interval!r}")
    model = Path(args.model)
    state = args.state or str(model.parent / f"{model.name}.watch-state.json")
    with Watcher(
        detector,
        source,
        state_path=state,
        output=args.output,
        start=args.start,
        delay=args.delay,
        batch=args.batch,
        top_k=args.top_k,
        adapt=args.adapt,
        refit_after=args.refit_after,
        refit_every=args.refit_every,
        refit_window=args.refit_window,
        labels=parse_labels(args.label),
        merge_gap=args.merge_gap,
        warm_start=not args.cold_start,
    ) as watcher:
        server = serve(watcher, host, port)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        address = f"{host}:{server.server_address[1]}"  # the port the system gave, with --listen HOST:0
        progress(f"tsdiff watch: {type(detector).__name__} on {source.url}, serving http://{address}/metrics")
        try:
            watcher.run(stop, until=args.until, interval=args.interval)
        finally:
            server.shutdown()
            server.server_close()
    progress(f"tsdiff watch: stopped after {watcher.rows_scored} scored rows; state in {state}")
    return EXIT_OK


def _freq_seconds(freq: str) -> float | None:
    """Seconds between rows of a ``--freq`` (None for one that is not fixed, like a month; the
    stream refuses a frequency it cannot read)."""
    import pandas as pd

    try:
        return pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).total_seconds()
    except (ValueError, TypeError):
        return None


def parse_labels(texts: list[str]) -> dict[str, str]:
    """``--label KEY=VALUE`` options as a mapping (the watcher checks the names)."""
    labels = {}
    for text in texts:
        key, sep, value = str(text).partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--label takes KEY=VALUE, got {text!r}")
        labels[key.strip()] = value
    return labels


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (port 0: one the system picks) as a host and a port number."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ParameterError(f"--listen must be HOST:PORT with a port from 0 to 65535, got {text!r}")
    return host.strip("[]"), int(port)

"""``tsdiff fleet fit`` and ``tsdiff fleet score``: the fleet from the command line.

Exit codes add to those of ``tsdiff``: 4 when some entities failed (the others' results are
written; each failure is listed on stderr and, with ``--failures``, in a CSV file), and 5 when, on
top of that, ``score --fail-on-anomaly`` found anomalies (1 + 4).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

from tsdiff.cli.common import add_adapt, add_auth, add_cold_start, add_merge_gap, auth_from
from tsdiff.errors import ParameterError
from tsdiff.fleet.pooling import THRESHOLD_RULES

EXIT_ENTITIES_FAILED = 4
#: failures listed one per line on stderr; the rest are counted (all of them go to --failures)
SHOWN_FAILURES = 20
DEFAULT_DETECTOR = "kmeans"


def add_fleet_parser(sub: Any, detectors: list[str], add_preset: Callable[..., None]) -> None:
    """Add ``fleet fit`` and ``fleet score`` to the ``tsdiff`` sub-commands (``add_preset(parser,
    default)`` adds the ``--preset`` option as the other commands have it)."""
    fleet = sub.add_parser("fleet", help="one model per entity (host) of a long table, on a Dask cluster")
    commands = fleet.add_subparsers(dest="fleet_command", required=True)

    fit = commands.add_parser("fit", help="fit one detector per entity and save each under a model directory")
    fit.add_argument(
        "data", nargs="?", help="CSV or Parquet long table: entity, timestamp, one column per metric"
    )
    prom = fit.add_argument_group("reading the fleet from Prometheus instead of a file")
    prom.add_argument("--prometheus", metavar="URL", help="base URL of the Prometheus server")
    prom.add_argument("--query", action="append", default=[], help="a PromQL query (repeatable); NAME=QUERY")
    prom.add_argument("--selector", help="a series selector, e.g. '{job=\"node\"}'")
    prom.add_argument(
        "--entity-label",
        help="the label that tells the hosts apart (e.g. instance); dropped from the columns",
    )
    prom.add_argument("--start", help="first time: RFC 3339, Unix seconds, or now-7d")
    prom.add_argument("--end", default="now", help="last time (default now)")
    prom.add_argument("--step", default="60s", help="row spacing (default 60s)")
    add_auth(fit)
    fit.add_argument("-o", "--output", required=True, help="fleet model directory to write (or update)")
    fit.add_argument(
        "--detector",
        choices=detectors,
        default=DEFAULT_DETECTOR,
        help=f"detector fitted per entity (default: {DEFAULT_DETECTOR}: seconds per entity; hybrid: minutes)",
    )
    add_preset(fit, "default")
    fit.add_argument("--random-state", type=int, default=0, help="seed of every host's model")
    fit.add_argument(
        "--threshold",
        choices=THRESHOLD_RULES,
        default="auto",
        help="each host's alert threshold: auto (default: hosts with too few held-out rows for a fitted "
        "tail take one pooled over the fleet), pooled (every host), host (each its own)",
    )
    fit.add_argument(
        "--risk",
        type=float,
        help="share of a host's normal rows that may be flagged (default: the detector's, 0.001); a fleet "
        "of N hosts expects N x risk flagged rows per step",
    )
    _common(fit, entity="entity", time="a column named timestamp, time, date or datetime, else none")

    score = commands.add_parser("score", help="score each entity with its own saved model")
    score.add_argument("model", help="fleet model directory written by 'tsdiff fleet fit'")
    score.add_argument("data", help="CSV or Parquet long table with the same columns")
    score.add_argument("-o", "--output", required=True, help="CSV or Parquet file of scores (by suffix)")
    score.add_argument("--top-k", type=int, default=3, help="metrics named per event")
    score.add_argument(
        "--fail-on-anomaly", action="store_true", help="exit with 1 (5 with failures) when any row is flagged"
    )
    fitted = "the one the fleet was fitted with"
    _common(score, entity=fitted, time=fitted)

    watch = commands.add_parser(
        "watch", help="score every host of a fleet fitted from Prometheus as rows arrive; serve /metrics"
    )
    watch.add_argument("model", help="fleet model directory written by 'tsdiff fleet fit --prometheus'")
    watch.add_argument(
        "--prometheus", metavar="URL", help="the server to read (default: the one fitted from)"
    )
    add_auth(watch)
    watch.add_argument("--listen", default="127.0.0.1:19108", help="HOST:PORT serving /metrics and /healthz")
    watch.add_argument("--state", help="state file (default: beside the model directory)")
    watch.add_argument("--output", help="also append every host's final rows as JSON lines to this file")
    watch.add_argument("--start", default="now", help="first row when there is no state (default now)")
    watch.add_argument("--until", help="stop after scoring the rows up to this time (a replay)")
    watch.add_argument("--delay", help="read this far behind the server's clock (default: complete rows)")
    watch.add_argument("--interval", type=float, help="seconds between polls (default: the step)")
    watch.add_argument("--batch", type=int, default=1440, help="most rows one poll reads (default 1440)")
    watch.add_argument(
        "--top-k", type=int, default=3, help="root causes exported per open incident (default 3)"
    )
    watch.add_argument(
        "--workers",
        type=int,
        default=0,
        help="score the hosts on this many local Dask worker processes (default 0: in this process)",
    )
    watch.add_argument(
        "--scheduler", help="score the hosts on the workers of this Dask scheduler (tcp://host:8786)"
    )
    watch.add_argument(
        "--fit-new-after",
        metavar="DURATION",
        help="fit a model for a host without one once it has this much history (e.g. 1d); default: report it",
    )
    add_merge_gap(watch, "(a duration becomes rows of the fleet's step)")
    watch.add_argument(
        "--refit-every",
        metavar="DURATION",
        help="refit every host's model in the background on a schedule, every DURATION of rows (e.g. 7d); "
        "the refitted models are kept beside the state",
    )
    watch.add_argument(
        "--refit-window", default="1d", metavar="DURATION", help="rows each refit learns from (default 1d)"
    )
    add_cold_start(watch)
    add_adapt(watch)


def _common(parser: argparse.ArgumentParser, entity: str, time: str) -> None:
    parser.add_argument("--entity-column", help=f"column naming the entity (default: {entity})")
    parser.add_argument("--time-column", help=f"column holding the timestamps (default: {time})")
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes (default 2)")
    parser.add_argument("--threads-per-worker", type=int, default=1, help="threads of each local worker")
    parser.add_argument(
        "--scheduler", help="address of a running Dask scheduler (tcp://host:8786) instead of a local cluster"
    )
    parser.add_argument("--failures", help="also write the failed entities and their errors to this CSV")


def _progress(message: str) -> None:
    """A progress line on stderr (none with ``-q``)."""
    from tsdiff.cli.common import progress

    progress(message)


def _failure(message: str) -> None:
    """A failure line on stderr (``-q`` too: it is an error)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _read(path: str, time_column: str | None) -> Any:
    """The long table, with its time column parsed (the column stays a column)."""
    import pandas as pd

    from tsdiff.tableio import read_table

    frame = read_table(path, time_column)
    return frame if isinstance(frame.index, pd.RangeIndex) else frame.reset_index()


def _time_column(data: Any, given: str | None) -> str | None:
    """``given``, or the first column named timestamp, time, date or datetime (in any place: the
    entity usually comes first in a long table), or None (each entity's rows in file order)."""
    from tsdiff.tableio import TIME_NAMES

    if given is not None:
        return given
    found = next((c for c in data.columns if str(c).strip().lower() in TIME_NAMES), None)
    _progress(
        f"tsdiff fleet: timestamps from column {found!r}"
        if found is not None
        else "tsdiff fleet: no time column (timestamp, time, date or datetime): rows taken in file order"
    )
    return found


def _cluster(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "address": args.scheduler,
        "n_workers": args.workers,
        "threads_per_worker": args.threads_per_worker,
    }


def _report(result: Any, args: argparse.Namespace, what: str, seconds: float) -> int:
    failed = result.failed
    n = len(result.entities)
    where = args.scheduler or f"{args.workers} local workers"
    _progress(f"tsdiff fleet {what}: {n - len(failed)} of {n} entities in {seconds:.1f}s ({where})")
    pool = result.threshold_pool
    if pool is not None:
        _progress(
            f"tsdiff fleet {what}: {pool['takers']} of {pool['hosts']} hosts take the threshold pooled "
            f"over the fleet ({pool['rule']}, risk {pool['risk']:g})"
        )
    for entity, error in failed.head(SHOWN_FAILURES).itertuples(index=False):
        _failure(f"tsdiff fleet {what}: failed: {entity}: {error}")
    if len(failed) > SHOWN_FAILURES:
        _failure(f"tsdiff fleet {what}: ... and {len(failed) - SHOWN_FAILURES} more failures")
    if args.failures:
        failed.to_csv(args.failures, index=False)
    return EXIT_ENTITIES_FAILED if len(failed) else 0


def run_fleet(args: argparse.Namespace) -> int:
    """Run ``tsdiff fleet fit|score``; returns the exit code."""
    from tsdiff.fleet.runner import fit_fleet, score_fleet

    started = time.perf_counter()
    if args.fleet_command == "watch":
        return _watch(args)
    if args.fleet_command == "fit":
        from tsdiff.registry import build

        detector = build(args.detector, args.preset, random_state=args.random_state)
        if args.risk is not None:
            detector.set_params(risk=args.risk)
        if args.prometheus is not None:
            return _fit_from_prometheus(args, detector, started)
        if args.data is None:
            raise ParameterError("give a long table, or --prometheus URL with --entity-label and --start")
        entity_col = args.entity_column or "entity"
        data = _read(args.data, args.time_column)
        time_col = _time_column(data, args.time_column)
        _progress(f"tsdiff fleet fit: {len(data)} rows from {args.data}; {args.detector} per entity")
        result = fit_fleet(
            data,
            detector,
            args.output,
            entity_col=entity_col,
            time_col=time_col,
            threshold=args.threshold,
            **_cluster(args),
        )
        return _report(result, args, f"fit (models in {args.output})", time.perf_counter() - started)

    from tsdiff.fleet.storage import read_index
    from tsdiff.tableio import write_table

    index = read_index(args.model)
    entity_col = args.entity_column or index["entity_column"]
    data = _read(args.data, args.time_column)
    time_col = _time_column(data, args.time_column or index.get("time_column"))
    result = score_fleet(
        data, args.model, entity_col=entity_col, time_col=time_col, top_k=args.top_k, **_cluster(args)
    )
    scores = result.scores
    write_table(scores.set_index([c for c in (entity_col, time_col) if c is not None]), args.output)
    flagged = int(scores["label"].sum()) if len(scores) else 0
    code = _report(
        result, args, f"score ({flagged} anomalous rows; wrote {args.output})", time.perf_counter() - started
    )
    return code | (1 if args.fail_on_anomaly and flagged else 0)


def _fit_from_prometheus(args: argparse.Namespace, detector: Any, started: float) -> int:
    from tsdiff.cli.batch import parse_queries
    from tsdiff.fleet.live import fit_fleet_from_prometheus
    from tsdiff.sources.prometheus import PrometheusSource

    if args.data is not None:
        raise ParameterError("give a long table or --prometheus, not both")
    if args.entity_label is None or args.start is None:
        raise ParameterError("--prometheus needs --entity-label (e.g. instance) and --start (e.g. now-7d)")
    source = PrometheusSource(
        args.prometheus,
        parse_queries(args.query),
        selector=args.selector,
        step=args.step,
        auth=auth_from(args),
    )
    _progress(f"tsdiff fleet fit: reading {args.prometheus} by {args.entity_label}; {args.detector} per host")
    result = fit_fleet_from_prometheus(
        source,
        args.entity_label,
        args.start,
        args.end,
        detector,
        args.output,
        threshold=args.threshold,
        **_cluster(args),
    )
    return _report(result, args, f"fit (models in {args.output})", time.perf_counter() - started)


def _watch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tsdiff.cli.live import listen_address

    host, port = listen_address(args.listen)
    model = Path(args.model)
    state = args.state or str(model.parent / f"{model.name}.fleet-watch-state.json")
    if args.workers < 0:
        raise ParameterError(f"--workers must be >= 0, got {args.workers}")
    with contextlib.ExitStack() as stack:
        client = None
        if args.scheduler or args.workers:
            from tsdiff.fleet.cluster import fleet_client

            client = stack.enter_context(fleet_client(address=args.scheduler, n_workers=args.workers or 1))
        return _watch_with(args, model, state, client, host, port)


def _watch_with(args: argparse.Namespace, model: Any, state: str, client: Any, host: str, port: int) -> int:
    import signal
    import threading

    from tsdiff.fleet.watch import FleetWatcher
    from tsdiff.watch import serve

    with FleetWatcher(
        args.model,
        state_path=state,
        output=args.output,
        start=args.start,
        delay=args.delay,
        batch=args.batch,
        top_k=args.top_k,
        fit_new_after=args.fit_new_after,
        merge_gap=args.merge_gap,
        refit_every=args.refit_every,
        refit_window=args.refit_window,
        warm_start=not args.cold_start,
        adapt=args.adapt,
        url=args.prometheus,
        auth=auth_from(args),
        client=client,
    ) as watcher:
        server = serve(watcher, host, port)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        address = f"{host}:{server.server_address[1]}"
        where = "" if client is None else f" on {len(client.scheduler_info()['workers'])} Dask workers"
        _progress(
            f"tsdiff fleet watch: {len(watcher.hosts)} hosts by {watcher.label} on {watcher.source.url}"
            f"{where}, serving http://{address}/metrics"
        )
        try:
            watcher.run(stop, until=args.until, interval=args.interval)
        finally:
            server.shutdown()
            server.server_close()
    _progress(f"tsdiff fleet watch: stopped after {watcher.rows_scored} scored rows; state in {state}")
    return 0

"""The ``tsdiff`` command line.

Exit codes scripts can rely on: 0 success, 1 anomalies found (only with ``--fail-on-anomaly``),
2 bad input or usage (a one-line message on stderr), 3 an unexpected internal error; ``tsdiff fleet``
adds 4 (some entities failed, the others' results written) and 5 (4, and anomalies found).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from tsdiff._version import __version__
from tsdiff.errors import ParameterError, TsdiffError
from tsdiff.registry import DETECTORS, preset_names

EXIT_OK, EXIT_ANOMALY, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
BASELINES = ("pca", "iforest", "kmeans")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors: one line, exit 2
        sys.stderr.write(f"tsdiff: error: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tsdiff", description="Multivariate time-series anomaly detection.")
    parser.add_argument("--version", action="version", version=f"tsdiff {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details on stderr")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress messages or bars on stderr (errors still)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="fit and evaluate on the bundled SMD machine (no download)")
    demo.add_argument(
        "--detector",
        choices=list(DETECTORS),
        default="hybrid",
        help="the detector to run (default: hybrid, diffusion and causal models fused)",
    )
    _preset(
        demo,
        "quick",
        "quick: shorter diffusion training and one-step scoring (about 2 minutes on 2 cores); "
        "default: the library defaults (about 5 minutes)",
    )
    demo.add_argument(
        "--no-baselines", action="store_true", help="skip the PCA, IsolationForest and KMeans yardsticks"
    )
    demo.add_argument("--plot", default="tsdiff-demo.png", help="PNG written with metrics, scores and events")
    demo.add_argument("--no-plot", action="store_true", help="write no plot")
    demo.add_argument("--random-state", type=int, default=0)
    demo.add_argument("--events", type=int, default=5, help="how many of the largest events to list")

    fit = sub.add_parser(
        "fit", help="fit a detector on normal data (a file, or a Prometheus server) and save it"
    )
    fit.add_argument("data", nargs="?", help="CSV or Parquet file of metrics (one row per timestamp)")
    prom = fit.add_argument_group("reading from Prometheus instead of a file")
    prom.add_argument(
        "--prometheus", metavar="URL", help="base URL of a Prometheus server, e.g. http://127.0.0.1:9090"
    )
    prom.add_argument(
        "--query", action="append", default=[], help="a PromQL query (repeatable); NAME=QUERY names it"
    )
    prom.add_argument(
        "--selector", help="a series selector whose every series becomes a column, e.g. '{job=\"node\"}'"
    )
    prom.add_argument("--start", help="first time: RFC 3339, Unix seconds, or now-2h")
    prom.add_argument("--end", default="now", help="last time (default now)")
    prom.add_argument("--step", default="60s", help="row spacing (default 60s)")
    fit.add_argument("-o", "--output", required=True, help="model directory to write")
    fit.add_argument("--detector", choices=list(DETECTORS), default="hybrid")
    _preset(fit, "default")
    fit.add_argument("--random-state", type=int, default=0)
    _time_column(fit)

    score = sub.add_parser("score", help="score a file with a saved model; one output row per input row")
    score.add_argument("model", help="model directory written by 'tsdiff fit'")
    score.add_argument("data", help="CSV or Parquet file with the model's metric columns")
    score.add_argument("-o", "--output", required=True, help="CSV or Parquet file to write (by suffix)")
    score.add_argument("--feature-scores", action="store_true", help="also write per-metric scores")
    _time_column(score)
    _fail_on_anomaly(score)

    stream = sub.add_parser(
        "stream", help="score CSV rows from stdin; one JSON line per scored row on stdout"
    )
    stream.add_argument("model", help="model directory written by 'tsdiff fit'")
    stream.add_argument(
        "--provisional", action="store_true", help="also emit an immediate provisional score per row"
    )
    stream.add_argument(
        "--freq", help="expected spacing of the timestamps (e.g. 1min): gaps become empty rows"
    )
    stream.add_argument(
        "--incidents",
        action="store_true",
        help="write Alertmanager alerts (JSON lines) when an incident opens and resolves, not rows",
    )
    stream.add_argument(
        "--tolerance",
        type=float,
        default=0.1,
        help="with --freq: share of a step a timestamp may be off the grid and still be moved onto it "
        "(default 0.1); a row farther off is reported and skipped",
    )
    _time_column(stream)
    _fail_on_anomaly(stream)

    watch = sub.add_parser(
        "watch", help="score a Prometheus server's metrics as they arrive; serve /metrics for Prometheus"
    )
    watch.add_argument("model", help="model directory written by 'tsdiff fit --prometheus'")
    watch.add_argument(
        "--prometheus", metavar="URL", help="the server to read (default: the one fitted from)"
    )
    watch.add_argument("--listen", default="127.0.0.1:9108", help="HOST:PORT serving /metrics and /healthz")
    watch.add_argument(
        "--state", help="state file, written after every poll and resumed from (default: beside the model)"
    )
    watch.add_argument("--output", help="also append every final row as a JSON line to this file")
    watch.add_argument(
        "--start", default="now", help="first row when there is no state to resume (default now)"
    )
    watch.add_argument("--until", help="stop after scoring the rows up to this time (a replay)")
    watch.add_argument(
        "--delay",
        help="read this far behind the server's clock (default: the rows of series selectors once every "
        "series has a later sample, so they are complete; computed queries one step behind)",
    )
    watch.add_argument("--interval", type=float, help="seconds between polls (default: the model's step)")
    watch.add_argument("--batch", type=int, default=1440, help="most rows one poll reads (default 1440)")

    explain = sub.add_parser(
        "explain", help="explain an event of a causal or hybrid model: ranked metrics, roles, subgraph"
    )
    explain.add_argument("model", help="model directory written by 'tsdiff fit' (causal or hybrid)")
    explain.add_argument("data", help="CSV or Parquet file with the model's metric columns")
    which = explain.add_mutually_exclusive_group()
    which.add_argument("--event", type=int, help="number of the event to explain (0 = first; -1 = last)")
    which.add_argument("--start", help="explain the rows from this index label on (with --end)")
    explain.add_argument("--end", help="last row to explain (index label, inclusive; with --start)")
    explain.add_argument("--plot", help="PNG written with the event's causal subgraph")
    explain.add_argument("--dot", help="file written with the event's causal subgraph in Graphviz DOT")
    explain.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    _time_column(explain)

    evaluate = sub.add_parser("evaluate", help="compare scores with labels (VUS-PR, AUC-PR, F1 ...)")
    evaluate.add_argument("scores", help="file written by 'tsdiff score' (columns score and label)")
    evaluate.add_argument("labels", help="file with a 0/1 label column, one row per scored row")
    evaluate.add_argument("--label-column", default="label")
    evaluate.add_argument("--sliding-window", type=int, help="VUS window (default: chosen from the data)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    _time_column(evaluate)

    from tsdiff.fleet.cli import add_fleet_parser

    add_fleet_parser(sub, list(DETECTORS), _preset)
    return parser


def _preset(parser: argparse.ArgumentParser, default: str, help: str = "") -> None:
    parser.add_argument(
        "--preset",
        choices=preset_names(),
        default=default,
        help=help
        or "the detector's preset (see tsdiff.registry); a detector without a quick preset of its own "
        "is quick with its defaults",
    )


def _time_column(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--time-column",
        help="column holding the timestamps (default: a first column named timestamp, time, date or "
        "datetime, else none)",
    )
    parser.add_argument(
        "--time-unit",
        choices=("s", "ms", "us", "ns"),
        help="the time column holds epoch numbers in this unit (numbers are never taken as times without it)",
    )
    parser.add_argument(
        "--time-format",
        help="strftime pattern of text times that are not ISO 8601, e.g. '%%d/%%m/%%Y %%H:%%M' (no day/month "
        "guessing)",
    )
    parser.add_argument("--sep", default=",", help="CSV field separator (default ',')")


def _read_prometheus(args: argparse.Namespace) -> tuple[object, object]:
    """The source and the frame ``fit --prometheus`` asks for."""
    from tsdiff.sources.prometheus import PrometheusSource

    if args.start is None:
        raise ParameterError("--prometheus needs --start (e.g. now-7d)")
    queries: dict[str, str] | list[str] = [q for q in args.query if "=" not in q.split("{")[0]]
    named = {q.split("=", 1)[0]: q.split("=", 1)[1] for q in args.query if "=" in q.split("{")[0]}
    if named:
        if queries:
            raise ParameterError("name every --query (NAME=QUERY) or none")
        queries = named
    source = PrometheusSource(args.prometheus, queries, selector=args.selector, step=args.step)
    return source, source.read(args.start, args.end)


def _read(path: str, args: argparse.Namespace) -> object:
    from tsdiff.tableio import read_table

    return read_table(
        path, args.time_column, sep=args.sep, time_unit=args.time_unit, time_format=args.time_format
    )


def _fail_on_anomaly(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fail-on-anomaly", action="store_true", help="exit with 1 when any row is labelled anomalous"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tsdiff`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    global _QUIET
    _QUIET = bool(args.quiet)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "demo":
            return run_demo(args)
        if args.command == "fit":
            return run_fit(args)
        if args.command == "score":
            return run_score(args)
        if args.command == "stream":
            return run_stream(args)
        if args.command == "explain":
            return run_explain(args)
        if args.command == "watch":
            return run_watch(args)
        if args.command == "evaluate":
            return run_evaluate(args)
        if args.command == "fleet":
            from tsdiff.fleet.cli import run_fleet

            return run_fleet(args)
    except TsdiffError as exc:
        sys.stderr.write(f"tsdiff: error: {exc}\n")
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader went away (e.g. `tsdiff ... | head`): not a failure of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except OSError as exc:  # a missing file, no permission, a full disk: the user's to fix
        where = f": {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"tsdiff: error: {exc.strerror or exc}{where}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("tsdiff: interrupted\n")
        return 130
    except Exception as exc:  # an internal error must not read as "anomalies found" (exit 1)
        if args.verbose:
            logging.getLogger("tsdiff").exception("internal error")
        sys.stderr.write(f"tsdiff: internal error: {type(exc).__name__}: {exc}\n")
        return EXIT_INTERNAL
    parser.error(f"unknown command {args.command!r}")
    return EXIT_BAD_INPUT


_QUIET = False


def _quieted(detector: object) -> object:
    """With ``--quiet``, ``detector`` and its components draw no progress bars."""
    from tsdiff.errors import NotFittedError

    if _QUIET:
        try:
            parts = [detector, *detector.fitted_components().values()]  # type: ignore[attr-defined]
        except NotFittedError:
            parts = [detector]
        for part in parts:
            if "verbose" in part.get_params(deep=False):  # type: ignore[attr-defined]
                part.set_params(verbose=False)  # type: ignore[attr-defined]
    return detector


def _progress(message: str) -> None:
    if _QUIET:
        return
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run_demo(args: argparse.Namespace) -> int:
    from tsdiff.datasets import load_bundled
    from tsdiff.metrics import choose_sliding_window, evaluate
    from tsdiff.registry import build

    _progress("tsdiff demo: loading the bundled data (SMD machine-1-2) ...")
    data = load_bundled()
    window = choose_sliding_window(data.test.to_numpy())
    (n_train, n_metrics), n_test = data.train.shape, len(data.test)
    _progress(
        f"  train {n_train} rows x {n_metrics} metrics, test {n_test} rows, "
        f"{int(data.labels.sum())} labelled anomalous; VUS window {window}"
    )
    names = [args.detector] + ([] if args.no_baselines else [b for b in BASELINES if b != args.detector])
    rows = []
    for name in names:
        preset = args.preset if args.preset in DETECTORS[name].preset_names else "default"
        detector = build(name, preset, random_state=args.random_state)
        _progress(f"  {name}: fitting ...")
        t0 = time.perf_counter()
        detector.fit(data.train)
        t1 = time.perf_counter()
        _progress(f"  {name}: fitted in {t1 - t0:.1f}s; scoring the test part ...")
        result = detector.detect(data.test)
        t2 = time.perf_counter()
        labels, scores, pred = data.labels.to_numpy(), result.scores.to_numpy(), result.labels.to_numpy()
        m = evaluate(labels, scores, window, pred=pred)
        rows.append((name, m, t1 - t0, t2 - t1, result))
    print(
        f"\ntsdiff {__version__} demo: SMD machine-1-2 (bundled), {args.preset} preset, "
        "thresholds fitted on training data only\n"
    )
    header = "| detector | VUS-PR | AUC-PR | AUC-ROC | F1 | event F1 | flagged | events | fit s | score s |"
    print(header)
    print("|---|" + "---:|" * (header.count("|") - 2))
    for name, m, fit_s, score_s, result in rows:
        print(
            f"| {name} | {m['VUS-PR']:.3f} | {m['AUC-PR']:.3f} | {m['AUC-ROC']:.3f} | "
            f"{m['Standard-F1']:.3f} | {m['Event-based-F1']:.3f} | {int(result.labels.sum())} | "
            f"{len(result.events)} | {fit_s:.1f} | {score_s:.1f} |"
        )
    print("\nF1 columns use each detector's own threshold (no labels used); higher VUS-PR is better.")
    name, result = rows[0][0], rows[0][4]
    _print_events(name, result, data, args.events)
    if not args.no_plot:
        from tsdiff.plot import plot_detection

        plot_detection(
            data.test,
            result,
            true_labels=data.labels,
            path=args.plot,
            title=f"tsdiff {name} on SMD machine-1-2",
        )
        print(f"\nplot written to {args.plot}")
    return EXIT_OK


def _print_events(name: str, result: object, data: object, n_events: int) -> None:
    events = result.events  # type: ignore[attr-defined]
    if not len(events):
        print(f"\n{name} flagged no events in the test part.")
        return
    print(f"\nLargest events found by {name} (root causes, else top metrics; labelled root causes):")
    truth = data.root_causes  # type: ignore[attr-defined]
    for _, ev in events.sort_values("peak_score", ascending=False).head(n_events).iterrows():
        causes = list(ev["root_causes"])
        line = f"  rows {ev['start']}-{ev['end']} ({ev['n_rows']} rows), peak {ev['peak']}: "
        line += (
            ("causes " + ", ".join(map(str, causes[:3])))
            if causes
            else ", ".join(map(str, ev["top_metrics"]))
        )
        if truth is not None:
            hit = truth[(truth["start"] <= ev["end"]) & (truth["end"] > ev["start"])]
            line += (
                f"  | labelled: {', '.join(map(str, hit.iloc[0]['metrics']))}"
                if len(hit)
                else "  | not labelled"
            )
        print(line)


# ----------------------------------------------------------------- commands
def run_fit(args: argparse.Namespace) -> int:
    from tsdiff.persist import check_save_target
    from tsdiff.registry import build

    check_save_target(args.output)  # before a long fit, not after it
    source = None
    if args.prometheus is not None:
        if args.data is not None:
            raise ParameterError("give a data file or --prometheus, not both")
        source, data = _read_prometheus(args)
        where = f"{args.prometheus} ({len(source.queries)} queries, step {source.step:g}s)"
    elif args.data is None:
        raise ParameterError("give a data file, or --prometheus URL with --query/--selector and --start")
    else:
        data, where = _read(args.data, args), args.data
    _progress(f"tsdiff fit: {data.shape[0]} rows x {data.shape[1]} metrics from {where}")
    detector = _quieted(build(args.detector, args.preset, random_state=args.random_state))
    t0 = time.perf_counter()
    detector.fit(data)
    if source is not None:
        # saved with the model: a watcher asks the same queries; the fitted range is reported
        detector.source_ = {
            **source.to_dict(),
            "fitted_from": str(data.index[0]),
            "fitted_to": str(data.index[-1]),
        }
    detector.save(args.output)
    _progress(
        f"tsdiff fit: {args.detector} fitted in {time.perf_counter() - t0:.1f}s, saved to {args.output}"
    )
    return EXIT_OK


def run_score(args: argparse.Namespace) -> int:
    import tsdiff
    from tsdiff.tableio import check_output, write_table

    check_output(args.output)
    detector = _quieted(tsdiff.load(args.model))
    data = _read(args.data, args)
    _progress(f"tsdiff score: {data.shape[0]} rows from {args.data} with {type(detector).__name__}")
    result = detector.detect(data)
    frame = result.to_frame(feature_scores=args.feature_scores)
    frame["top_metrics"] = result.event_metrics("top_metrics")
    frame["root_causes"] = result.event_metrics("root_causes")
    write_table(frame, args.output)
    n = int(result.labels.sum())
    _progress(f"tsdiff score: {n} anomalous rows in {len(result.events)} events; wrote {args.output}")
    return EXIT_ANOMALY if args.fail_on_anomaly and n else EXIT_OK


def run_stream(args: argparse.Namespace) -> int:
    import csv
    import json

    import pandas as pd

    import tsdiff
    from tsdiff.errors import InputError
    from tsdiff.serialize import json_ready
    from tsdiff.stream import StreamScorer
    from tsdiff.tableio import set_time_index

    detector = _quieted(tsdiff.load(args.model))
    scorer = StreamScorer(detector, provisional=args.provisional, freq=args.freq, tolerance=args.tolerance)
    reader = csv.reader(sys.stdin, delimiter=args.sep)
    header = next(reader, None)
    if header is None:
        raise InputError("no CSV header on stdin")
    _check_stream_header(header, detector, args)
    anomalies, scored, lines = 0, 0, 0
    from tsdiff.incidents import IncidentTracker, alertmanager_alert

    tracker = IncidentTracker(risk=float(getattr(detector, "risk", 1e-3)))

    def emit(out: pd.DataFrame) -> None:
        nonlocal anomalies, scored
        for ts, row in out.iterrows():
            record = {"time": ts.isoformat() if hasattr(ts, "isoformat") else json_ready(ts)}
            record.update({k: json_ready(v) for k, v in row.items()})
            if record.get("final"):
                anomalies += int(record["label"] == 1)
                scored += 1
                for _, incident in tracker.update(ts, row["score"], row["label"], list(row["root_causes"])):
                    if args.incidents:
                        alert = alertmanager_alert(incident, {"model": str(args.model)})
                        sys.stdout.write(json.dumps(alert) + "\n")
            if not args.incidents:
                sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

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
            emit(scorer.update(_numeric_cells(frame)))
        except InputError as exc:  # one bad line must not stop a monitor: report it and go on
            sys.stderr.write(f"tsdiff: line {line_no}: {exc}; skipped\n")
    emit(scorer.flush())
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
    import signal
    import threading
    from pathlib import Path

    import tsdiff
    from tsdiff.sources.prometheus import PrometheusSource
    from tsdiff.watch import Watcher, serve

    detector = _quieted(tsdiff.load(args.model))
    if getattr(detector, "source_", None) is None:
        raise ParameterError(
            f"the model in {args.model} was not fitted from Prometheus (tsdiff fit --prometheus)"
        )
    source = PrometheusSource.from_dict(detector.source_, url=args.prometheus)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise ParameterError(f"--listen must be HOST:PORT, got {args.listen!r}")
    model = Path(args.model)
    state = args.state or str(model.parent / f"{model.name}.watch-state.json")
    watcher = Watcher(
        detector,
        source,
        state_path=state,
        output=args.output,
        start=args.start,
        delay=args.delay,
        batch=args.batch,
    )
    server = serve(watcher, host, int(port))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    address = f"{host}:{server.server_address[1]}"  # the port the system gave, with --listen HOST:0
    _progress(f"tsdiff watch: {type(detector).__name__} on {source.url}, serving http://{address}/metrics")
    try:
        watcher.run(stop, until=args.until, interval=args.interval)
    finally:
        server.shutdown()
    _progress(f"tsdiff watch: stopped after {watcher.rows_scored} scored rows; state in {state}")
    return EXIT_OK


def run_explain(args: argparse.Namespace) -> int:
    """Without ``--event`` or ``--start``: list the events; otherwise print one explanation."""
    import tsdiff
    from tsdiff.errors import ParameterError

    if (args.start is None) != (args.end is None):
        raise ParameterError("--start and --end go together")
    detector = _quieted(tsdiff.load(args.model))
    if not detector.names_root_causes():
        raise ParameterError(
            f"the model in {args.model} ({type(detector).__name__}) has no causal model to explain with"
        )
    data = _read(args.data, args)
    if args.start is not None:
        explanation = detector.rank_causes(data, _index_label(data, args.start), _index_label(data, args.end))
    else:
        result = detector.detect(data)
        if args.event is None:
            _list_events(result)
            return EXIT_OK
        if not len(result.events):
            raise ParameterError(f"no events in {args.data}, so no event {args.event}")
        explanation = result.explain(args.event)
    if args.json:
        from tsdiff.serialize import to_json

        print(to_json(explanation.to_dict(), "the explanation"))
    else:
        print(explanation.to_text())
    if args.dot:
        with open(args.dot, "w", encoding="utf-8") as handle:
            handle.write(explanation.to_dot() + "\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = explanation.plot()
        ax.figure.savefig(args.plot, dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
        _progress(f"tsdiff explain: wrote {args.plot}")
    return EXIT_OK


def _list_events(result: object) -> None:
    events = result.events  # type: ignore[attr-defined]
    if not len(events):
        print("no events")
        return
    print(f"{len(events)} events (explain one with --event N):")
    for i, ev in enumerate(events.itertuples(index=False)):
        causes = ", ".join(map(str, ev.root_causes[:3]))
        span = f"{ev.start} .. {ev.end}  {ev.n_rows} rows"
        print(f"{i:>4}  {span}  peak {ev.peak_score:.3g}  root causes: {causes}")


def _index_label(data: object, text: str) -> object:
    """A ``--start``/``--end`` value as a label of the data's index (a time, or a row number)."""
    import pandas as pd

    from tsdiff.errors import ParameterError

    index = data.index  # type: ignore[attr-defined]
    try:
        if isinstance(index, pd.DatetimeIndex):
            stamp = pd.Timestamp(text)
            if index.tz is not None and stamp.tz is None:
                stamp = stamp.tz_localize(index.tz)
            return stamp
        return int(text)
    except (ValueError, TypeError):
        kind = "a time" if isinstance(index, pd.DatetimeIndex) else "a row number"
        raise ParameterError(f"{text!r} is not {kind} of this data's index") from None


def run_evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from tsdiff.errors import InputError
    from tsdiff.metrics import choose_sliding_window, evaluate

    scores = _read(args.scores, args)
    labels = _read(args.labels, args)
    for what, frame, column in (("scores", scores, "score"), ("labels", labels, args.label_column)):
        if column not in frame.columns:
            raise InputError(f"{what} file has no column {column!r}")
    timed = isinstance(scores.index, pd.DatetimeIndex) and isinstance(labels.index, pd.DatetimeIndex)
    if timed:  # join on time, so labels of other rows can never line up by position
        if labels.index.tz != scores.index.tz:
            raise InputError("the scores' and the labels' timestamps differ in time zone")
        joined = labels[args.label_column].reindex(scores.index)
        unlabelled = int(joined.isna().sum())
        if unlabelled == len(joined):
            raise InputError(
                f"no scored time has a label: scores cover {scores.index[0]} .. {scores.index[-1]}, "
                f"labels {labels.index[0]} .. {labels.index[-1]}"
            )
        if unlabelled:
            raise InputError(
                f"{unlabelled} scored rows have no label (first: {joined.index[joined.isna()][0]})"
            )
        y = joined.to_numpy()
    else:
        if len(scores) != len(labels):
            raise InputError(f"{len(scores)} scored rows but {len(labels)} labels")
        y = labels[args.label_column].to_numpy()
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"label column {args.label_column!r} must hold only 0 and 1")
    y = y.astype(np.int8)
    s = scores["score"].to_numpy(dtype=float)
    pred = scores["label"].to_numpy() if "label" in scores.columns else None
    if args.sliding_window is not None and not 0 <= args.sliding_window <= len(s):
        raise InputError(
            f"--sliding-window must be between 0 and the {len(s)} scored rows, got {args.sliding_window}"
        )
    window = args.sliding_window if args.sliding_window is not None else choose_sliding_window(s)
    if not y.any():
        _progress("tsdiff evaluate: the labels mark no anomaly, so the ranking metrics are undefined (nan)")
    how = "joined on time" if timed else "by position"
    _progress(
        f"tsdiff evaluate: {len(s)} rows, {int(y.sum())} labelled anomalous ({how}); VUS window {window}"
    )
    metrics = evaluate(y, s, window, pred=pred)
    if args.json:
        from tsdiff.serialize import to_json

        print(to_json(metrics, "the metrics"))
    else:
        for key, value in metrics.items():
            print(f"{key:>16}  {value:.4f}" if isinstance(value, float) else f"{key:>16}  {value}")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``tsdiff`` argument parser: every sub-command and its options."""

from __future__ import annotations

import argparse

from tsdiff._version import __version__
from tsdiff.cli.common import (
    CommandParser,
    add_adapt,
    add_auth,
    add_cold_start,
    add_fail_on_anomaly,
    add_merge_gap,
    add_preset,
    add_time_options,
    add_verbosity,
    add_verbosity_everywhere,
)
from tsdiff.registry import DETECTORS


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="tsdiff", description="Multivariate time-series anomaly detection.")
    parser.add_argument("--version", action="version", version=f"tsdiff {__version__}")
    add_verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)

    demo = sub.add_parser("demo", help="fit and evaluate on the bundled SMD machine (no download)")
    demo.add_argument(
        "--detector",
        choices=list(DETECTORS),
        default="hybrid",
        help="the detector to run (default: hybrid, diffusion and causal models fused)",
    )
    add_preset(
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
    demo.add_argument("--random-state", type=int, default=0, help="seed: the same seed, the same scores")
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
    add_auth(fit)
    fit.add_argument("-o", "--output", required=True, help="model directory to write")
    fit.add_argument(
        "--warm-start",
        metavar="MODEL",
        help="refit this saved model on the data instead of fitting a new one: a fraction of the training "
        "(the diffusion model), the learned graph kept (the causal model); --detector and --preset are "
        "then the model's",
    )
    fit.add_argument("--detector", choices=list(DETECTORS), default="hybrid", help="the detector to fit")
    add_preset(fit, "default")
    fit.add_argument("--random-state", type=int, default=0, help="seed: the same seed, the same model")
    add_time_options(fit)

    score = sub.add_parser("score", help="score a file with a saved model; one output row per input row")
    score.add_argument("model", help="model directory written by 'tsdiff fit'")
    score.add_argument("data", help="CSV or Parquet file with the model's metric columns")
    score.add_argument("-o", "--output", required=True, help="CSV or Parquet file to write (by suffix)")
    score.add_argument("--feature-scores", action="store_true", help="also write per-metric scores")
    add_time_options(score)
    add_fail_on_anomaly(score)

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
        "--alertmanager",
        metavar="URL",
        help="also post each incident to this Alertmanager (http://host:9093) when it opens and resolves, "
        "re-sending open ones every minute",
    )
    stream.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label on every alert, naming what is watched (repeatable; default: model=<the model path>)",
    )
    add_adapt(stream)
    add_merge_gap(stream, "(a duration needs --freq)")
    stream.add_argument(
        "--tolerance",
        type=float,
        default=0.1,
        help="with --freq: share of a step a timestamp may be off the grid and still be moved onto it "
        "(default 0.1); a row farther off is reported and skipped",
    )
    add_time_options(stream)
    add_fail_on_anomaly(stream)

    watch = sub.add_parser(
        "watch", help="score a Prometheus server's metrics as they arrive; serve /metrics for Prometheus"
    )
    watch.add_argument("model", help="model directory written by 'tsdiff fit --prometheus'")
    watch.add_argument(
        "--prometheus", metavar="URL", help="the server to read (default: the one fitted from)"
    )
    add_auth(watch)
    watch.add_argument("--listen", default="127.0.0.1:19108", help="HOST:PORT serving /metrics and /healthz")
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
    watch.add_argument(
        "--top-k", type=int, default=3, help="root causes exported per open incident (default 3)"
    )
    add_adapt(watch)
    add_merge_gap(watch, "(a duration becomes rows of the model's step)")
    watch.add_argument(
        "--refit-after",
        metavar="DURATION",
        help="refit the model in the background once it has reported drift this long (e.g. 2h)",
    )
    watch.add_argument(
        "--refit-every",
        metavar="DURATION",
        help="also refit the model in the background on a schedule, every DURATION of rows (e.g. 7d)",
    )
    watch.add_argument(
        "--refit-window", default="1d", metavar="DURATION", help="rows a refit learns from (default 1d)"
    )
    add_cold_start(watch)
    watch.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label on every exported series, naming what is watched (repeatable); default: the "
        "labels all the model's series share (their instance, job, ...)",
    )

    explain = sub.add_parser(
        "explain", help="explain an event of a causal or hybrid model: ranked metrics, roles, subgraph"
    )
    explain.add_argument("model", help="model directory written by 'tsdiff fit' (causal or hybrid)")
    explain.add_argument("data", nargs="?", help="CSV or Parquet file with the model's metric columns")
    explain.add_argument(
        "--prometheus",
        metavar="URL",
        nargs="?",
        const="",
        help="read the model's series from Prometheus instead of a file (its own server, or URL); "
        "--event -1 explains the last incident",
    )
    explain.add_argument(
        "--since", default="now-1h", metavar="TIME", help="with --prometheus: the first row to read"
    )
    explain.add_argument("--until", default="now", metavar="TIME", help="with --prometheus: the last row")
    add_auth(explain)
    which = explain.add_mutually_exclusive_group()
    which.add_argument("--event", type=int, help="number of the event to explain (0 = first; -1 = last)")
    which.add_argument("--start", help="explain the rows from this index label on (with --end)")
    explain.add_argument("--end", help="last row to explain (index label, inclusive; with --start)")
    explain.add_argument("--plot", help="PNG written with the event's causal subgraph")
    explain.add_argument("--dot", help="file written with the event's causal subgraph in Graphviz DOT")
    explain.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_time_options(explain)

    evaluate = sub.add_parser("evaluate", help="compare scores with labels (VUS-PR, AUC-PR, F1 ...)")
    evaluate.add_argument("scores", help="file written by 'tsdiff score' (columns score and label)")
    evaluate.add_argument("labels", help="file with a 0/1 label column, one row per scored row")
    evaluate.add_argument("--label-column", default="label", help="the 0/1 column of the labels file")
    evaluate.add_argument("--sliding-window", type=int, help="VUS window (default: chosen from the data)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_time_options(evaluate)

    from tsdiff.fleet.cli import add_fleet_parser

    add_fleet_parser(sub, list(DETECTORS), add_preset)
    add_verbosity_everywhere(parser)
    return parser

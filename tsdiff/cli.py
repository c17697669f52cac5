"""The ``tsdiff`` command line.

Exit codes scripts can rely on: 0 success, 1 anomalies found (only with ``--fail-on-anomaly``),
2 bad input or usage (a one-line message on stderr), 3 an unexpected internal error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from tsdiff._version import __version__
from tsdiff.errors import TsdiffError

EXIT_OK, EXIT_ANOMALY, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

BASELINES = {
    "pca": "PCADetector",
    "iforest": "IsolationForestDetector",
    "kmeans": "KMeansDetector",
    "random": "RandomDetector",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors: one line, exit 2
        sys.stderr.write(f"tsdiff: error: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tsdiff", description="Multivariate time-series anomaly detection.")
    parser.add_argument("--version", action="version", version=f"tsdiff {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details on stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="fit and evaluate on the bundled SMD machine (no download)")
    demo.add_argument(
        "--detector",
        choices=[*BASELINES, "all"],
        default="all",
        help="which detector to run; 'all' compares every baseline side by side (default)",
    )
    demo.add_argument("--random-state", type=int, default=0)
    demo.add_argument("--events", type=int, default=5, help="how many of the largest events to list")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tsdiff`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "demo":
            return run_demo(args)
    except TsdiffError as exc:
        sys.stderr.write(f"tsdiff: error: {exc}\n")
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


def _progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run_demo(args: argparse.Namespace) -> int:
    import tsdiff
    from tsdiff.datasets import load_bundled
    from tsdiff.metrics import choose_sliding_window, evaluate

    _progress("tsdiff demo: loading the bundled data (SMD machine-1-2) ...")
    data = load_bundled()
    window = choose_sliding_window(data.test.to_numpy())
    (n_train, n_metrics), n_test = data.train.shape, len(data.test)
    _progress(
        f"  train {n_train} rows x {n_metrics} metrics, test {n_test} rows, "
        f"{int(data.labels.sum())} labelled anomalous; VUS window {window}"
    )
    names = list(BASELINES) if args.detector == "all" else [args.detector]
    rows = []
    for name in names:
        detector = getattr(tsdiff, BASELINES[name])(random_state=args.random_state)
        _progress(f"  {name}: fitting ...")
        t0 = time.perf_counter()
        detector.fit(data.train)
        t1 = time.perf_counter()
        result = detector.detect(data.test)
        t2 = time.perf_counter()
        labels, scores, pred = data.labels.to_numpy(), result.scores.to_numpy(), result.labels.to_numpy()
        m = evaluate(labels, scores, window, pred=pred)
        rows.append((name, m, t1 - t0, t2 - t1, result))
    print(
        f"\ntsdiff {__version__} demo: SMD machine-1-2 (bundled), thresholds fitted on training data only\n"
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
    best = max(rows, key=lambda r: r[1]["VUS-PR"])
    name, result = best[0], best[4]
    if len(result.events):
        print(f"\nLargest events found by {name} (top metrics by per-metric score; labelled root causes):")
        events = result.events.sort_values("peak_score", ascending=False).head(args.events)
        truth = data.root_causes if data.root_causes is not None else None
        for _, ev in events.iterrows():
            line = f"  rows {ev['start']}-{ev['end']} ({ev['n_rows']} rows), peak {ev['peak']}: "
            line += ", ".join(map(str, ev["top_metrics"]))
            if truth is not None:
                hit = truth[(truth["start"] <= ev["end"]) & (truth["end"] > ev["start"])]
                if len(hit):
                    line += f"  | labelled: {', '.join(map(str, hit.iloc[0]['metrics']))}"
                else:
                    line += "  | no labelled anomaly here"
            print(line)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

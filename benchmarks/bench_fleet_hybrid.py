"""How many hosts one core watches with the hybrid streaming model, within one step.

Fitting a hybrid per host for hundreds of hosts takes hours on 2 cores, so this measures the part
of a fleet watcher's poll that grows with the model: scoring. One host of
``bench_fleet_watch.simulate`` (M metrics) gets a hybrid fitted with the ``streaming`` preset on
``--history`` rows; then ``--hosts`` stream scorers (each a host's: its own buffer, its own
incidents, the same fitted weights as a fleet of identical hosts would have) are fed the live rows
one row per poll, as ``fleet watch`` feeds them, and the process CPU time of each poll is taken.
Hosts per core within a step = step / (CPU seconds per host per row). Reading from Prometheus and
exporting cost about the same per host for every detector (``bench_fleet_watch.py``: PCA's whole
poll is 1.6 ms per host) and are added from that benchmark's figure, not measured here.

Usage::

    python benchmarks/bench_fleet_hybrid.py --hosts 20 --rows 30 --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fleet_watch import simulate
from report import write_section

#: the whole-poll cost per host of the PCA fleet watcher (read, export, state): bench_fleet_watch
READ_AND_EXPORT_S = 0.0016


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=30, help="live rows fed to every host, one per poll")
    parser.add_argument("--step", type=float, default=60.0, help="seconds between rows")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")
    import torch

    import tsdiff
    from tsdiff.registry import build
    from tsdiff.stream import StreamScorer

    rng = np.random.default_rng(0)
    values = simulate(1, args.metrics, args.history + args.rows, args.step, rng)["host-0000"]
    index = pd.date_range("2024-06-01", periods=len(values), freq=f"{int(args.step)}s")
    frame = pd.DataFrame(values, index=index, columns=[f"m{j}" for j in range(args.metrics)])
    train, live = frame.iloc[: args.history], frame.iloc[args.history :]
    detector = build("hybrid", "streaming", random_state=0, verbose=False)
    started = time.perf_counter()
    detector.fit(train)
    fit_s = time.perf_counter() - started
    scorers = [StreamScorer(detector) for _ in range(args.hosts)]
    for scorer in scorers:  # each host's scorer starts with a full context, as after a restart
        scorer.update(train.iloc[-max(scorer.min_rows, 1) - scorer.latency :])
    per_poll = []
    for i in range(len(live)):
        row = live.iloc[i : i + 1]
        cpu = time.process_time()
        for scorer in scorers:
            scorer.update(row)
        per_poll.append((time.process_time() - cpu) / args.hosts)
    per_host_row = statistics.median(per_poll)
    p99 = float(np.quantile(per_poll, 0.99))
    hosts_per_core = args.step / (per_host_row + READ_AND_EXPORT_S)
    command = (
        f"python benchmarks/bench_fleet_hybrid.py --hosts {args.hosts} --rows {args.rows} "
        f"--metrics {args.metrics} --history {args.history} --step {args.step:g}"
    )
    lines = [
        f"Command: `{command}`.",
        f"Split: none (speed). tsdiff {tsdiff.__version__}, {torch.get_num_threads()} torch thread(s). "
        "One simulated host "
        f"({args.metrics} metrics, {args.history} rows of history) fitted with `hybrid` `streaming` "
        f"({fit_s:.0f} s); {args.hosts} stream scorers of that model fed {args.rows} live rows each, "
        "one row per poll.",
        "",
        "| hybrid streaming, per host and row | value |",
        "|---|---:|",
        f"| CPU seconds to score, median over polls | {per_host_row:.4f} |",
        f"| CPU seconds to score, p99 over polls | {p99:.4f} |",
        f"| read, export and state per host (the PCA fleet watcher's whole poll) | {READ_AND_EXPORT_S:.4f} |",
        f"| hosts one core watches within a {args.step:g} s step | {hosts_per_core:,.0f} |",
        f"| fit seconds per host (one host, 2 cores) | {fit_s:.0f} |",
        "",
        f"The fit is the limit of a hybrid fleet, not the watching: {fit_s:.0f} s per host is "
        f"{fit_s * 1000 / 3600 / 2:.1f} hours for 1,000 hosts on 2 cores (and again for each refit).",
    ]
    body = "\n".join(lines)
    print(body)
    if args.out:
        write_section(args.out, "Fleet watch: hybrid streaming cost per host", body)


if __name__ == "__main__":
    main()

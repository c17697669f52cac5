"""Evidence for the causal module: graph recovery, root-cause accuracy, discovery time, SMD HitRate.

1. Synthetic data with a known lagged graph (``make_synthetic``): edge precision/recall (lag-exact
   and per metric pair) and root-cause top-1/top-3 accuracy, for PC and Granger, over seeds.
2. Discovery time at server-metric size: 38 metrics x 20,000 training rows (SMD machine-1-2).
3. SMD machines 1-2..1-8 with interpretation labels: HitRate@100% and @150% of the causal ranking
   and of a naive ranking (mean absolute robust z-score of each metric over the segment).

Usage::

    python benchmarks/bench_causal.py [--seeds 5] [--out benchmarks/RESULTS.md]
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

import tsdiff
from tsdiff.causal import edge_recovery, hit_rate, top_k_accuracy
from tsdiff.datasets import load_smd, make_synthetic
from tsdiff.errors import DatasetError

SMD_MACHINES = [f"1-{i}" for i in range(2, 9)]


def synthetic_rows(seeds: int) -> list[str]:
    lines = [
        "| data | method | pair precision | pair recall | lag-exact precision | lag-exact recall | "
        "root cause top-1 | top-3 | anomalies | fit s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for noise in (0.1, 0.3):
        for method in ("pc", "granger"):
            cols: dict[str, list[float]] = {k: [] for k in ("pp", "pr", "lp", "lr", "fit")}
            rankings, truths = [], []
            for seed in range(seeds):
                data = make_synthetic(n_metrics=10, n_rows=10000, random_state=seed, noise=noise)
                t0 = time.perf_counter()
                det = tsdiff.CausalDetector(method=method, random_state=0).fit(data.train)
                cols["fit"].append(time.perf_counter() - t0)
                pairs = edge_recovery(det.graph_.edges, data.graph, match_lag=False)
                exact = edge_recovery(det.graph_.edges, data.graph, match_lag=True)
                cols["pp"].append(pairs["precision"])
                cols["pr"].append(pairs["recall"])
                cols["lp"].append(exact["precision"])
                cols["lr"].append(exact["recall"])
                test = data.test
                for r in data.root_causes.itertuples():
                    rankings.append(det.rank_causes(test, test.index[r.start], test.index[r.end - 1]))
                    truths.append(r.metrics)
            m = {k: float(np.nanmean(v)) for k, v in cols.items()}
            lines.append(
                f"| 10 metrics x 10,000 rows, noise {noise}, {seeds} seeds | {method} | {m['pp']:.2f} | "
                f"{m['pr']:.2f} | {m['lp']:.2f} | {m['lr']:.2f} | "
                f"{top_k_accuracy(rankings, truths, 1):.2f} | {top_k_accuracy(rankings, truths, 3):.2f} | "
                f"{len(truths)} | {m['fit']:.1f} |"
            )
            logging.info(lines[-1])
    return lines


def discovery_rows() -> list[str]:
    try:
        data = load_smd("1-2")
    except DatasetError as exc:
        return [f"(SMD not available: {exc})"]
    train = data.train.iloc[:20000]
    lines = [
        "| data | method | lag | edges | discovery s | whole fit s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for method in ("pc", "granger"):
        t0 = time.perf_counter()
        det = tsdiff.CausalDetector(method=method, random_state=0).fit(train)
        total = time.perf_counter() - t0
        lines.append(
            f"| SMD machine-1-2, {train.shape[1]} metrics x {len(train)} rows | {method} | {det.lag_} | "
            f"{len(det.graph_)} | {det.discovery_seconds_:.1f} | {total:.1f} |"
        )
        logging.info(lines[-1])
    return lines


#: rankings of a segment's metrics compared on SMD: the causal detector's, and two peers that rank
#: by the values' |robust z| over the segment (mean, and maximum: PyRCA's test without a graph)
SMD_RANKINGS = ("causal", "mean abs z", "max abs z")


def smd_rows() -> list[str]:
    header = " | ".join(f"{name} HitRate@100% | @150%" for name in SMD_RANKINGS)
    lines = [f"| machine | segments | {header} |", "|---|---:|" + "---:|" * (2 * len(SMD_RANKINGS))]
    totals: dict[tuple[str, int], list[float]] = {(r, p): [] for r in SMD_RANKINGS for p in (100, 150)}

    def cells(values: dict[tuple[str, int], list[float]]) -> str:
        return " | ".join(f"{statistics.fmean(values[(r, p)]):.3f}" for r in SMD_RANKINGS for p in (100, 150))

    for machine in SMD_MACHINES:
        try:
            data = load_smd(machine)
        except DatasetError:
            continue
        det = tsdiff.CausalDetector(random_state=0).fit(data.train)
        z = np.abs(det.scaler_.transform(data.test.to_numpy()))
        per: dict[tuple[str, int], list[float]] = {k: [] for k in totals}
        for seg in data.root_causes.itertuples():
            truth = list(seg.metrics)
            window = z[seg.start : seg.end]
            rankings = {
                "causal": det.rank_causes(
                    data.test, data.test.index[seg.start], data.test.index[seg.end - 1]
                ),
                "mean abs z": [data.test.columns[j] for j in np.argsort(-window.mean(axis=0), kind="stable")],
                "max abs z": [data.test.columns[j] for j in np.argsort(-window.max(axis=0), kind="stable")],
            }
            for r, ranked in rankings.items():
                for p in (100, 150):
                    per[(r, p)].append(hit_rate(ranked, truth, p))
        for k, v in per.items():
            totals[k].extend(v)
        lines.append(f"| {machine} | {len(data.root_causes)} | {cells(per)} |")
        logging.info(lines[-1])
    if totals[("causal", 100)]:
        lines.append(f"| all machines | {len(totals[('causal', 100)])} | {cells(totals)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the tables into this markdown file")
    parser.add_argument("--smd-only", action="store_true", help="only the SMD root-cause table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    warnings.simplefilter("ignore")
    smd_intro = [
        "### Root causes on SMD (interpretation labels)",
        "",
        "HitRate@P%: share of a segment's labelled metrics among the first P% x (their count) ranked "
        "metrics, averaged over segments (every labelled segment, its labelled boundaries). The causal "
        "ranking puts violated metrics whose causes are not violated first; the peers rank by the "
        "mean and by the maximum |robust z| of the values over the segment.",
        "",
        *smd_rows(),
    ]
    if args.smd_only:
        body = [
            "Command: `python benchmarks/bench_causal.py --smd-only --out benchmarks/RESULTS.md` "
            "(CausalDetector defaults, seed 0).",
            "",
            *smd_intro,
        ]
    else:
        body = [
            f"Command: `python benchmarks/bench_causal.py --seeds {args.seeds} "
            "--out benchmarks/RESULTS.md`  ",
            "CausalDetector defaults (PC, Fisher-z, alpha 0.01, lag by VAR BIC up to 3, ridge mechanisms). "
            "Noise 0.1 is the generator's default; there the parentless metrics are nearly deterministic "
            "sines whose lags are collinear, which leaves lagged edges hard to identify; noise 0.3 is a "
            "noisier, more server-like regime. Same-time edges whose direction stays open count once.",
            "",
            "### Graph recovery and root causes on synthetic data",
            "",
            *synthetic_rows(args.seeds),
            "",
            "### Discovery time at server-metric size",
            "",
            *discovery_rows(),
            "",
            *smd_intro,
        ]
    text = "\n".join(body)
    print(text)
    if args.out:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import write_section

        title = "Causal root causes on SMD" if args.smd_only else "Causal structure and root causes"
        write_section(args.out, title, text)


if __name__ == "__main__":
    main()

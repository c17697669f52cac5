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


def smd_rows() -> list[str]:
    lines = [
        "| machine | segments | causal HitRate@100% | @150% | naive z HitRate@100% | @150% |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    totals: dict[str, list[float]] = {"c100": [], "c150": [], "n100": [], "n150": []}
    for machine in SMD_MACHINES:
        try:
            data = load_smd(machine)
        except DatasetError:
            continue
        det = tsdiff.CausalDetector(random_state=0).fit(data.train)
        z = np.abs(det.scaler_.transform(data.test.to_numpy()))
        per: dict[str, list[float]] = {k: [] for k in totals}
        for seg in data.root_causes.itertuples():
            truth = list(seg.metrics)
            causal = det.rank_causes(data.test, data.test.index[seg.start], data.test.index[seg.end - 1])
            naive = [
                data.test.columns[j] for j in np.argsort(-z[seg.start : seg.end].mean(axis=0), kind="stable")
            ]
            for p in (100, 150):
                per[f"c{p}"].append(hit_rate(causal, truth, p))
                per[f"n{p}"].append(hit_rate(naive, truth, p))
        for k, v in per.items():
            totals[k].extend(v)
        m = {k: statistics.fmean(v) for k, v in per.items()}
        lines.append(
            f"| {machine} | {len(data.root_causes)} | {m['c100']:.3f} | {m['c150']:.3f} | {m['n100']:.3f} | "
            f"{m['n150']:.3f} |"
        )
        logging.info(lines[-1])
    if totals["c100"]:
        m = {k: statistics.fmean(v) for k, v in totals.items()}
        n = len(totals["c100"])
        lines.append(
            f"| all machines | {n} | {m['c100']:.3f} | {m['c150']:.3f} | {m['n100']:.3f} | {m['n150']:.3f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the tables into this markdown file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    warnings.simplefilter("ignore")
    body = [
        f"Command: `python benchmarks/bench_causal.py --seeds {args.seeds} --out benchmarks/RESULTS.md`  ",
        "CausalDetector defaults (PC, Fisher-z, alpha 0.01, lag by VAR BIC up to 3, ridge mechanisms). "
        "Noise 0.1 is the generator's default; there the parentless metrics are nearly deterministic sines "
        "whose lags are collinear, which leaves lagged edges hard to identify; noise 0.3 is a noisier, more "
        "server-like regime. Same-time edges whose direction stays open count once.",
        "",
        "### Graph recovery and root causes on synthetic data",
        "",
        *synthetic_rows(args.seeds),
        "",
        "### Discovery time at server-metric size",
        "",
        *discovery_rows(),
        "",
        "### Root causes on SMD (interpretation labels)",
        "",
        "HitRate@P%: share of a segment's labelled metrics among the first P% x (their count) ranked "
        "metrics, "
        "averaged over segments. The causal ranking puts violated metrics whose causes are not violated "
        "first; the naive one ranks by mean |robust z| of the values.",
        "",
        *smd_rows(),
    ]
    text = "\n".join(body)
    print(text)
    if args.out:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import write_section

        write_section(args.out, "Causal structure and root causes", text)


if __name__ == "__main__":
    main()

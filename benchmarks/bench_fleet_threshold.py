"""A fleet's thresholds: each host's own, pooled over the hosts, or pooled where a host's own tail
cannot be fitted (``tsdiff fleet fit --threshold host|pooled|auto``).

Each dataset's series of the split stand for one fleet's hosts (SKAB's runs of one test rig and the
synthetic seeds of one generator are alike in kind; SMD's machines are servers of different
services; MSL's channels are different instruments, which a pool is not meant for). The fitted
causal models and their test scores are those of ``bench_events.py`` (``--cache``); each rule's
thresholds come from the models' held-out scores only (:mod:`tsdiff.fleet.pooling`). Reported per
dataset: the share of normal test rows flagged, the hosts with any normal row flagged, the share of
labelled stretches with a flagged row, and the event F1 of the flagged runs (each run of flagged
rows one event, one event per labelled stretch).

Usage::

    python benchmarks/bench_fleet_threshold.py --split dev
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_events

import tsdiff
from tsdiff.fleet.pooling import THRESHOLD_RULES, choose_thresholds
from tsdiff.results import run_slices


def fleet_rows(split: str, dataset: str, detector: str, cache: Path) -> list[str]:
    hosts = []
    for case in bench_events.cases(split, [dataset]):
        folder = cache / detector / case.dataset / case.name.replace("/", "_")
        if not (folder / "parts.npz").exists():
            logging.warning(
                "%s %s/%s is not in the cache: run bench_events.py first", detector, dataset, case.name
            )
            continue
        model = tsdiff.load(folder / "model")
        hosts.append((case, model, np.load(folder / "parts.npz")["scores"]))
    if not hosts:
        return []
    lines = []
    for rule in THRESHOLD_RULES[::-1]:  # host, pooled, auto
        evidence = {c.name: (m.calibration_scores_, m.threshold_method_) for c, m, _ in hosts}
        chosen, _ = choose_thresholds(evidence, float(hosts[0][1].risk), rule)
        normal = flagged = stretches = found = noisy = 0
        f1 = []
        for case, model, scores in hosts:
            labels = scores > chosen.get(case.name, model.threshold_)
            truth = case.labels.astype(bool)
            normal += int((~truth).sum())
            flagged += int((labels & ~truth).sum())
            noisy += bool((labels & ~truth).any())
            runs = run_slices(truth)
            stretches += len(runs)
            found += sum(bool(labels[r].any()) for r in runs)
            f1.append(bench_events.event_f1(run_slices(labels), case.labels))
        lines.append(
            f"| {hosts[0][0].dataset} | {len(hosts)} | {rule} | {len(chosen)} "
            f"| {100 * flagged / max(1, normal):.2f} "
            f"| {noisy} | {found / max(1, stretches):.3f} | {np.nanmean(f1):.3f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "report"), default="dev")
    parser.add_argument("--datasets", default="smd,skab,synthetic,msl")
    parser.add_argument("--detector", default="causal")
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "out" / "events")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr)
    warnings.simplefilter("ignore")
    table = [
        "| fleet (dataset) | hosts | rule | hosts taking the pool | normal rows flagged % "
        "| hosts with a false alarm | stretches flagged | event F1 of flagged runs |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for dataset in args.datasets.split(","):
        table += fleet_rows(args.split, dataset, args.detector, args.cache)
    text = "\n".join(
        [
            f"Command: `python benchmarks/bench_fleet_threshold.py --split {args.split} --datasets "
            f"{args.datasets} --detector {args.detector}`. Split: {args.split}. The {args.detector} models "
            "(defaults, risk 0.001) and test scores of 'Events and their root causes'; each dataset's "
            "series stand for one fleet's hosts.",
            "",
            *table,
        ]
    )
    print(text)
    if args.out:
        from report import write_section

        write_section(args.out, f"Fleet thresholds ({args.split} split)", text)


if __name__ == "__main__":
    main()

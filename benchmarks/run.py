"""Benchmark tsdiff detectors side by side on SMD, SKAB and synthetic data.

Usage (from the project root)::

    python benchmarks/run.py                               # every detector, every dataset
    python benchmarks/run.py --detectors pca,kmeans --datasets smd --machines 1-2,1-3
    python benchmarks/run.py --out benchmarks/RESULTS.md   # also write the markdown report
    python benchmarks/run.py --resume --out benchmarks/RESULTS.md  # keep finished runs, add the rest

SMD and SKAB are read from ``../shared/datasets`` (or ``$TSDIFF_DATA``); when they are absent
those datasets are skipped with a note, and the bundled SMD machine is used instead.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import Series, load_raw, markdown_report, merge_results, run_all, save_raw
from report import write_section

import tsdiff
from tsdiff.errors import DatasetError

SMD_MACHINES = [f"1-{i}" for i in range(2, 9)]


def detector_factories(seed: int) -> dict[str, Callable[[], Any]]:
    """Every registered detector and preset (``NAME`` for the defaults, ``NAME-PRESET`` for the
    others; the tiny preset left out), each with a fixed seed."""
    from tsdiff.registry import DETECTORS, build

    def factory(name: str, preset: str) -> Callable[[], Any]:
        return lambda: build(name, preset, random_state=seed, verbose=False)

    out = {}
    for entry in DETECTORS.values():
        for preset in ["default", *(p for p in entry.presets if p not in ("default", "tiny"))]:
            out[entry.name if preset == "default" else f"{entry.name}-{preset}"] = factory(entry.name, preset)
    return out


def smd_series(machines: list[str]) -> Iterator[Series]:
    from tsdiff.datasets import load_smd

    for machine in machines:
        try:
            data = load_smd(machine)
        except DatasetError as exc:
            logging.warning("skipping SMD %s: %s", machine, exc)
            continue
        yield Series("SMD", data.name, data.train, data.test, data.labels.to_numpy())


def bundled_series() -> Iterator[Series]:
    from tsdiff.datasets import load_bundled

    data = load_bundled()
    yield Series("SMD-bundled", data.name, data.train, data.test, data.labels.to_numpy())


def skab_series() -> Iterator[Series]:
    from tsdiff.datasets import load_skab, skab_experiments

    try:
        experiments = skab_experiments()
    except DatasetError as exc:
        logging.warning("skipping SKAB: %s", exc)
        return
    for name in experiments:
        data = load_skab(name)
        yield Series("SKAB", name, data.train, data.test, data.labels.to_numpy())


def synthetic_series(seed: int) -> Iterator[Series]:
    from tsdiff.datasets import make_synthetic

    data = make_synthetic(n_metrics=20, n_rows=20000, random_state=seed)
    yield Series("synthetic", data.name, data.train, data.test, data.labels.to_numpy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detectors", default="all", help="comma-separated detector names, or 'all'")
    parser.add_argument(
        "--datasets", default="smd,skab,synthetic", help="comma-separated: smd, skab, synthetic, bundled"
    )
    parser.add_argument("--machines", default=",".join(SMD_MACHINES), help="SMD machines, e.g. 1-2,1-3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument(
        "--raw", type=Path, default=Path("benchmarks/out/results.json"), help="raw per-run results"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished (detector, series) results in --raw instead of running them again",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="with --resume: only report the finished results, run nothing",
    )
    parser.add_argument("--note", default="", help="a line added to the report's header")
    parser.add_argument("--scores", type=Path, help="also save each run's test scores (.npz) here")
    args = parser.parse_args(argv)
    harness.SCORES_DIR = args.scores
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    factories = detector_factories(args.seed)
    names = list(factories) if args.detectors == "all" else args.detectors.split(",")
    unknown = [n for n in names if n not in factories]
    if unknown:
        parser.error(f"unknown detector(s) {unknown}; known: {sorted(factories)}")
    chosen = {n: factories[n] for n in names}

    def series() -> Iterator[Series]:
        for ds in args.datasets.split(","):
            if ds == "smd":
                yield from smd_series(args.machines.split(","))
            elif ds == "skab":
                yield from skab_series()
            elif ds == "synthetic":
                yield from synthetic_series(args.seed)
            elif ds == "bundled":
                yield from bundled_series()
            else:
                parser.error(f"unknown dataset {ds!r}")

    started = time.time()
    reuse = load_raw(args.raw) if args.resume else []
    results = run_all(
        series(),
        chosen,
        reuse=reuse,
        raw_path=None if args.report_only else args.raw,
        run_missing=not args.report_only,
    )
    if not results:
        logging.error("no series were run (is ../shared/datasets present?)")
        return 1
    save_raw(merge_results(reuse, results), args.raw)
    given = list(sys.argv[1:] if argv is None else argv)
    if "--note" in given:  # the note is printed below the command, not inside it
        i = given.index("--note")
        del given[i : i + 2]
    command = "python benchmarks/run.py " + " ".join(given)
    header = "\n".join(
        [
            f"Command: `{command.strip()}`  ",
            f"tsdiff {tsdiff.__version__}, Python {platform.python_version()}, {platform.machine()}, "
            f"run took {(time.time() - started) / 60:.1f} min"
            + (" (finished runs reused, see --resume)" if args.resume else "")
            + ".  ",
            "VUS-PR/AUC-PR/VUS-ROC are threshold-free. F1, event F1 and PA-F1 use each detector's own "
            "label-free threshold (POT on training scores); PA-F1 (point-adjusted) is optimistic by "
            "construction and is shown only beside the others. `flagged` is the share of test rows "
            "labelled anomalous. Peak MiB is the peak resident memory above the level before fitting, in one "
            "process: memory an earlier run already grew into is not counted (small series read near 0).",
        ]
        + (["", args.note] if args.note else [])
    )
    report = markdown_report(results, names, header)
    print(report)
    if args.out:
        write_section(args.out, "Detection benchmark", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

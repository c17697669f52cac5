"""Fleet throughput: entities per minute on a local Dask cluster, and how cost grows with entities.

Every entity is a different 2-day stretch (2,880 minutes x 38 metrics) of the bundled SMD machine
(train and test parts back to back), so the work per entity is that of a real host. For each
configuration a fresh ``LocalCluster`` (worker processes, 1 thread each) is started; its start-up
is timed apart from the runs. ``fit`` fits and saves one model per entity; ``score`` loads each
model and scores a further day (1,440 rows) of its entity. Usage::

    python benchmarks/bench_fleet.py [--detectors kmeans,pca] [--entities 4,8,16,32] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import PeakMemory
from report import write_section

import tsdiff
from tsdiff.datasets import load_bundled
from tsdiff.torch_runtime import available_cpus

FIT_ROWS, SCORE_ROWS = 2880, 1440


def detector(name: str) -> tsdiff.BaseDetector:
    """A registered detector with a fixed seed (the tsai forecaster trained for 2 epochs)."""
    from tsdiff.registry import build

    extra = {"epochs": 2} if name == "tsai-forecast" else {}
    return build(name, random_state=0, verbose=False, **extra)


def fleet_tables(n_entities: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long training and scoring tables: entity i is the stretch starting 997 * i rows in."""
    data = load_bundled()
    series = pd.concat([data.train, data.test], ignore_index=True)
    span = FIT_ROWS + SCORE_ROWS
    times = pd.date_range("2024-01-01", periods=span, freq="min")
    train, test = [], []
    for i in range(n_entities):
        start = (997 * i) % (len(series) - span)
        rows = series.iloc[start : start + span].set_axis(times).rename_axis("timestamp").reset_index()
        rows.insert(0, "host", f"host-{i:04d}")
        train.append(rows.iloc[:FIT_ROWS])
        test.append(rows.iloc[FIT_ROWS:])
    return pd.concat(train, ignore_index=True), pd.concat(test, ignore_index=True)


def worker_peak_mib(client: object) -> float:
    """Largest peak resident memory of any worker process so far."""
    peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # type: ignore[attr-defined]
    return max(peaks.values()) / 1024


def run_config(name: str, n_entities: int, n_workers: int) -> dict[str, float]:
    import distributed

    from tsdiff.fleet import fit_fleet, score_fleet
    from tsdiff.fleet.cluster import local_cluster

    train, test = fleet_tables(n_entities)
    t0 = time.perf_counter()
    with (
        local_cluster(n_workers, threads_per_worker=1, processes=True) as cluster,
        distributed.Client(cluster) as client,
        tempfile.TemporaryDirectory() as models,
    ):
        started = time.perf_counter() - t0
        with PeakMemory() as mem:
            t1 = time.perf_counter()
            fit = fit_fleet(train, detector(name), models, entity_col="host", client=client, verbose=False)
            t2 = time.perf_counter()
            scored = score_fleet(test, models, client=client, verbose=False)
            t3 = time.perf_counter()
        assert fit.failed.empty and scored.failed.empty, (fit.failed, scored.failed)
        worker_mib = worker_peak_mib(client)
    return {
        "entities": n_entities,
        "workers": n_workers,
        "start_s": started,
        "fit_s": t2 - t1,
        "score_s": t3 - t2,
        "fit_per_min": 60 * n_entities / (t2 - t1),
        "score_per_min": 60 * n_entities / (t3 - t2),
        "client_mib": mem.mib,
        "worker_mib": worker_mib,
    }


def in_process(name: str, n_entities: int) -> dict[str, float]:
    """The same work without Dask, one entity after another: the cost the cluster must beat."""
    train, test = fleet_tables(n_entities)
    t0 = time.perf_counter()
    fitted = {}
    for host, rows in train.groupby("host"):
        fitted[host] = detector(name).fit(rows.drop(columns="host").set_index("timestamp"))
    t1 = time.perf_counter()
    for host, rows in test.groupby("host"):
        fitted[host].detect(rows.drop(columns="host").set_index("timestamp"))
    t2 = time.perf_counter()
    return {"fit_per_min": 60 * n_entities / (t1 - t0), "score_per_min": 60 * n_entities / (t2 - t1)}


SCALING_NOTE = """\
**Past one machine.** Entities are independent: each task fits or scores one entity and writes only
that entity's model folder, so the work spreads over any number of workers with no exchange between
them, and the cost per entity stays what one machine measures above. To use a cluster, start a
scheduler (`dask scheduler`) and workers on each machine (`dask worker tcp://HOST:8786 --nworkers N
--nthreads 1`, with `TSDIFF_NUM_THREADS=1` in their environment so torch-based detectors use one
core per worker), then pass `--scheduler tcp://HOST:8786` (`address=` in Python). On those workers,
also set `MALLOC_TRIM_THRESHOLD_: null` under `distributed.nanny.pre-spawn-environ` in the Dask
configuration (a YAML file in `~/.config/dask/`): Dask's default value there turns off glibc's
adaptive memory thresholds and made torch training about twice as slow in a worker (22 s against 10
s for one tsai-forecast entity here); the local clusters tsdiff starts do this themselves. Two
things must be arranged: `model_dir` on storage that every worker can write and the scoring workers
can read (a shared file system such as NFS, or a mounted bucket), and the data's path to the
workers. A pandas table lives in the client, which ships each entity's rows to a worker (scatter):
fine for a few GB, but then the client's memory and network are the limit. Beyond that, pass a Dask
DataFrame that the workers read themselves (`dd.read_parquet` on shared storage); it is shuffled so
that each entity's rows meet on one worker, and storing the table partitioned by entity keeps that
shuffle small. The client also collects every entity's result and writes the fleet index
(`fleet.json`) once at the end, so very large fleets are best run in batches of entities (each run
merges into the same index)."""


def detector_section(name: str, sizes: list[int]) -> tuple[list[str], float]:
    """The table and summary of one detector, and its fit + score seconds per entity (2 workers)."""
    biggest = max(sizes)
    rows = [run_config(name, biggest, 1)] + [run_config(name, n, 2) for n in sizes]
    serial = in_process(name, biggest)
    lines = [
        f"**{name}** (library defaults{', 2 epochs' if name == 'tsai-forecast' else ''})",
        "",
        "| entities | workers | fit s | fit entities/min | score s | score entities/min | start s "
        "| client peak MiB | worker peak MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['entities']} | {r['workers']} | {r['fit_s']:.1f} | {r['fit_per_min']:.0f} | "
            f"{r['score_s']:.1f} | {r['score_per_min']:.0f} | {r['start_s']:.1f} | {r['client_mib']:.0f} | "
            f"{r['worker_mib']:.0f} |"
        )
    one = rows[0]
    two = next(r for r in rows[1:] if r["entities"] == biggest)
    counts = [r["entities"] for r in rows[1:]]
    slope, intercept = np.polyfit(counts, [r["fit_s"] + r["score_s"] for r in rows[1:]], 1)
    lines += [
        "",
        f"Without Dask, one entity after another in one process: {serial['fit_per_min']:.0f} entities/min "
        f"to fit, {serial['score_per_min']:.0f} to score ({biggest} entities). Two workers against one "
        f"({biggest} entities): fit x{two['fit_per_min'] / one['fit_per_min']:.2f}, score "
        f"x{two['score_per_min'] / one['score_per_min']:.2f}. With 2 workers, fit + score cost "
        f"{slope:.2f} s per entity plus {intercept:.1f} s per run (least squares over "
        f"{', '.join(map(str, counts))} entities).",
        "",
    ]
    return lines, slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--detectors",
        default="kmeans,pca",
        help="comma-separated: kmeans, pca, tsai-forecast (default kmeans,pca)",
    )
    parser.add_argument("--entities", default="4,8,16,32", help="fleet sizes for the cost curve (2 workers)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sizes = [int(n) for n in args.entities.split(",")]
    lines = [
        "Command: `python benchmarks/bench_fleet.py "
        f"--detectors {args.detectors} --entities {args.entities} --out benchmarks/RESULTS.md`; "
        f"tsdiff {tsdiff.__version__}, Python {platform.python_version()}, {available_cpus()} CPU cores. "
        f"Each entity fits on {FIT_ROWS} rows x 38 metrics, then scores {SCORE_ROWS} further rows. Local "
        "cluster of worker processes with 1 thread each, started afresh for each row; `start s` (cluster "
        "start-up) is not part of the rates. Peak MiB: the client process above its level before the run, "
        "and the largest worker process (resident, over its life).",
        "",
    ]
    per_entity = {}
    for name in args.detectors.split(","):
        section, per_entity[name] = detector_section(name, sizes)
        lines += section
    if "pca" in per_entity:
        lines += [
            f"PCA fits and scores an entity in milliseconds, so its {per_entity['pca']:.2f} s per entity is "
            "about what the fleet machinery itself costs per entity here (splitting the table, shipping "
            "rows to a worker, saving and loading the model, gathering results).",
            "",
        ]
    lines.append(SCALING_NOTE)
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        write_section(args.out, "Fleet", report)


if __name__ == "__main__":
    main()

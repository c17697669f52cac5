"""Alert delay: from a row's timestamp to its final ``tsdiff_anomaly`` value at ``/metrics``.

For each streamable detector (and its ``streaming`` preset where it has one), fitted on the first
3,000 training rows of the bundled SMD machine, a :class:`~tsdiff.watch.Watcher` is fed one new
row per poll (as ``tsdiff watch`` is, every step) from a stub source, and the script measures:

* **rows**: how many later rows a row waits for before its score is final (the geometry of the
  model: ``StreamScorer(det).latency``), checked against the rows actually emitted;
* **poll seconds**: the median and 99th percentile wall time of one poll (read, score, state
  write) once the first window has arrived, on 2 cores (38 metrics);
* **delay at 60 s rows**: rows x 60 s + one poll, plus a scrape interval of 15 s for Prometheus
  to read it: the time from a row's timestamp to its final value in Prometheus.

The diffusion models are trained for 30 steps only: training length changes neither the geometry
nor the scoring cost, which is what is measured here. Usage::

    python benchmarks/bench_alert_delay.py --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tsdiff.datasets import load_bundled
from tsdiff.registry import DETECTORS, build
from tsdiff.watch import Watcher

STEP_SECONDS, SCRAPE_SECONDS = 60, 15
RUNS = [
    ("pca", "default"),
    ("window-pca", "default"),
    ("kmeans", "default"),
    ("iforest", "default"),
    ("causal", "default"),
    ("causal", "streaming"),
    ("imdiffusion", "default"),
    ("imdiffusion", "streaming"),
    ("hybrid", "default"),
    ("hybrid", "streaming"),
]
SHORT_TRAINING = {"max_steps": 30}


class StubSource:
    """The rows of a frame, served as a Prometheus source would serve them (one step apart)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.step = frame, float(STEP_SECONDS)

    def read(self, start: pd.Timestamp, end: pd.Timestamp, columns: object = None) -> pd.DataFrame:
        return self.frame.loc[start:end]


def measure(name: str, preset: str, train: pd.DataFrame, live: pd.DataFrame) -> str:
    det = build(name, preset, random_state=0)
    if name == "imdiffusion":
        det.set_params(**SHORT_TRAINING)
    elif name == "hybrid":  # its diffusion component, trained briefly for the same reason
        if det.get_params()["diffusion"] is None:  # None: the diffusion model's defaults
            det.set_params(diffusion=build("imdiffusion", "default", random_state=0, **SHORT_TRAINING))
        else:
            det.set_params(**{f"diffusion__{k}": v for k, v in SHORT_TRAINING.items()})
    det.fit(train)
    with tempfile.TemporaryDirectory() as folder:
        watcher = Watcher(det, StubSource(live), state_path=Path(folder) / "state.json", start=live.index[0])
        latency = watcher.scorer.latency
        seconds, emitted_at = [], {}
        for i, stamp in enumerate(live.index):
            before = watcher.rows_scored
            t0 = time.perf_counter()
            watcher.poll(now=stamp)
            seconds.append(time.perf_counter() - t0)
            for k in range(before, watcher.rows_scored):
                emitted_at[k] = i
    # after the first window (no row can be scored before the model has a window of rows)
    warm = watcher.scorer.min_rows
    waits = [emitted_at[k] - k for k in emitted_at if k >= warm]
    observed = max(waits) if waits else float("nan")
    steady = seconds[watcher.scorer.min_rows + latency :] or seconds
    poll = statistics.median(steady)
    p99 = float(np.quantile(steady, 0.99))
    delay = latency * STEP_SECONDS + poll + SCRAPE_SECONDS
    line = f"| {name} | {preset} | {latency} | {observed} | {poll:.3f} | {p99:.3f} | {delay:.0f} |"
    logging.info(line)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--live-rows", type=int, default=120)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    warnings.simplefilter("ignore")
    data = load_bundled()
    index = pd.date_range("2024-06-01", periods=len(data.train) + len(data.test), freq="min", tz="UTC")
    train = data.train.iloc[:3000].set_axis(index[:3000])
    live = data.test.iloc[: args.live_rows].set_axis(
        index[len(data.train) : len(data.train) + args.live_rows]
    )
    lines = [
        "| detector | preset | rows (geometry) | rows (observed) | poll s (median) | poll s (p99) "
        "| delay s at 60 s rows |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, preset in RUNS:
        if preset not in DETECTORS[name].preset_names:
            continue
        lines.append(measure(name, preset, train, live))
    text = "\n".join(
        [
            "Command: `python benchmarks/bench_alert_delay.py --out benchmarks/RESULTS.md` (bundled SMD "
            "machine-1-2: fitted on its first 3,000 training rows, then fed its first "
            f"{args.live_rows} test rows one per poll; 2 cores).",
            "",
            "Rows: later rows a row waits for before its score is final (geometry, and the largest "
            "wait observed once the model's first window has arrived). Delay: rows x 60 s + one "
            "poll + a 15 s scrape, from a row's timestamp "
            "to its final value in Prometheus. Diffusion models trained for 30 steps (training "
            "length changes neither the wait nor the scoring cost).",
            "",
            *lines,
        ]
    )
    print(text)
    if args.out:
        from report import write_section

        write_section(args.out, "Alert delay of tsdiff watch", text)


if __name__ == "__main__":
    main()

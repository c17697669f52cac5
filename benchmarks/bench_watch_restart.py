"""Restart safety of ``tsdiff watch``: kill it (SIGKILL) again and again, count rows lost and repeated.

A real ``prometheus`` (Debian's package) serves a backfilled slice of the bundled SMD machine; a
model is fitted through ``tsdiff fit --prometheus`` on its first rows; ``tsdiff watch`` then
replays the rest (``--start``/``--until``, small batches) and is killed with SIGKILL at random
moments, ``--cycles`` times, each time restarted from its state file. At the end every row's
final score must appear exactly once in the ``--output`` log and equal the batch score.

Usage::

    python benchmarks/bench_watch_restart.py --cycles 20 --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' Prometheus helper
from tests.prometheus_server import BINARIES, PrometheusServer

START = pd.Timestamp("2024-06-01T00:00:00Z")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not all(BINARIES):
        sys.exit("needs Debian's prometheus package (apt-get install prometheus)")
    import tsdiff
    from tsdiff.datasets import load_bundled

    frame = load_bundled().train.iloc[: args.rows, :8].copy()
    frame.index = pd.date_range(START, periods=len(frame), freq="min")
    root = Path(tempfile.mkdtemp())
    server = PrometheusServer(root, frame, prefix="smd_", labels='machine="1-2"')
    url = server.url
    cli = [sys.executable, "-m", "tsdiff.cli", "-q"]
    fit_rows = args.rows // 2
    end_fit = (START + pd.Timedelta(minutes=fit_rows - 1)).isoformat()
    fit = [*cli, "fit", "--prometheus", url, "--selector", '{machine="1-2"}', "--start", START.isoformat()]
    subprocess.run([*fit, "--end", end_fit, "--detector", "causal", "-o", str(root / "model")], check=True)
    first = START + pd.Timedelta(minutes=fit_rows)
    last = START + pd.Timedelta(minutes=args.rows - 1)
    watch = [*cli, "watch", str(root / "model"), "--listen", "127.0.0.1:0", "--start", first.isoformat(),
             "--until", last.isoformat(), "--batch", "7", "--interval", "0.05",
             "--output", str(root / "rows.jsonl"), "--state", str(root / "state.json")]  # fmt: skip
    rng = random.Random(0)
    kills, t0 = 0, time.perf_counter()
    while kills < args.cycles:
        proc = subprocess.Popen(watch)
        time.sleep(rng.uniform(0.3, 1.5))
        if proc.poll() is not None:
            break  # finished before this kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    final = subprocess.run(watch, timeout=600)
    elapsed = time.perf_counter() - t0
    server.stop()
    records = [json.loads(x) for x in (root / "rows.jsonl").read_text().splitlines()]
    times = [pd.Timestamp(r["time"]) for r in records]
    det = tsdiff.load(root / "model")
    live = frame.iloc[fit_rows:].copy()
    live.index = live.index.as_unit("ns")
    live.columns = [f'smd_{c}{{machine="1-2"}}' for c in live.columns]
    expected = det.score(live[det.feature_names_in_])
    want = list(expected.index)
    lost = len(set(want) - set(times))
    repeated = len(times) - len(set(times))
    by_time = dict(zip(times, (r["score"] for r in records), strict=True))
    diff = max(abs(by_time[t] - expected[t]) for t in want if t in by_time)
    text = "\n".join(
        [
            "Command: `python benchmarks/bench_watch_restart.py "
            f"--cycles {args.cycles} --out benchmarks/RESULTS.md`. A real prometheus serving "
            f"{args.rows} backfilled rows of SMD machine-1-2 (8 metrics); the causal model fitted "
            f"through `tsdiff fit --prometheus` on the first {fit_rows}; `tsdiff watch` replaying the "
            "rest in batches of 7 rows, killed with SIGKILL at random moments (0.3-1.5 s apart) and "
            "restarted from its state file each time.",
            "",
            "| kills | rows to score | rows logged | lost | twice | max diff vs batch | exit | wall s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {kills} | {len(want)} | {len(times)} | {lost} | {repeated} | {diff:.2e} | {final.returncode} "
            f"| {elapsed:.0f} |",
        ]
    )
    print(text)
    shutil.rmtree(root, ignore_errors=True)
    if args.out:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import write_section

        write_section(args.out, "Restart safety of tsdiff watch", text)
    if lost or repeated or not np.isfinite(diff) or diff > 1e-6 or final.returncode:
        sys.exit(1)


if __name__ == "__main__":
    main()

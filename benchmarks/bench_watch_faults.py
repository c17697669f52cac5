"""``tsdiff watch`` under faults: each fault injected again and again, rows lost, twice and invented.

A real ``prometheus`` (Debian's package) serves a backfilled slice of the bundled SMD machine and
scrapes a live exporter; models are fitted through ``tsdiff fit --prometheus``. Then, for each
fault, a ``tsdiff watch`` process runs while the fault is injected ``--cycles`` times:

* ``SIGKILL``: the watcher is killed at random moments and restarted from its state;
* ``server outage``: Prometheus is stopped for 0.3-2 s at random moments and started again on the
  same port, while one watcher keeps running;
* ``second process``: another ``tsdiff watch`` is started on the same state (or only the same
  ``--output`` log) while the first runs; it must exit 2 at once, the first must go on;
* ``failed save``: the state file is replaced by a folder at a random moment, so the next save
  fails (the watcher exits 2), then removed, so the restart has no state at all (the case of a
  first save that failed): every row is scored again from ``--start``;
* ``clock skew``: the watcher runs under ``faketime`` with its clock 10 minutes ahead, 10 minutes
  behind, an hour ahead, ..., reading the live exporter's rows (skipped without ``faketime``).

The first four replay the backfilled rows (``--start``/``--until``); every row must appear exactly
once in the ``--output`` log with its batch score. The clock-skew runs read live rows; every row
between the first and the last logged must appear once, with the batch score of the same rows read
again afterwards (a row read before it was complete would differ: invented).

Usage::

    python benchmarks/bench_watch_faults.py --cycles 20 --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
from tests.prometheus_server import BINARIES, Exporter, PrometheusServer

START = pd.Timestamp("2024-06-01T00:00:00Z")
CLI = [sys.executable, "-m", "tsdiff.cli", "-q"]


class LiveGauges(Exporter):
    """Three related gauges from the wall clock (as the live tests' exporter)."""

    def body(self) -> bytes:
        t = time.time()
        rng = np.random.default_rng(int(t))
        a = math.sin(t / 5.0) + 0.05 * rng.standard_normal()
        b = 2.0 * a + 0.05 * rng.standard_normal()
        c = math.cos(t / 5.0) + 0.05 * rng.standard_normal()
        return f"live_a {a!r}\nlive_b {b!r}\nlive_c {c!r}\n".encode()


def logged(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def tally(records: list[dict], expected: pd.Series) -> dict[str, float]:
    """Rows lost, logged twice and invented (not a row to score, a score other than the batch
    score, or a gap where the row has data: NaN in ``expected`` marks rows without data), and the
    largest difference from the batch scores."""
    times = [pd.Timestamp(r["time"]) for r in records]
    scores = dict(zip(times, (np.nan if r["score"] is None else r["score"] for r in records), strict=True))

    def wrong(t: pd.Timestamp, s: float) -> bool:
        if t not in expected.index:
            return True
        return bool(np.isnan(s) != np.isnan(expected[t]) or abs(s - expected[t]) > 1e-6)

    invented = sum(wrong(t, s) for t, s in scores.items())
    diffs = [abs(s - expected[t]) for t, s in scores.items() if t in expected.index and np.isfinite(s)]
    return {
        "rows": len(expected),
        "logged": len(times),
        "lost": len(set(expected.index) - set(times)),
        "twice": len(times) - len(set(times)),
        "invented": invented,
        "diff": max(diffs, default=float("nan")),
    }


class Replay:
    """A ``tsdiff watch`` replay of the backfilled rows into its own state and log."""

    def __init__(self, root: Path, name: str, model: Path, first: pd.Timestamp, last: pd.Timestamp) -> None:
        self.folder = root / name
        self.folder.mkdir()
        self.state, self.output = self.folder / "state.json", self.folder / "rows.jsonl"
        self.args = [*CLI, "watch", str(model), "--listen", "127.0.0.1:0", "--start", first.isoformat(),
                     "--until", last.isoformat(), "--output", str(self.output),
                     "--state", str(self.state)]  # fmt: skip

    def start(self, batch: int, interval: float, **kwargs) -> subprocess.Popen:
        args = [*self.args, "--batch", str(batch), "--interval", str(interval)]
        return subprocess.Popen(args, stderr=subprocess.PIPE, text=True, **kwargs)


def sigkill(replay: Replay, cycles: int, rng: random.Random) -> tuple[int, str]:
    kills = 0
    while kills < cycles:
        proc = replay.start(batch=7, interval=0.05)
        time.sleep(rng.uniform(0.3, 1.5))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    final = replay.start(batch=7, interval=0.05)
    final.communicate(timeout=600)
    return kills, f"final exit {final.returncode}"


def outage(replay: Replay, cycles: int, rng: random.Random, server: PrometheusServer) -> tuple[int, str]:
    proc = replay.start(batch=1, interval=0.15)
    outages = 0
    while outages < cycles and proc.poll() is None:
        time.sleep(rng.uniform(0.5, 1.5))
        server.stop()
        time.sleep(rng.uniform(0.3, 2.0))
        server.start()
        outages += 1
    _, err = proc.communicate(timeout=600)
    retried = err.count("polling failed")
    return outages, f"exit {proc.returncode}, {retried} failed polls retried"


def second_process(replay: Replay, cycles: int, rng: random.Random) -> tuple[int, str]:
    proc = replay.start(batch=1, interval=0.1)
    refused, tries = 0, 0
    while tries < cycles and proc.poll() is None:
        time.sleep(rng.uniform(0.2, 0.8))
        args = list(replay.args)
        if tries % 2:  # the same log, another state: refused too
            args[args.index("--state") + 1] = str(replay.folder / "other-state.json")
        second = subprocess.run(args, capture_output=True, text=True, timeout=120)
        tries += 1
        refused += second.returncode == 2 and "in use by another tsdiff watch" in second.stderr
    proc.communicate(timeout=600)
    return tries, f"{refused} of {tries} refused with exit 2; first exit {proc.returncode}"


def failed_save(replay: Replay, cycles: int, rng: random.Random) -> tuple[int, str]:
    failures, exits = 0, []
    while failures < cycles:
        proc = replay.start(batch=7, interval=0.05)
        time.sleep(rng.uniform(0.3, 1.2))
        if proc.poll() is not None:
            break
        while True:  # the next save cannot replace a folder (a save may land in between: again)
            replay.state.unlink(missing_ok=True)
            try:
                replay.state.mkdir()
                break
            except FileExistsError:
                continue
        proc.communicate(timeout=120)
        exits.append(proc.returncode)
        replay.state.rmdir()  # and the restart finds no state at all
        failures += 1
    final = replay.start(batch=7, interval=0.05)
    final.communicate(timeout=600)
    leftovers = [p.name for p in replay.folder.iterdir() if p.name.endswith(".tmp")]
    return failures, (
        f"{exits.count(2)} of {failures} exited 2; final exit {final.returncode}; "
        f"{len(leftovers)} temporary files left"
    )


def clock_skew(
    root: Path, server: PrometheusServer, cycles: int, rng: random.Random
) -> tuple[dict, int, str]:
    exporter = LiveGauges().start()
    server.add_jobs({"live": (exporter.target, 1.0)})

    def samples() -> int:
        found = server.query("count_over_time(live_a[1m])")
        return int(float(found[0]["value"][1])) if found else 0

    server.wait_for(lambda: samples() >= 32, "32 s of live data to fit on", deadline=120)
    folder = root / "skew"
    folder.mkdir()
    queries = ["--query", "a=live_a", "--query", "b=live_b", "--query", "c=live_c"]
    subprocess.run([*CLI, "fit", "--prometheus", server.url, *queries, "--start", "now-30s",
                    "--end", "now-1s", "--step", "1s", "--detector", "pca", "-o", str(folder / "model")],
                   check=True)  # fmt: skip
    skews = ["+10m", "-10m", "+1h", "-30s", "+5s", "-1h"]
    watch = [*CLI, "watch", str(folder / "model"), "--listen", "127.0.0.1:0", "--interval", "0.5",
             "--output", str(folder / "rows.jsonl"), "--state", str(folder / "state.json")]  # fmt: skip
    for k in range(cycles):
        # faketime runs the watcher as its child: signal the whole group, or the watcher outlives it
        skewed = ["faketime", "-f", skews[k % len(skews)], *watch]
        proc = subprocess.Popen(skewed, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(3.0, 6.0))
        os.killpg(proc.pid, signal.SIGKILL if k % 2 else signal.SIGTERM)
        proc.wait()
        while subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).returncode == 0:
            time.sleep(0.05)  # the watcher itself has exited too
    records = logged(folder / "rows.jsonl")
    import tsdiff
    from tsdiff.sources.prometheus import PrometheusSource

    det = tsdiff.load(folder / "model")
    frame = PrometheusSource.from_dict(det.source_).read(records[0]["time"], records[-1]["time"])
    exporter.stop()
    expected = det.score(frame).where(frame.notna().any(axis=1))  # a row without data: a gap
    return tally(records, expected), cycles, f"skews {', '.join(skews)}"


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
    server = PrometheusServer(root / "server", frame, prefix="smd_", labels='machine="1-2"')
    rng = random.Random(0)
    rows = []
    try:
        fit_rows = args.rows // 2
        end_fit = (START + pd.Timedelta(minutes=fit_rows - 1)).isoformat()
        fit = [
            *CLI,
            "fit",
            "--prometheus",
            server.url,
            "--selector",
            '{machine="1-2"}',
            "--start",
            START.isoformat(),
        ]
        subprocess.run(
            [*fit, "--end", end_fit, "--detector", "causal", "-o", str(root / "model")], check=True
        )
        det = tsdiff.load(root / "model")
        first, last = START + pd.Timedelta(minutes=fit_rows), START + pd.Timedelta(minutes=args.rows - 1)
        live = frame.iloc[fit_rows:].rename(columns=lambda c: f'smd_{c}{{machine="1-2"}}')
        live.index = live.index.as_unit("ns")
        expected = det.score(live[det.feature_names_in_])
        faults = [
            ("SIGKILL", lambda r: sigkill(r, args.cycles, rng)),
            ("server outage", lambda r: outage(r, args.cycles, rng, server)),
            ("second process", lambda r: second_process(r, args.cycles, rng)),
            ("failed save", lambda r: failed_save(r, args.cycles, rng)),
        ]
        for name, inject in faults:
            replay = Replay(root, name.replace(" ", "-"), root / "model", first, last)
            t0 = time.perf_counter()
            injected, note = inject(replay)
            counts = tally(logged(replay.output), expected)
            rows.append((name, injected, counts, note, time.perf_counter() - t0))
            print(rows[-1], flush=True)
        if shutil.which("faketime"):
            t0 = time.perf_counter()
            counts, injected, note = clock_skew(root, server, args.cycles, rng)
            rows.append(("clock skew (live rows)", injected, counts, note, time.perf_counter() - t0))
            print(rows[-1], flush=True)
        else:
            print("clock skew skipped: faketime is not installed (apt-get install faketime)", flush=True)
    finally:
        server.stop()
    table = [
        "| fault | injected | rows to score | rows logged | lost | twice | invented | max diff vs batch "
        "| what else | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, injected, c, note, seconds in rows:
        table.append(
            f"| {name} | {injected} | {c['rows']} | {c['logged']} | {c['lost']} | {c['twice']} "
            f"| {c['invented']} | {c['diff']:.1e} | {note} | {seconds:.0f} |"
        )
    text = "\n".join(
        [
            f"Command: `python benchmarks/bench_watch_faults.py --cycles {args.cycles} "
            "--out benchmarks/RESULTS.md` (2 cores). A real prometheus serving "
            f"{args.rows} backfilled rows of SMD machine-1-2 (8 metrics); "
            f"the causal model fitted through `tsdiff fit --prometheus` on the first {args.rows // 2}; "
            "`tsdiff watch` replaying the rest while each fault is injected (see the script's docstring); "
            "the clock-skew runs read a live exporter scraped every second, with a PCA model fitted on 30 s "
            "of it, the watcher under `faketime`.",
            "",
            *table,
        ]
    )
    print(text)
    shutil.rmtree(root, ignore_errors=True)
    if args.out:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import write_section

        write_section(args.out, "tsdiff watch under faults", text)
    if any(c["lost"] or c["twice"] or c["invented"] for _, _, c, _, _ in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()

"""``tsdiff fleet watch`` at scale: N hosts x M metrics from one real Prometheus.

Each host's metrics are simulated (M related gauges: a shared daily-like cycle, host-specific
phases and noise; a few hosts get an injected anomaly, each on its own metric and moment) for
``--history`` rows of training and ``--live`` rows to watch, one row every ``--step`` seconds, and
backfilled into Debian's ``prometheus`` with ``promtool`` (2024 times; the watcher replays the live
part one step per poll, reading complete rows from the server exactly as it reads live ones). Then:

1. ``tsdiff fleet fit --prometheus`` on the training part (one model per host, Dask, ``--workers``);
2. ``FleetWatcher`` polls the live part one step per poll: per poll the whole cycle (read every
   query once for all hosts, score every host, export, state saved with fsync) is timed;
3. the injected anomalies: flagged on their own host, and on no other host.

Reported per N and detector: fit seconds per host, poll duration p50 / p99, polls made,
peak resident memory of the watcher process, CPU seconds per host per poll, the anomalies found.

Usage::

    python benchmarks/bench_fleet_watch.py --hosts 100,500 --detectors pca,causal:streaming \
        --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' Prometheus helper
from tests.prometheus_server import BINARIES, PrometheusServer

START = pd.Timestamp("2024-06-01T00:00:00Z")


def simulate(
    hosts: int, metrics: int, rows: int, step: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """host -> (rows, metrics) values: a shared cycle with a phase per host, related metrics."""
    t = np.arange(rows) * step
    out = {}
    mix = rng.normal(size=(metrics, 3))
    for h in range(hosts):
        phase = rng.uniform(0, 2 * np.pi)
        cycles = [np.sin(2 * np.pi * t / 3600 + phase), np.cos(2 * np.pi * t / 900 + phase)]
        base = np.stack([*cycles, rng.normal(size=rows)], axis=1)
        out[f"host-{h:04d}"] = base @ mix.T + 0.1 * rng.normal(size=(rows, metrics))
    return out


def openmetrics_text(data: dict[str, np.ndarray], step: float) -> str:
    metrics = next(iter(data.values())).shape[1]
    lines = []
    for m in range(metrics):
        name = f"node_m{m}"
        lines.append(f"# TYPE {name} gauge")
        for host, values in data.items():
            for i, v in enumerate(values[:, m]):
                stamp = int(START.value // 10**9 + i * step)
                lines.append(f'{name}{{instance="{host}",job="node"}} {v:.6g} {stamp}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def run(n_hosts: int, detector: str, preset: str, args: argparse.Namespace) -> dict[str, float]:
    from tsdiff.fleet.live import fit_fleet_from_prometheus
    from tsdiff.registry import build
    from tsdiff.sources.prometheus import PrometheusSource

    rng = np.random.default_rng(0)
    rows = args.history + args.live
    data = simulate(n_hosts, args.metrics, rows, args.step, rng)
    anomalies = {}  # host -> (metric, first live row)
    for k, host in enumerate(sorted(data)[: args.anomalies]):
        metric, at = k % args.metrics, args.history + 20 + 7 * k
        data[host][at : at + 5, metric] += 8.0 * data[host][: args.history, metric].std()
        anomalies[host] = (metric, at)
    root = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    server = PrometheusServer(root / "server", text=openmetrics_text(data, args.step))
    backfill_s = time.perf_counter() - t0
    try:
        source = PrometheusSource(server.url, selector='{job="node"}', step=f"{args.step:g}s")
        end = START + pd.Timedelta(seconds=args.step * (args.history - 1))
        t0 = time.perf_counter()
        template = build(detector, preset, random_state=0)
        if args.risk is not None:
            template.set_params(risk=args.risk)
        fit = fit_fleet_from_prometheus(
            source, "instance", START, end, template, root / "fleet",
            n_workers=args.workers, verbose=False, threshold=args.threshold,
        )  # fmt: skip
        own = own_thresholds(root / "fleet", fit.ok, float(template.risk))
        fit_s = time.perf_counter() - t0
        first = START + pd.Timedelta(seconds=args.step * args.history)
        until = START + pd.Timedelta(seconds=args.step * (rows - 1))
        results = []
        for workers in (int(w) for w in args.watch_workers.split(",")):
            log = root / f"rows-{workers}.jsonl"
            # the watcher in its own process, so its peak memory is its own (not the simulation's)
            refit = (args.refit_every, f"{args.refit_window or args.history * args.step:g}s")
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                timing = pool.submit(watch, root, log, first, until, workers, refit).result()
            results.append((workers, log, timing))
        kills = args.kills if n_hosts == int(args.hosts.split(",")[0]) else 0
        killed = kill_cycles(root, results[0][1], first, until, kills, n_hosts, refit) if kills else None
    finally:
        server.stop()
    fitted = {
        "hosts": n_hosts,
        "fitted": len(fit.ok),
        "backfill s": backfill_s,
        "fit s per host": fit_s / n_hosts,
    }
    return [
        {
            **fitted,
            "watch workers": workers,
            **outcome(log, timing[:3], anomalies, n_hosts, args.step, own),
            **(timing[3] if args.refit_every else {}),
            "SIGKILLs: rows lost / twice / changed": killed or "-",
        }
        for workers, log, timing in results
    ]


def own_thresholds(model_dir: Path, hosts: list[str], risk: float) -> dict[str, float]:
    """Each host's own threshold (POT on its own held-out scores, as ``--threshold host`` keeps it),
    to count the false alarms the pool saved."""
    import tsdiff
    from tsdiff.fleet.storage import entity_path
    from tsdiff.thresholds import make_threshold

    return {
        str(h): make_threshold("pot", risk=risk)
        .fit(tsdiff.load(entity_path(model_dir, h)).calibration_scores_)
        .threshold_
        for h in hosts
    }


def outcome(
    log: Path,
    timing: tuple[list, list, float],
    anomalies: dict[str, tuple[int, int]],
    n_hosts: int,
    step: float,
    own: dict[str, float],
) -> dict[str, Any]:
    """A watch run's figures: its timing, and the anomalies and false alarms in its log (under the
    fleet's thresholds, and under each host's own)."""
    durations, cpu, rss = timing
    flagged: dict[str, list[int]] = {}
    own_flagged: set[str] = set()
    normal_rows = normal_flagged = own_normal_flagged = 0
    for line in log.read_text().splitlines():
        row = json.loads(line)
        if row["entity"] not in anomalies and row.get("label") is not None:
            normal_rows += 1
            normal_flagged += row["label"] == 1
            if row["score"] > own[row["entity"]]:
                own_normal_flagged += 1
                own_flagged.add(row["entity"])
        if row.get("label") == 1:
            at = round((row["seconds"] - START.value / 1e9) / step)
            flagged.setdefault(row["entity"], []).append(at)
    found = sum(
        any(at <= r < at + 5 + 16 for r in flagged.get(host, [])) for host, (_, at) in anomalies.items()
    )
    elsewhere = sorted(h for h in flagged if h not in anomalies)
    return {
        "poll p50 s": statistics.median(durations),
        "poll p99 s": float(np.quantile(durations, 0.99)),
        "polls": len(durations),
        "peak RSS MiB": rss,
        "CPU ms per host per poll": 1000 * statistics.fmean(cpu) / n_hosts,
        "anomalies found": f"{found} of {len(anomalies)}",
        "hosts flagged without an anomaly": len(elsewhere),
        "their rows flagged %": 100 * normal_flagged / max(1, normal_rows),
        "same, own thresholds: hosts / rows %": f"{len(own_flagged)} / "
        f"{100 * own_normal_flagged / max(1, normal_rows):.2f}",
    }


def kill_cycles(
    root: Path,
    clean: Path,
    first: pd.Timestamp,
    until: pd.Timestamp,
    kills: int,
    hosts: int,
    refit: tuple[str | None, str] = (None, "1d"),
) -> str:
    """``tsdiff fleet watch`` replaying the same rows, SIGKILLed ``kills`` times at random moments
    and restarted from its state; its log against the clean run's: (entity, row) pairs lost,
    logged twice, or with another score. With scheduled refits (``refit``: every, window) the
    models take over at moments that depend on the kills, so scores are not compared ("-"), and the
    refits that took over by the end are counted."""
    rng = random.Random(0)
    folder = root / "killed"
    folder.mkdir()
    output = folder / "rows.jsonl"
    args = [sys.executable, "-m", "tsdiff.cli", "-q", "fleet", "watch", str(root / "fleet"),
            "--listen", "127.0.0.1:0", "--start", first.isoformat(), "--until", until.isoformat(),
            "--output", str(output), "--state", str(folder / "state.json"), "--batch", "1",
            "--interval", "0.5"]  # fmt: skip
    if refit[0]:
        args += ["--refit-every", refit[0], "--refit-window", refit[1]]
    done = 0
    while done < kills:
        proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 3.0 + hosts / 100))  # loading every host's model takes a while
        if proc.poll() is not None:
            break  # the replay ended before the kill: start again from scratch would repeat it
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done += 1
    subprocess.run(args, stderr=subprocess.DEVNULL, check=True, timeout=1800)

    def rows(path: Path) -> list[tuple[str, str, float | None]]:
        return [(r["entity"], r["time"], r["score"]) for r in map(json.loads, path.read_text().splitlines())]

    want, got = rows(clean), rows(output)
    keys = [(e, t) for e, t, _ in got]
    expected = {(e, t): v for e, t, v in want}
    changed = 0  # not a row of the clean run, or another score
    for entity, stamp, score in got:
        want_score = expected.get((entity, stamp), "absent")
        if want_score == "absent" or (score is None) != (want_score is None):
            changed += 1
        elif score is not None and abs(score - want_score) > 1e-6:
            changed += 1
    # every host logs every row (gaps included): the grid of both logs' hosts and times
    hosts, stamps = {e for e, _ in [*expected, *keys]}, {t for _, t in [*expected, *keys]}
    lost = len({(e, t) for e in hosts for t in stamps} - set(keys))
    if refit[0]:
        state = json.loads((folder / "state.json").read_text())
        took_over = len(state.get("models") or {})
        twice = len(keys) - len(set(keys))
        return f"{done} kills: {lost} / {twice} / - ({took_over} hosts on refitted models)"
    return f"{done} kills: {lost} / {len(keys) - len(set(keys))} / {changed}"


def watch(
    root: Path,
    log: Path,
    first: pd.Timestamp,
    until: pd.Timestamp,
    workers: int,
    refit: tuple[str | None, str] = (None, "1d"),
) -> tuple[list, list, float, dict[str, Any]]:
    """Replay the live rows one poll per step, the hosts scored here (``workers`` 0) or sharded over
    that many local Dask workers; each poll's seconds and CPU seconds (this process and the
    workers), the peak RSS MiB of this process plus the workers', and (``refit``: every, window)
    the scheduled refits made meanwhile."""
    import contextlib

    from tsdiff.fleet.cluster import fleet_client
    from tsdiff.fleet.watch import FleetWatcher

    logging.getLogger("tsdiff").setLevel(logging.ERROR)
    durations, cpu = [], []
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(fleet_client(n_workers=workers)) if workers else None

        def cpu_now() -> float:
            there = sum(client.run(time.process_time).values()) if client is not None else 0.0
            return time.process_time() + there

        state = root / f"state-{workers}.json"
        every, window = refit
        with FleetWatcher(
            root / "fleet", state_path=state, output=log, start=first, batch=1, client=client,
            refit_every=every, refit_window=window,
        ) as w:  # fmt: skip
            while True:
                c0 = cpu_now()
                if not w.poll(until=until):
                    break
                durations.append(w.poll_seconds)
                cpu.append(cpu_now() - c0)
            w.finish()
            w.refits.wait()
            refits = {
                "refit rounds": w.refits.rounds,
                "hosts refitted (took over)": w.refits.refits,
                "refit failures": w.refits.failures,
                "last refit round s": w.refits.round_seconds,
            }
        rss = peak_rss_mib() + (sum(client.run(peak_rss_mib).values()) if client is not None else 0.0)
    return durations, cpu, rss, refits


def peak_rss_mib() -> float:
    """This process's peak resident memory. Not ``getrusage``'s ``ru_maxrss``: Linux carries a
    forked child's high-water mark across ``exec``, so a spawned worker would report its parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="100,500")
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--detectors", default="pca,causal:streaming", help="name[:preset], comma-separated")
    parser.add_argument("--history", type=int, default=1440, help="training rows per host")
    parser.add_argument("--live", type=int, default=60, help="rows watched, one poll each")
    parser.add_argument("--step", type=float, default=15.0)
    parser.add_argument("--anomalies", type=int, default=5, help="hosts with an injected anomaly")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers for the fit")
    parser.add_argument(
        "--watch-workers", default="0", help="Dask workers the watch shards hosts over (0: in one process)"
    )
    parser.add_argument(
        "--kills", type=int, default=0, help="also SIGKILL a fleet watch this often (the first N only)"
    )
    parser.add_argument(
        "--threshold", default="auto", choices=("auto", "pooled", "host"), help="fleet fit --threshold"
    )
    parser.add_argument("--risk", type=float, help="fleet fit --risk (default: the detector's)")
    parser.add_argument("--refit-every", help="fleet watch --refit-every (a duration; default: none)")
    parser.add_argument(
        "--refit-window", type=float, help="seconds of rows each refit learns from (default: the history)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not all(BINARIES):
        sys.exit("needs Debian's prometheus package (apt-get install prometheus)")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("tsdiff").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    rows = []
    for spec in args.detectors.split(","):
        name, _, preset = spec.partition(":")
        for n in (int(h) for h in args.hosts.split(",")):
            for result in run(n, name, preset or "default", args):
                rows.append((f"{name} {preset or 'default'}", result))
                print(json.dumps({"detector": rows[-1][0], **result}, default=str), flush=True)
    keys = list(rows[0][1])
    table = ["| detector | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, result in rows:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in result.values()]
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(
        [
            f"Command: `python benchmarks/bench_fleet_watch.py --hosts {args.hosts} --metrics {args.metrics} "
            f"--detectors {args.detectors} --history {args.history} --live {args.live} --step {args.step:g} "
            f"--watch-workers {args.watch_workers} --threshold {args.threshold}"
            f"{f' --risk {args.risk:g}' if args.risk is not None else ''}"
            f"{f' --kills {args.kills}' if args.kills else ''}"
            f"{f' --refit-every {args.refit_every}' if args.refit_every else ''}` "
            f"(2 cores, alone). Split: none (cost). {args.metrics} metrics per host, {args.history} "
            f"training rows and {args.live} watched rows {args.step:g} s apart, backfilled into a real "
            "prometheus; the fit on "
            f"{args.workers} local Dask workers; the watcher in a process of its own (watch workers 0) or "
            "sharding the hosts over that many local Dask workers, one poll per step, each poll reading "
            "every query once for all hosts, scoring each host, saving the state (fsync); CPU and peak "
            "memory count the watcher and its workers. "
            "An anomaly (5 rows shifted by 8 standard deviations on one metric of one host) is found "
            "when its host is flagged within those rows or the 16 after them; the last three columns are "
            "false alarms: the hosts without an anomaly that were flagged, the share of their rows, and "
            "the same two figures had each host kept its own threshold (POT on its own held-out scores, "
            f"`--threshold host`) instead of `--threshold {args.threshold}`.",
            "",
            *table,
        ]
    )
    print(text)
    if args.out:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import write_section

        # a run with SIGKILLs has its own section (it is made with fewer hosts)
        title = "Fleet watch under SIGKILL" if args.kills else "Fleet watch"
        write_section(args.out, f"{title} with scheduled refits" if args.refit_every else title, text)


if __name__ == "__main__":
    main()

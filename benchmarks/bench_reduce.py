"""How the diffusion detector turns entry errors into a row score: reduction rules compared offline.

``ImDiffusionDetector`` measures an imputation error for every (row, denoising step, metric). This
script fits the detector once per series (benchmark defaults, seed 0), caches the entry errors of
the held-out training rows and of the test rows, and then applies each reduction rule to the
cache. Every rule is calibrated on the held-out training rows only (never on test labels) and is
scored by VUS-PR. Usage::

    python benchmarks/bench_reduce.py --collect           # fit and cache (slow: one fit a series)
    python benchmarks/bench_reduce.py [--out benchmarks/RESULTS.md]   # compare the rules
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_section
from splits import SPLITS, Split

import tsdiff
from tsdiff.diffusion.voting import combine_steps, reduce_errors
from tsdiff.frame import centered_mean
from tsdiff.metrics import choose_sliding_window, vus_pr
from tsdiff.thresholds import make_threshold


def collect(series, cache: Path, seed: int, params: dict) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    for s in series:
        path = cache / f"{s.name.replace('/', '_')}.npz"
        if path.exists():
            continue
        t0 = time.perf_counter()
        det = tsdiff.ImDiffusionDetector(random_state=seed, verbose=False, **params).fit(s.train)
        val = det.imputation_errors(s.train.iloc[det.n_train_rows_ :])  # the held-out rows
        test = det.imputation_errors(s.test)
        step_errors, _ = reduce_errors(test, det.config_.smooth_length())
        np.savez_compressed(
            path,
            val=val.astype(np.float32),
            test=test.astype(np.float32),
            labels=np.asarray(s.labels, dtype=np.int8),
            reference=combine_steps(step_errors, det.step_thresholds_, det.config_).astype(np.float32),
        )
        logging.info("%s cached in %.0f s", s.name, time.perf_counter() - t0)


# ----------------------------------------------------------------------------- reduction rules
def metric_scale(val: np.ndarray) -> np.ndarray:
    """Per (step, metric) error scale on held-out rows, floored so quiet metrics cannot explode."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        scale = np.nanmean(val, axis=0)  # (S, K)
    scale = np.nan_to_num(scale, nan=1.0)
    floor = 0.1 * np.median(scale, axis=1, keepdims=True)
    return np.maximum(scale, np.maximum(floor, 1e-6))


def over_metrics(entry: np.ndarray, how: str) -> np.ndarray:
    """(n, S, K) -> (n, S)."""
    filled = np.nan_to_num(entry, nan=0.0)
    if how == "mean":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            return np.nan_to_num(np.nanmean(entry, axis=2), nan=0.0)
    if how == "max":
        return filled.max(axis=2)
    if how.startswith("top"):
        k = max(1, min(entry.shape[2], int(how[3:])))
        return -np.sort(-filled, axis=2)[:, :, :k].mean(axis=2)
    if how.startswith("blend"):
        return 0.5 * over_metrics(entry, "mean") + 0.5 * over_metrics(entry, how[5:])
    raise ValueError(how)


def smooth_entries(entry: np.ndarray, length: int) -> np.ndarray:
    """Centred mean along time of every (step, metric) column."""
    n, s, k = entry.shape
    flat = np.nan_to_num(entry, nan=0.0).reshape(n, s * k)
    return centered_mean(flat, length).reshape(n, s, k)


def over_steps(val_rows: np.ndarray, test_rows: np.ndarray, how: str) -> np.ndarray:
    """(n, S) -> (n,): vote (5th largest threshold ratio, as the detector) or mean ratio."""
    thresholds = np.array(
        [max(make_threshold("pot", risk=1e-3).fit(col).threshold_, 1e-12) for col in val_rows.T]
    )
    ratios = test_rows / thresholds[None, :]
    if how == "mean":
        return ratios.mean(axis=1)
    m = max(1, int(np.ceil(0.5 * ratios.shape[1])))
    return -np.partition(-ratios, m - 1, axis=1)[:, m - 1]


def rule(normalise: bool, metrics: str, smooth_first: bool, steps: str = "vote", length: int = 16):
    def apply(val: np.ndarray, test: np.ndarray) -> np.ndarray:
        if normalise:
            scale = metric_scale(val)
            val, test = val / scale[None], test / scale[None]
        if smooth_first:  # smooth each metric, then reduce (a sustained one-metric shift stands out)
            v = over_metrics(smooth_entries(val, length), metrics)
            t = over_metrics(smooth_entries(test, length), metrics)
        else:  # reduce, then smooth the row error (the detector's current order)
            v = centered_mean(over_metrics(val, metrics), length)
            t = centered_mean(over_metrics(test, metrics), length)
        return over_steps(v, t, steps)

    return apply


RULES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "raw, mean, reduce then smooth (current)": rule(False, "mean", False),
    "raw, mean, steps mean": rule(False, "mean", False, "mean"),
    "normalised, mean": rule(True, "mean", False),
    "normalised, mean, smooth first": rule(True, "mean", True),
    "normalised, top3": rule(True, "top3", False),
    "normalised, top3, smooth first": rule(True, "top3", True),
    "normalised, max, smooth first": rule(True, "max", True),
    "normalised, blend top3, smooth first": rule(True, "blendtop3", True),
    "normalised, blend max, smooth first": rule(True, "blendmax", True),
    "raw, blend top3, smooth first": rule(False, "blendtop3", True),
    "raw, top3, smooth first": rule(False, "top3", True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("benchmarks/out/entry_errors"))
    parser.add_argument("--collect", action="store_true")
    parser.add_argument("--params", default="{}", help="detector parameters for --collect, as JSON")
    parser.add_argument("--datasets", default="synthetic,skab,smd")
    parser.add_argument("--split", choices=SPLITS, default="dev", help="see benchmarks/splits.py")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rules", default="", help="comma-separated substrings of rule names")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    chosen = args.datasets.split(",")

    def series():
        return Split(args.split).series(chosen)

    if args.collect:
        collect(series(), args.cache, 0, json.loads(args.params))
        return
    warnings.filterwarnings("ignore")
    rules = RULES
    if args.rules:
        rules = {k: v for k, v in RULES.items() if any(p in k for p in args.rules.split(","))}
    table: dict[str, dict[str, list[float]]] = {}
    datasets: list[str] = []
    for s in series():
        path = args.cache / f"{s.name.replace('/', '_')}.npz"
        if not path.exists():
            continue
        data = dict(np.load(path))
        window = choose_sliding_window(s.test.to_numpy())
        if s.dataset not in datasets:
            datasets.append(s.dataset)
        table.setdefault("detector as fitted", {}).setdefault(s.dataset, []).append(
            vus_pr(s.labels, data["reference"], window)
        )
        for name, fn in rules.items():
            score = fn(data["val"].astype(np.float64), data["test"].astype(np.float64))
            table.setdefault(name, {}).setdefault(s.dataset, []).append(vus_pr(s.labels, score, window))
    lines = [
        "Command: `python benchmarks/bench_reduce.py` (entry errors cached by `--collect`, one fit per "
        "series with the benchmark defaults). VUS-PR of each reduction rule, mean over each dataset's "
        "series; every rule is calibrated on the held-out training rows only.",
        "",
        "| rule | " + " | ".join(f"VUS-PR {d}" for d in datasets) + " | mean |",
        "|---|" + "---:|" * (len(datasets) + 1),
    ]
    for name, per in table.items():
        means = [statistics.fmean(per[d]) if d in per else float("nan") for d in datasets]
        lines.append(f"| {name} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {np.nanmean(means):.3f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        write_section(args.out, "Diffusion score reduction", report)


if __name__ == "__main__":
    main()

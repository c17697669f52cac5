"""Run detectors side by side on the same series and measure accuracy, time and memory.

Used by ``benchmarks/run.py``. Every detector of one run sees the same series; thresholds are the
detectors' own label-free ones; VUS uses the per-series sliding window chosen as TSB-AD does.
"""

from __future__ import annotations

import gc
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger("benchmarks")

SCORES_DIR: Path | None = None  # set by run.py --scores to keep every run's test scores
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except OSError:  # not Linux: fall back to the process peak (coarser)
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak resident memory above the level at entry, sampled every few milliseconds.

    Counts everything the process allocates (numpy, torch, scikit-learn), unlike tracemalloc.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        gc.collect()
        self._base = _rss_bytes()
        self.peak = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def mib(self) -> float:
        return (self.peak - self._base) / 2**20


@dataclass
class Series:
    """One benchmark series: a dataset name (table), a series name (row group), and its data."""

    dataset: str
    name: str
    train: Any
    test: Any
    labels: np.ndarray


@dataclass
class RunResult:
    dataset: str
    series: str
    detector: str
    vus_pr: float
    auc_pr: float
    vus_roc: float
    auc_roc: float
    f1: float
    event_f1: float
    pa_f1: float
    flagged: float
    fit_s: float
    score_s: float
    peak_mib: float
    n_train: int
    n_test: int
    error: str = ""


def _evaluate(
    series: Series, name: str, detector: Any, result: Any, window: int, times: tuple[float, float, float]
) -> RunResult:
    """One run's accuracy against ``series.labels`` (and its scores saved, with SCORES_DIR)."""
    from tsdiff.metrics import evaluate

    pred = result.labels.to_numpy()
    if SCORES_DIR is not None:  # per-run scores, for studying score fusion offline
        SCORES_DIR.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            SCORES_DIR / f"{series.name.replace('/', '_')}__{name.replace('/', '+')}.npz",
            scores=result.scores.to_numpy(np.float32),
            labels=np.asarray(series.labels, dtype=np.int8),
            calibration=np.asarray(detector.calibration_scores_, dtype=np.float32),
            threshold=np.float64(result.threshold),
        )
    m = evaluate(series.labels, result.scores.to_numpy(), window, pred=pred)
    fit_s, score_s, peak_mib = times
    return RunResult(
        dataset=series.dataset,
        series=series.name,
        detector=name,
        vus_pr=m["VUS-PR"],
        auc_pr=m["AUC-PR"],
        vus_roc=m["VUS-ROC"],
        auc_roc=m["AUC-ROC"],
        f1=m["Standard-F1"],
        event_f1=m["Event-based-F1"],
        pa_f1=m["PA-F1"],
        flagged=float(pred.mean()),
        fit_s=fit_s,
        score_s=score_s,
        peak_mib=peak_mib,
        n_train=len(series.train),
        n_test=len(series.test),
    )


def run_one(
    series: Series, name: str, factory: Callable[[], Any], components: bool = False
) -> list[RunResult]:
    """Fit on ``series.train``, detect on ``series.test``, evaluate against ``series.labels``.

    With ``components``, a fused detector's components are also evaluated on their own, as runs
    named ``NAME/COMPONENT``: their own scores, taken as the fused detector computes them (a fused
    detector leaves scaling to its components, so these are the scores of that detector fitted
    alone with the same settings and seed; their time is inside the fused run's).
    """
    from tsdiff.metrics import choose_sliding_window

    window = choose_sliding_window(series.test.to_numpy())
    nan = float("nan")
    captured: dict[str, Any] = {}
    try:
        with PeakMemory() as mem:
            detector = factory()
            t0 = time.perf_counter()
            detector.fit(series.train)
            t1 = time.perf_counter()
            if components and hasattr(detector, "fitted_components"):
                for part, component in detector.fitted_components().items():
                    _record_scores(component, part, captured)
            result = detector.detect(series.test)
            t2 = time.perf_counter()
    except Exception as exc:  # one failing detector must not sink the whole run
        logger.exception("%s failed on %s/%s", name, series.dataset, series.name)
        return [
            RunResult(
                series.dataset,
                series.name,
                name,
                *([nan] * 12),
                len(series.train),
                len(series.test),
                error=f"{type(exc).__name__}: {exc}",
            )
        ]
    out = [_evaluate(series, name, detector, result, window, (t1 - t0, t2 - t1, mem.mib))]
    for part, scores in captured.items():
        component = detector.fitted_components()[part]
        part_result = SimpleNamespace(
            scores=pd.Series(scores),
            labels=pd.Series((scores > component.threshold_).astype(np.int8)),
            threshold=component.threshold_,
        )
        out.append(_evaluate(series, f"{name}/{part}", component, part_result, window, (nan, nan, nan)))
    return out


def _record_scores(component: Any, part: str, captured: dict[str, Any]) -> None:
    """Keep the scores ``component`` gives inside its fused detector (its own, before calibration)."""
    own = component.score_scaled

    def recorded(values: np.ndarray, offset: int = 0, memo: dict | None = None) -> Any:
        parts = own(values, offset, memo)
        captured[part] = np.asarray(parts.scores, dtype=np.float64)
        return parts

    component.score_scaled = recorded


def _log(r: RunResult) -> None:
    logger.info(
        "%-10s %-22s %-9s VUS-PR %.3f AUC-PR %.3f F1 %.3f fit %.1fs score %.1fs peak %.0f MiB%s",
        r.dataset,
        r.series,
        r.detector,
        r.vus_pr,
        r.auc_pr,
        r.f1,
        r.fit_s,
        r.score_s,
        r.peak_mib,
        f" ERROR {r.error}" if r.error else "",
    )


def run_all(
    series_list: Iterator[Series],
    detectors: dict[str, Callable[[], Any]],
    reuse: list[RunResult] | None = None,
    raw_path: Path | None = None,
    run_missing: bool = True,
    components: bool = False,
) -> list[RunResult]:
    """Run every detector on every series.

    Results in ``reuse`` (same dataset, series and detector, without an error) are kept instead of
    being run again (with ``run_missing=False`` only those are reported); with ``raw_path`` the raw
    results are rewritten after each run, so an interrupted benchmark resumes where it stopped.
    """
    done = {(r.dataset, r.series, r.detector): r for r in reuse or [] if not r.error}
    results = []
    for series in series_list:
        for name, factory in detectors.items():
            key = (series.dataset, series.name, name)
            if key in done:
                results.append(done[key])
                results += [r for k, r in done.items() if k[:2] == key[:2] and k[2].startswith(f"{name}/")]
                continue
            if not run_missing:
                continue
            for r in run_one(series, name, factory, components):
                _log(r)
                results.append(r)
            if raw_path is not None:
                kept = [
                    v
                    for k, v in done.items()
                    if k not in {(x.dataset, x.series, x.detector) for x in results}
                ]
                save_raw(kept + results, raw_path)
    return results


# ----------------------------------------------------------------- report
COLUMNS = [
    ("VUS-PR", "vus_pr", "{:.3f}"),
    ("AUC-PR", "auc_pr", "{:.3f}"),
    ("VUS-ROC", "vus_roc", "{:.3f}"),
    ("F1", "f1", "{:.3f}"),
    ("event F1", "event_f1", "{:.3f}"),
    ("PA-F1 (optimistic)", "pa_f1", "{:.3f}"),
    ("flagged", "flagged", "{:.1%}"),
    ("fit s", "fit_s", "{:.1f}"),
    ("score s", "score_s", "{:.1f}"),
    ("peak MiB", "peak_mib", "{:.0f}"),
]
# averaged over a dataset's series, except times (summed) and memory (max)
AGGREGATE = {"fit_s": sum, "score_s": sum, "peak_mib": max}


def _aggregate(rows: list[RunResult], field: str) -> float:
    values = [getattr(r, field) for r in rows if not r.error]
    if not values:
        return float("nan")
    return float(AGGREGATE.get(field, statistics.fmean)(values))


def _table(groups: dict[str, list[RunResult]], first: str) -> list[str]:
    lines = [f"| {first} | " + " | ".join(c[0] for c in COLUMNS) + " |"]
    lines.append("|---|" + "---:|" * len(COLUMNS))
    for label, rows in groups.items():
        cells = [fmt.format(_aggregate(rows, field)) for _, field, fmt in COLUMNS]
        errors = sum(1 for r in rows if r.error)
        lines.append(f"| {label}{f' ({errors} failed)' if errors else ''} | " + " | ".join(cells) + " |")
    return lines


def markdown_report(results: list[RunResult], detectors: list[str], header: str) -> str:
    """One table per dataset (detectors as rows) and a table of means over datasets."""
    out = [header, ""]
    datasets = list(dict.fromkeys(r.dataset for r in results))
    per_dataset: dict[str, dict[str, float]] = {}
    for ds in datasets:
        rows = [r for r in results if r.dataset == ds]
        n_series = len({r.series for r in rows})
        note = f" — mean over {n_series} series; times summed, memory max" if n_series > 1 else ""
        out += [f"### {ds}{note}", ""]
        out += _table({d: [r for r in rows if r.detector == d] for d in detectors}, "detector")
        out.append("")
        for d in detectors:
            per_dataset.setdefault(d, {})[ds] = _aggregate([r for r in rows if r.detector == d], "vus_pr")
    out += ["### Mean over datasets (each dataset weighs the same)", ""]
    out.append(
        "| detector | "
        + " | ".join(f"{c[0]}" for c in COLUMNS[:6])
        + " | "
        + " | ".join(f"VUS-PR {ds}" for ds in datasets)
        + " |"
    )
    out.append("|---|" + "---:|" * (6 + len(datasets)))
    for d in detectors:
        means = []
        for _, field, fmt in COLUMNS[:6]:
            vals = [
                _aggregate([r for r in results if r.dataset == ds and r.detector == d], field)
                for ds in datasets
            ]
            means.append(fmt.format(float(np.nanmean(vals)) if not np.isnan(vals).all() else float("nan")))
        out.append(
            f"| {d} | "
            + " | ".join(means)
            + " | "
            + " | ".join(f"{per_dataset[d][ds]:.3f}" for ds in datasets)
            + " |"
        )
    out.append("")
    return "\n".join(out)


def merge_results(old: list[RunResult], new: list[RunResult]) -> list[RunResult]:
    """``old`` results not run again in ``new``, followed by ``new``."""
    fresh = {(r.dataset, r.series, r.detector) for r in new}
    return [r for r in old if (r.dataset, r.series, r.detector) not in fresh] + list(new)


def load_raw(path: Path) -> list[RunResult]:
    """Results written by :func:`save_raw` (an empty list when the file does not exist)."""
    import json

    if not path.exists():
        return []
    return [RunResult(**row) for row in json.loads(path.read_text())]


def save_raw(results: list[RunResult], path: Path) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in results], indent=1))

"""Events as the on-call engineer gets them: how they are cut, and whether they name the root cause.

For each detector and series of a split, the detector is fitted once and its test scores, per-metric
scores and evidence are kept (``--cache``, default ``benchmarks/out/events``); then every event
segmentation in ``VARIANTS`` cuts the flagged rows into events (:mod:`tsdiff.segmentation`) and
each is measured:

* **event F1**: an event is a true positive when it overlaps a labelled stretch no earlier event
  took; a stretch is found when an event took it (one event per stretch, so merging two anomalies
  into one event costs recall);
* **event-level root causes**, on the series whose stretches name their root causes: for each
  labelled stretch, the event that overlaps it most (the one the user reads) and its
  ``root_causes`` and ``affected``, a missed stretch scoring 0. SMD: HitRate@100% and @150%
  against the interpretation labels; synthetic (10 metrics x 10,000 rows, the root-cause seeds of
  ``bench_causal.py``): top-1 and top-3 of the injected root;
* the share of stretches any event overlaps, and beside them the **oracle**: ``rank_causes`` over
  each labelled stretch itself (the model's own answer given the right rows).

Usage::

    python benchmarks/bench_events.py --split dev --detectors causal
    python benchmarks/bench_events.py --split report --detectors causal,hybrid@smd+skab+synthetic \
        --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from splits import SMD_MACHINES, Split

import tsdiff
from tsdiff.causal import hit_rate, top_k_accuracy
from tsdiff.errors import DatasetError
from tsdiff.registry import build
from tsdiff.results import run_slices
from tsdiff.segmentation import SegmentRules, segment_rows

#: synthetic series with injected roots (as bench_causal.py: 10 metrics x 10,000 rows, noise 0.1)
ROOT_SEEDS = {"dev": list(range(10, 20)), "report": list(range(10))}
#: kept test outputs older than this are scored again from their saved model (2: the fusion's
#: tail calibration no longer saturates)
CACHE_VERSION = 2
RANKS = ("root_causes", "affected")
#: segmentations compared: the rule of time alone (gap 120 was the default before), and the
#: evidence rule over a grid of its parameters
VARIANTS: dict[str, SegmentRules] = {
    f"time, gap {g}{' (before)' if g == 120 else ''}": SegmentRules.time_only(g) for g in (60, 120, 240)
}
for _gap, _near in ((120, 120), (240, 120), (240, 240), (360, 120)):
    for _near_top, _far_top in ((1, 1), (3, 1), (3, 2), (3, 3), (5, 1)):
        if _near == _gap and _far_top != _near_top:
            continue  # one tier: the far one never applies
        for _probe in (3, 10, 30):
            VARIANTS[f"gap {_gap}, near {_near}: top {_near_top}, far top {_far_top}, probe {_probe}"] = (
                SegmentRules(
                    merge_gap=_gap,
                    bridge=30,
                    near_gap=_near,
                    near_top=_near_top,
                    far_top=_far_top,
                    probe=_probe,
                )
            )
VARIANTS["default: " + ", ".join(f"{k} {v}" for k, v in SegmentRules().__dict__.items())] = SegmentRules()


@dataclass
class Case:
    """One series: its test part, labels, and labelled stretches with their root causes."""

    dataset: str
    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    labels: np.ndarray
    roots: list[tuple[int, int, list[Any]]] | None  # (start, end exclusive, metrics)


def cases(split: str, datasets: list[str]) -> Iterator[Case]:
    from tsdiff.datasets import load_smd, make_synthetic

    for ds in datasets:
        if ds == "smd":
            for machine in SMD_MACHINES[split]:
                try:
                    data = load_smd(machine)
                except DatasetError as exc:
                    logging.warning("skipping SMD %s: %s", machine, exc)
                    continue
                roots = [(int(r.start), int(r.end), list(r.metrics)) for r in data.root_causes.itertuples()]
                yield Case("SMD", machine, data.train, data.test, data.labels.to_numpy(), roots)
        elif ds == "synthetic":
            for seed in ROOT_SEEDS[split]:
                data = make_synthetic(n_metrics=10, n_rows=10000, random_state=seed)
                roots = [(int(r.start), int(r.end), list(r.metrics)) for r in data.root_causes.itertuples()]
                yield Case("synthetic", f"seed{seed}", data.train, data.test, data.labels.to_numpy(), roots)
        else:  # event F1 only
            for series in Split(split).series([ds]):
                yield Case(series.dataset, series.name, series.train, series.test, series.labels, None)


def scored(case: Case, detector: str, cache: Path) -> tuple[Any, dict[str, np.ndarray]]:
    """The fitted detector and its test outputs, from the cache or computed (and cached)."""
    folder = cache / detector / case.dataset / case.name.replace("/", "_")
    arrays = folder / "parts.npz"
    if arrays.exists():
        det, out = tsdiff.load(folder / "model"), dict(np.load(arrays))
        fit_s = float(out["fit_seconds"])
        default_weighting = build(detector).get_params().get("weighting")
        if getattr(det, "weighting", None) == "fixed" and default_weighting != "fixed":
            # a fusion saved with fixed weights: the components are those of today's default, its
            # weights are chosen again as the default chooses them
            det.reweigh(case.train)
        elif int(out.get("version", 1)) == CACHE_VERSION or not hasattr(det, "weighting"):
            return det, out
        # else scores of a fusion kept before the calibration changed: the model scores again
    else:
        folder.mkdir(parents=True, exist_ok=True)
        det = build(detector, "default", random_state=0)
        t0 = time.perf_counter()
        det.fit(case.train)
        fit_s = time.perf_counter() - t0
    parts = det.score_scaled(det.scaler_.transform(case.test.to_numpy()))
    out = {
        "scores": np.asarray(parts.scores),
        "feature_scores": np.asarray(parts.feature_scores),
        "evidence": np.asarray(parts.evidence),
        "threshold": np.asarray(det.threshold_),
        "fit_seconds": np.asarray(fit_s),
        "version": np.asarray(CACHE_VERSION),
    }
    det.save(folder / "model")
    np.savez(arrays, **out)
    logging.info("%s %s/%s fitted in %.0f s", detector, case.dataset, case.name, fit_s)
    return det, out


def event_f1(spans: list[slice], labels: np.ndarray) -> float:
    """One event per labelled stretch (see the module docstring)."""
    stretches = run_slices(labels)
    taken: set[int] = set()
    tp = 0
    for ev in spans:
        for k, st in enumerate(stretches):
            if k not in taken and ev.start < st.stop and st.start < ev.stop:
                taken.add(k)
                tp += 1
                break
    if not spans or not stretches:
        return float("nan") if not stretches else 0.0
    precision, recall = tp / len(spans), len(taken) / len(stretches)
    return 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)


def root_scores(case: Case, spans: list[slice], explain: Any) -> dict[str, list[float]]:
    """Per labelled stretch, the event-level and oracle scores of ``root_causes`` and ``affected``."""
    metrics = ("hit100", "hit150") if case.dataset == "SMD" else ("top1", "top3")
    keys = [f"{who} {rank} {m}" for who in ("event", "oracle") for rank in RANKS for m in metrics]
    out: dict[str, list[float]] = {key: [] for key in keys}
    out["overlapped"] = []
    events = explain(spans) if spans else []

    def score(order: list[Any], truth: list[Any], m: str) -> float:
        if m == "hit100":
            return hit_rate(order, truth, 100)
        if m == "hit150":
            return hit_rate(order, truth, 150)
        return top_k_accuracy([order], [truth], 1 if m == "top1" else 3)

    oracle = explain([slice(a, b) for a, b, _ in case.roots]) if case.roots else []
    for (a, b, truth), own in zip(case.roots or [], oracle, strict=True):
        overlaps = [min(b, ev.stop) - max(a, ev.start) for ev in spans]
        best = int(np.argmax(overlaps)) if overlaps and max(overlaps) > 0 else None
        out["overlapped"].append(float(best is not None))
        for rank in RANKS:
            for m in metrics:
                order = [] if best is None else list(getattr(events[best], rank))
                out[f"event {rank} {m}"].append(score(order, truth, m) if order else 0.0)
                out[f"oracle {rank} {m}"].append(score(list(getattr(own, rank)), truth, m))
    return out


#: thresholds compared in the adaptation table (None: the model's fitted one)
ADAPT = (None, "window", "dspot", "budget")
#: the alert budget's parameters explored on dev (--adapt-grid): budget share, window rows, hold rows
BUDGET_GRID = [
    {"budget": b, "window": w, "hold": h}
    for b in (0.005, 0.01, 0.02)
    for w in (100, 200, 400)
    for h in (0, 8, 16, 32)
]


def budget_name(params: dict[str, Any]) -> str:
    return f"budget {params['budget']:g}, window {params['window']}, hold {params['hold']}"


def adapted_labels(det: Any, scores: np.ndarray, adapt: str | None, **params: Any) -> np.ndarray:
    """Row labels of a stream of ``scores`` with the threshold ``adapt`` (see StreamScorer)."""
    if adapt is None:
        return (scores > det.threshold_).astype(np.int8)
    from tsdiff.thresholds import make_threshold

    model = make_threshold(adapt, risk=float(det.risk), **params).fit(det.calibration_scores_)
    return np.array([model.update(s) for s in scores], dtype=np.int8)


def adaptation(
    case: Case, det: Any, parts: dict[str, np.ndarray], grid: bool = False
) -> dict[str, dict[str, float]]:
    """Per threshold: the share of normal rows flagged, and the share of labelled stretches an
    event (the default segmentation) overlaps; with ``grid``, also every budget of BUDGET_GRID."""
    out = {}
    normal = case.labels == 0
    stretches = run_slices(case.labels)
    tried: list[tuple[str, str | None, dict[str, Any]]] = [(str(a), a, {}) for a in ADAPT]
    if grid:
        tried += [(budget_name(p), "budget", p) for p in BUDGET_GRID]
    for name, adapt, params in tried:
        labels = adapted_labels(det, parts["scores"], adapt, **params)
        spans = segment_rows(labels, parts["feature_scores"], SegmentRules())
        found = [any(ev.start < st.stop and st.start < ev.stop for ev in spans) for st in stretches]
        out[name] = {
            "fp": float(labels[normal].mean()) if normal.any() else float("nan"),
            "recall": float(np.mean(found)) if found else float("nan"),
        }
    return out


def measure(
    detector: str, split: str, datasets: list[str], cache: Path, grid: bool = False
) -> dict[str, dict[str, dict]]:
    """variant -> dataset -> {"f1": [...], score name: [...]} over every series."""
    results: dict[str, dict[str, dict]] = {v: {} for v in VARIANTS}
    for case in cases(split, datasets):
        det, parts = scored(case, detector, cache)
        labels = (parts["scores"] > float(parts["threshold"])).astype(np.int8)
        index = case.test.index

        def explain(spans: list[slice], det: Any = det, parts: dict = parts, index: Any = index) -> list[Any]:
            if det.names_root_causes():
                return det.explain_events(parts["evidence"], spans, index)
            from tsdiff.incidents import rank_by_mean

            names = list(det.feature_names_in_)
            return [_Ranked([], rank_by_mean(parts["feature_scores"][ev], names)) for ev in spans]

        for adapt, figures in adaptation(case, det, parts, grid).items():
            bucket = results.setdefault(f"adapt {adapt}", {}).setdefault(
                case.dataset, {"fp": [], "recall": []}
            )
            bucket["fp"].append(figures["fp"])
            bucket["recall"].append(figures["recall"])
        for variant, rules in VARIANTS.items():
            spans = segment_rows(labels, parts["feature_scores"], rules)
            bucket = results[variant].setdefault(case.dataset, {"f1": []})
            bucket["f1"].append(event_f1(spans, case.labels))
            if case.roots:
                for key, values in root_scores(case, spans, explain).items():
                    bucket.setdefault(key, []).extend(values)
        logging.info("%s %s/%s measured", detector, case.dataset, case.name)
    return results


@dataclass
class _Ranked:
    root_causes: list[Any]
    affected: list[Any]


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return statistics.fmean(finite) if finite else float("nan")


def adaptation_table(results: dict[str, dict[str, dict]]) -> list[str]:
    shown = [d for d in ("SMD", "SKAB", "synthetic", "MSL") if any(d in r for r in results.values())]
    head = " | ".join(f"{d}: normal rows flagged (mean / worst series) | stretches found" for d in shown)
    lines = [f"| threshold | {head} |", "|---|" + "---:|---:|" * len(shown)]
    for key, by in results.items():
        cells = []
        for d in shown:
            fp = [v for v in by.get(d, {}).get("fp", []) if np.isfinite(v)]
            recall = _mean(by.get(d, {}).get("recall", []))
            cells.append(f"{_mean(fp):.2%} / {max(fp, default=float('nan')):.2%} | {recall:.3f}")
        name = key.removeprefix("adapt ")
        if name == "budget":
            from tsdiff.thresholds import BudgetThreshold

            name = f"{budget_name(BudgetThreshold().get_params())} (default)"
        name = "fitted (no adaptation)" if name == "None" else name
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _adapt_summary(by: dict[str, dict]) -> tuple[float, float]:
    """Mean over datasets of the mean share of normal rows flagged, and of the stretches found."""
    fp = _mean([_mean(v["fp"]) for v in by.values()])
    return fp, _mean([_mean(v["recall"]) for v in by.values()])


def choose_budget(everything: dict[str, dict[str, dict]], slack: float = 0.05) -> list[str]:
    """The dev rule for the budget's parameters: among the candidates whose stretches found (mean
    over datasets) stay within ``slack`` of no adaptation for every detector, the fewest normal
    rows flagged (mean over detectors and datasets)."""
    best = None
    for params in BUDGET_GRID:
        name = f"adapt {budget_name(params)}"
        fps, ok = [], True
        for results in everything.values():
            fp, recall = _adapt_summary(results[name])
            ok &= recall >= _adapt_summary(results["adapt None"])[1] - slack
            fps.append(fp)
        if ok and (best is None or statistics.fmean(fps) < best[0]):
            best = (statistics.fmean(fps), params)
    if best is None:
        return [f"No budget keeps the stretches found within {slack} of no adaptation."]
    return [
        f"Rule: among the budgets whose stretches found (mean over datasets) stay within {slack} of no "
        "adaptation for every detector, the fewest normal rows flagged (mean over detectors and datasets): "
        f"**{budget_name(best[1])}** ({best[0]:.2%} of normal rows)."
    ]


def _on_overlapped(bucket: dict[str, list[float]], key: str) -> str:
    """Mean of ``key`` over the labelled stretches an event overlaps."""
    kept = [v for v, hit in zip(bucket[key], bucket["overlapped"], strict=True) if hit]
    return f"{statistics.fmean(kept):.3f}" if kept else "-"


def gap_table(detector: str, results: dict[str, dict[str, dict]]) -> list[str]:
    """Where the event-level shortfall comes from (default segmentation): the stretches no event
    overlaps, or the ranking of the events that do (against the oracle on the same stretches)."""
    default = next((by for name, by in results.items() if name.startswith("default")), None)
    if default is None:
        return []
    lines = [
        f"Where the gap is ({detector}, default segmentation): the labelled stretches an event overlaps, "
        "and on those stretches only, the events' rankings beside the oracle's.",
        "",
        "| dataset | stretches an event overlaps | events: root_causes / affected "
        "| oracle: root_causes / affected |",
        "|---|---:|---:|---:|",
    ]
    for dataset, measure in (("SMD", "hit100"), ("synthetic", "top1")):
        bucket = default.get(dataset)
        if not bucket or not bucket.get("overlapped"):
            continue
        hits = bucket["overlapped"]
        cells = [
            " / ".join(_on_overlapped(bucket, f"{who} {rank} {measure}") for rank in RANKS)
            for who in ("event", "oracle")
        ]
        label = "HitRate@100%" if measure == "hit100" else "top-1"
        lines.append(f"| {dataset} ({label}) | {int(sum(hits))} of {len(hits)} | {cells[0]} | {cells[1]} |")
    return lines


def tables(detector: str, results: dict[str, dict[str, dict]], datasets: list[str]) -> list[str]:
    adapt = {k: v for k, v in results.items() if k.startswith("adapt ")}
    results = {k: v for k, v in results.items() if not k.startswith("adapt ")}
    shown = [d for d in ("SMD", "SKAB", "synthetic", "MSL") if any(d in r for r in results.values())]
    head = "| segmentation | " + " | ".join(f"{d} F1" for d in shown) + " | mean F1 | "
    head += "SMD events: root_causes / affected @100% | @150% | synthetic events: root_causes top-1 / top-3 "
    head += "| affected top-1 | stretches overlapped (SMD / synthetic) |"
    lines = [f"**{detector}**", "", head, "|---|" + "---:|" * (len(shown) + 6)]
    for variant, by in results.items():
        f1 = [_mean(by[d]["f1"]) if d in by else float("nan") for d in shown]
        smd, syn = by.get("SMD", {}), by.get("synthetic", {})

        def m(bucket: dict, key: str) -> str:
            return f"{_mean(bucket[key]):.3f}" if key in bucket else "-"

        lines.append(
            f"| {variant} | " + " | ".join(f"{v:.3f}" for v in f1) + f" | {_mean(f1):.3f} | "
            f"{m(smd, 'event root_causes hit100')} / {m(smd, 'event affected hit100')} | "
            f"{m(smd, 'event root_causes hit150')} / {m(smd, 'event affected hit150')} | "
            f"{m(syn, 'event root_causes top1')} / {m(syn, 'event root_causes top3')} | "
            f"{m(syn, 'event affected top1')} | {m(smd, 'overlapped')} / {m(syn, 'overlapped')} |"
        )
    any_by = next(iter(results.values()))
    smd, syn = any_by.get("SMD", {}), any_by.get("synthetic", {})

    def m(bucket: dict, key: str) -> str:
        return f"{_mean(bucket[key]):.3f}" if key in bucket else "-"

    lines.append(
        f"| oracle: `rank_causes` over each labelled stretch | {' | '.join('' for _ in shown)} | | "
        f"{m(smd, 'oracle root_causes hit100')} / {m(smd, 'oracle affected hit100')} | "
        f"{m(smd, 'oracle root_causes hit150')} / {m(smd, 'oracle affected hit150')} | "
        f"{m(syn, 'oracle root_causes top1')} / {m(syn, 'oracle root_causes top3')} | "
        f"{m(syn, 'oracle affected top1')} | 1 / 1 |"
    )
    lines += ["", *gap_table(detector, results)]
    if adapt:
        lines += [
            "",
            f"Adapting the threshold ({detector}, default segmentation):",
            "",
            *adaptation_table(adapt),
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "report"), default="dev")
    parser.add_argument(
        "--detectors", default="causal", help="comma-separated; name@smd+skab measures those datasets only"
    )
    parser.add_argument("--datasets", default="smd,skab,synthetic,msl")
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "out" / "events")
    parser.add_argument(
        "--variants",
        help="only the variants whose name holds one of these (';' between); report split default: "
        "the time rule before and the default",
    )
    parser.add_argument(
        "--adapt-grid",
        action="store_true",
        help="also try every budget of BUDGET_GRID and apply the dev rule",
    )
    parser.add_argument("--json", type=Path, help="also write every figure as JSON")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    warnings.simplefilter("ignore")
    given = f" --variants '{args.variants}'" if args.variants else ""
    if args.variants is None and args.split == "report":
        args.variants = "(before);default"  # the grid was explored on dev: report what it chose
    if args.variants:
        wanted = args.variants.split(";")
        for name in [v for v in VARIANTS if not any(w in v for w in wanted)]:
            del VARIANTS[name]
    datasets = args.datasets.split(",")
    body = [
        f"Command: `python benchmarks/bench_events.py --split {args.split} --detectors {args.detectors} "
        f"--datasets {args.datasets}{given}{' --adapt-grid' if args.adapt_grid else ''}`. "
        f"Split: {args.split} (SMD {', '.join(SMD_MACHINES[args.split])}; synthetic root-cause seeds "
        f"{ROOT_SEEDS[args.split][0]}..{ROOT_SEEDS[args.split][-1]}; SKAB and MSL as in splits.py). "
        "Detector defaults, seed 0, each with its own threshold.",
        "",
    ]
    everything = {}
    for spec in args.detectors.split(","):
        detector, _, only = spec.partition("@")  # hybrid@smd+skab: those datasets only
        mine = [d for d in datasets if not only or d in only.split("+")]
        results = measure(detector, args.split, mine, args.cache, args.adapt_grid)
        everything[detector] = results
        body += [*tables(detector, results, mine), ""]
    if args.adapt_grid:
        body += [*choose_budget(everything), ""]
    text = "\n".join(body)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(everything, default=float))
    if args.out:
        from report import write_section

        write_section(args.out, f"Events and their root causes ({args.split} split)", text)


if __name__ == "__main__":
    main()

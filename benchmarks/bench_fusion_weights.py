"""Label-free fusion weights: which rule keeps each component's lead, and the random-component test.

1. **Hybrid rules.** For every fitted hybrid of ``bench_events.py``'s cache (``--cache``; fitted
   with the given weights), the calibrated test scores of both components, and the evidence each
   weighting rule can use without labels, computed from the training rows only:
   * ``injection``: each component's skill on anomalies injected into the held-out rows
     (:func:`tsdiff.fusion.injected_skills`), weights = given x skill^power;
   * ``stability``: how alike each component's held-out scores are in the two halves of those rows
     (1 - the Kolmogorov-Smirnov distance), weights = given x stability^power;
   * ``fixed``: the given weights (0.5 / 0.5, the rule before).
   VUS-PR of the fused score per dataset, beside each component alone and the best of the two per
   series (an oracle no rule can know), and the time the injection took beside the hybrid's fit.
2. **A random component.** A good detector (causal, PCA) fused with ``RandomDetector`` under each
   rule, VUS-PR beside the good detector alone, on every series of the split.

Usage::

    python benchmarks/bench_fusion_weights.py --split dev
    python benchmarks/bench_fusion_weights.py --split report --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_events
from splits import Split

from tsdiff.fusion import FusionDetector, common_tail, fuse, injected_skills
from tsdiff.injection import evidence, skill_weights, stability
from tsdiff.metrics import choose_sliding_window, vus_pr
from tsdiff.registry import build

POWERS = (1.0, 2.0, 4.0)
COMPONENTS = ("diffusion", "causal")
DEFAULT_RULE = "injection-stability"


def series_evidence(case: Any, cache: Path) -> dict[str, Any]:
    """A cached hybrid's label-free evidence and calibrated test scores for one series: the
    injected-anomaly skills, the held-out stability, each component's calibrated test score and the
    injection and fit times (kept in ``cache/fusion/``, so that rules are compared without scoring
    again)."""
    path = cache / "fusion" / case.dataset / f"{case.name.replace('/', '_')}.npz"
    if path.exists():
        kept = dict(np.load(path, allow_pickle=False))
        names = [str(n) for n in kept["names"]]
        if any(f"held_{n}" not in kept for n in names):  # kept before the held-out scores were
            det, _ = bench_events.scored(case, "hybrid", cache)
            held = common_tail({n: c.calibration_scores_ for n, c in det.components_.items()})
            kept.update({f"held_{n}": np.asarray(held[n]) for n in names})
            np.savez(path, **kept)
        return {
            "skills": dict(zip(names, map(float, kept["skills"]), strict=True)),
            "stability": dict(zip(names, map(float, kept["stability"]), strict=True)),
            "held": {n: kept[f"held_{n}"] for n in names},
            "calibrated": {n: kept[f"test_{n}"] for n in names},
            "cost": (float(kept["inject_seconds"]), float(kept["fit_seconds"])),
        }
    det, parts = bench_events.scored(case, "hybrid", cache)
    values = case.train.to_numpy(dtype=np.float64)
    held = common_tail({n: c.calibration_scores_ for n, c in det.components_.items()})
    t0 = time.perf_counter()
    skills = injected_skills(det.components_, values, len(next(iter(held.values()))), 0)
    inject_s = time.perf_counter() - t0
    steady = {n: stability(h) for n, h in held.items()}
    calibrated = det.score_scaled(det.scaler_.transform(case.test.to_numpy(dtype=np.float64))).components
    names = list(calibrated)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        names=np.array(names),
        skills=np.array([skills[n] for n in names]),
        stability=np.array([steady[n] for n in names]),
        inject_seconds=np.asarray(inject_s),
        fit_seconds=np.asarray(float(parts["fit_seconds"])),
        **{f"test_{n}": np.asarray(calibrated[n]) for n in names},
        **{f"held_{n}": np.asarray(held[n]) for n in names},
    )
    return {
        "skills": skills,
        "stability": steady,
        "held": held,
        "calibrated": calibrated,
        "cost": (inject_s, float(parts["fit_seconds"])),
    }


def chance_corrected(held: np.ndarray) -> float:
    """The stability corrected for chance, as the skill is: the halves' KS distance above its 95%
    critical value for two samples of that size, scaled to [0, 1] (so a short held-out set is not
    called unsteady for the spread of few scores alone)."""
    x = np.asarray(held, dtype=np.float64)
    x = x[np.isfinite(x)]
    crit = min(1.0, 1.358 * np.sqrt(4.0 / max(len(x), 1)))
    distance = 1.0 - stability(x)
    return 1.0 - max(0.0, distance - crit) / (1.0 - crit) if crit < 1.0 else 1.0


def shrunk(held: np.ndarray, rows: float = 300.0) -> float:
    """The stability shrunk towards 1 on few held-out rows: 1 - distance x n / (n + rows)."""
    n = int(np.isfinite(np.asarray(held, dtype=np.float64)).sum())
    return 1.0 - (1.0 - stability(held)) * n / (n + rows)


def rules_for(
    skills: dict[str, float], steady: dict[str, float], held: dict[str, np.ndarray] | None = None
) -> dict[str, dict[str, float]]:
    """Every candidate weighting rule, from one series' label-free evidence."""
    given = {"diffusion": 0.5, "causal": 0.5}
    rules: dict[str, dict[str, float]] = {"fixed 0.5 / 0.5 (before)": given}
    for power in POWERS:
        rules[f"injection, power {power:g}"] = skill_weights(skills, given, power)
        rules[f"stability, power {power:g}"] = skill_weights(steady, given, power)
    for power in POWERS:
        # stability among the components whose injected-anomaly skill is above chance: a random
        # score is stable but has no skill, so the gate drops it
        gated = {n: (steady[n] if skills[n] > 0 else 0.0) for n in skills}
        rules[f"skill-gated stability, power {power:g}"] = skill_weights(gated, given, power)
    for power in POWERS:
        both = evidence(skills, steady)
        rules[f"injection x stability^2, power {power:g}"] = skill_weights(both, given, power)
    if held is not None:  # the stability corrected for short held-out sets, at the default's power
        for label, measure in (
            ("chance-corrected", chance_corrected),
            ("shrunk (300 rows)", shrunk),
            ("shrunk (1,000 rows)", lambda h: shrunk(h, 1000.0)),
        ):
            both = evidence(skills, {n: measure(h) for n, h in held.items()})
            rules[f"injection x {label} stability^2, power 2"] = skill_weights(both, given, 2.0)
    return rules


def hybrid_rows(split: str, datasets: list[str], cache: Path) -> list[str]:
    results: dict[str, dict[str, list[float]]] = {}
    costs: list[tuple[float, float]] = []
    for case in bench_events.cases(split, datasets):
        ev = series_evidence(case, cache)
        skills, steady, calibrated = ev["skills"], ev["stability"], ev["calibrated"]
        costs.append(ev["cost"])
        labels = case.labels
        window = choose_sliding_window(case.test.to_numpy())
        alone = {n: vus_pr(labels, s, sliding_window=window) for n, s in calibrated.items()}
        bucket = results.setdefault(case.dataset, {})
        for name, score in alone.items():
            bucket.setdefault(f"{name} alone", []).append(score)
        bucket.setdefault("best component per series (oracle)", []).append(max(alone.values()))
        for rule, weights in rules_for(skills, steady, ev["held"]).items():
            fused = fuse(calibrated, weights)
            bucket.setdefault(rule, []).append(vus_pr(labels, fused, sliding_window=window))
        logging.info(
            "%s %s: skills %s, stability %s, alone %s", case.dataset, case.name, skills, steady, alone
        )
    shown = [d for d in ("SMD", "SKAB", "synthetic", "MSL") if d in results]
    names = list(next(iter(results.values())))
    head = " | ".join(f"{d} VUS-PR" for d in shown)
    lines = [
        f"| rule | {head} | mean | largest shortfall against the better component of a dataset |",
        "|---|" + "---:|" * (len(shown) + 2),
    ]
    for name in names:
        means = [statistics.fmean(results[d][name]) for d in shown]
        better = [
            max(statistics.fmean(results[d][f"{c} alone"]) for c in ("diffusion", "causal")) for d in shown
        ]
        gap = max(b - m for b, m in zip(better, means, strict=True))
        cells = " | ".join(f"{m:.3f}" for m in means)
        lines.append(f"| {name} | {cells} | {statistics.fmean(means):.3f} | {gap:+.3f} |")
    share = [c / f for c, f in costs if f > 0]
    lines += [
        "",
        f"Injection cost: {statistics.fmean(c for c, _ in costs):.1f} s per series on average, "
        f"{100 * statistics.fmean(share):.1f}% of the hybrid's fit time (worst {100 * max(share):.1f}%).",
    ]
    return lines


def more_components_rows(split: str, datasets: list[str], cache: Path, base: str = "hybrid") -> list[str]:
    """Diffusion + causal (the hybrid's fitted pair) and + tsai-forecast, + window-pca, fused with
    the default rule (injection-stability) and with equal weights. ``base="streaming"``: the pair of
    the low-latency hybrid (its preset, fitted here with seed 0) and + tsai-forecast, whose final
    scores also come within a few rows (window-pca's centred window waits 50)."""
    from tsdiff.calibration import TailCalibrator

    extras = {"forecast": "tsai-forecast", "window-pca": "window-pca"}
    sets = {
        "diffusion + causal": ("diffusion", "causal"),
        "+ forecast": ("diffusion", "causal", "forecast"),
        "+ forecast + window-pca": ("diffusion", "causal", "forecast", "window-pca"),
    }
    if base == "streaming":
        extras = {"forecast": "tsai-forecast"}
        sets = {"streaming diffusion + causal": ("diffusion", "causal"), "+ forecast": sets["+ forecast"]}
    results: dict[str, dict[str, list[float]]] = {}
    for case in bench_events.cases(split, datasets):
        if base == "streaming":
            t0 = time.perf_counter()
            det = build("hybrid", "streaming", random_state=0, verbose=False).fit(case.train)
            logging.info(
                "%s/%s: the streaming hybrid fitted in %.0f s",
                case.dataset,
                case.name,
                time.perf_counter() - t0,
            )
        else:
            det, _ = bench_events.scored(case, "hybrid", cache)
        comps = dict(det.components_)
        for name, registered in extras.items():
            t0 = time.perf_counter()
            comps[name] = build(registered, "default", random_state=0, verbose=False).fit(case.train)
            logging.info(
                "%s/%s: %s fitted in %.0f s", case.dataset, case.name, name, time.perf_counter() - t0
            )
        values = case.train.to_numpy(dtype=np.float64)
        test = case.test.to_numpy(dtype=np.float64)
        held = common_tail({n: c.calibration_scores_ for n, c in comps.items()})
        calibrated = {}
        for name, comp in comps.items():
            raw = comp.score_scaled(comp.scaler_.transform(test)).scores
            calibrated[name] = TailCalibrator().fit(held[name]).transform(raw)
        window = choose_sliding_window(test)
        bucket = results.setdefault(case.dataset, {})

        def score(values: np.ndarray, labels: np.ndarray = case.labels, window: int = window) -> float:
            return vus_pr(labels, values, sliding_window=window)

        for label, names in sets.items():
            subset = {n: comps[n] for n in names}
            skills = injected_skills(subset, values, len(held[names[0]]), 0)
            steady = {n: stability(held[n]) for n in names}
            equal = {n: 1.0 for n in names}
            chosen = skill_weights(evidence(skills, steady), equal, 2.0)
            for rule, weights in (("equal", equal), (DEFAULT_RULE, chosen)):
                fused = fuse({n: calibrated[n] for n in names}, weights)
                bucket.setdefault(f"{label}, {rule}", []).append(
                    vus_pr(case.labels, fused, sliding_window=window)
                )
        for name in comps:
            bucket.setdefault(f"{name} alone", []).append(
                vus_pr(case.labels, calibrated[name], sliding_window=window)
            )
        logging.info("more components on %s/%s done", case.dataset, case.name)
    shown = [d for d in ("SMD", "SKAB", "synthetic", "MSL") if d in results]
    lines = [
        "| components, weights | " + " | ".join(shown) + " | mean |",
        "|---|" + "---:|" * (len(shown) + 1),
    ]
    for name in results[shown[0]]:
        means = [statistics.fmean(results[d][name]) for d in shown]
        lines.append(
            f"| {name} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {statistics.fmean(means):.3f} |"
        )
    return lines


def random_rows(split: str, datasets: list[str]) -> list[str]:
    lines = [
        "| good detector | dataset | alone | + random, fixed 0.5 / 0.5 "
        "| + random, injection-stability (default) "
        "| random's weight |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for good in ("causal", "pca"):
        per: dict[str, dict[str, list[float]]] = {}
        for series in Split(split).series(datasets):
            window = choose_sliding_window(series.test.to_numpy())
            labels = series.labels
            alone = build(good, "default", random_state=0).fit(series.train)
            row = per.setdefault(series.dataset, {"alone": [], "fixed": [], DEFAULT_RULE: [], "weight": []})
            row["alone"].append(vus_pr(labels, alone.score(series.test).to_numpy(), sliding_window=window))
            for rule in ("fixed", DEFAULT_RULE):
                fused = FusionDetector(
                    [(good, build(good, "default"), 0.5), ("random", build("random", "default"), 0.5)],
                    weighting=rule,
                    random_state=0,
                    verbose=False,
                ).fit(series.train)
                row[rule].append(vus_pr(labels, fused.score(series.test).to_numpy(), sliding_window=window))
                if rule == DEFAULT_RULE:
                    row["weight"].append(fused.weights_["random"])
            logging.info("%s + random on %s/%s done", good, series.dataset, series.name)
        for dataset, row in per.items():
            m = {k: statistics.fmean(v) for k, v in row.items()}
            worst = min(i - a for i, a in zip(row[DEFAULT_RULE], row["alone"], strict=True))
            lines.append(
                f"| {good} | {dataset} | {m['alone']:.3f} | {m['fixed']:.3f} | {m[DEFAULT_RULE]:.3f} "
                f"(worst series {worst:+.3f}) | {m['weight']:.3f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "report"), default="dev")
    parser.add_argument("--datasets", default="smd,skab,synthetic")
    parser.add_argument("--random-datasets", default="smd,skab,synthetic,msl")
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "out" / "events")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--tables",
        default="hybrid,random,components",
        help="which tables to make: hybrid, random, components, streaming (default: the first three)",
    )
    args = parser.parse_args()
    tables = set(args.tables.split(","))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    warnings.simplefilter("ignore")
    lines = [
        f"Command: `python benchmarks/bench_fusion_weights.py --split {args.split} "
        f"--datasets {args.datasets} --random-datasets {args.random_datasets} --tables {args.tables}`. "
        f"Split: {args.split}. "
        "The hybrids are those of "
        "'Events and their root causes' (default hybrid, seed 0; synthetic: the root-cause seeds).",
    ]
    if "hybrid" in tables:
        lines += ["", "### Hybrid: weighting rules (VUS-PR)", ""]
        lines += hybrid_rows(args.split, args.datasets.split(","), args.cache)
    if "random" in tables:
        lines += ["", "### A good detector fused with a random score (VUS-PR)", ""]
        lines += random_rows(args.split, args.random_datasets.split(","))
    if "components" in tables:
        lines += ["", "### Three and four components (VUS-PR)", ""]
        lines += more_components_rows(args.split, args.datasets.split(","), args.cache)
    if "streaming" in tables:
        lines += ["", "### The low-latency pair and a forecaster (VUS-PR)", ""]
        lines += more_components_rows(args.split, args.datasets.split(","), args.cache, base="streaming")
    text = "\n".join(lines)
    print(text)
    if args.out:
        from report import write_section

        write_section(args.out, f"Fusion weights without labels ({args.split} split)", text)


if __name__ == "__main__":
    main()

"""How to fuse the diffusion and causal scores: calibrations and weights, compared offline.

Reads the test scores and held-out calibration scores that ``run.py --scores DIR`` saved for the
``imdiffusion`` and ``causal`` detectors, applies each fusion rule with the functions
``FusionDetector`` itself uses (:func:`tsdiff.fusion.fit_calibrators` on the held-out training
scores only, never on test labels, then :func:`tsdiff.fusion.fuse`), and reports VUS-PR per
dataset. Usage::

    python benchmarks/run.py --detectors causal,imdiffusion --scores benchmarks/out/scores
    python benchmarks/bench_fusion.py --scores benchmarks/out/scores [--out benchmarks/RESULTS.md]

``--extra tsai-forecast`` adds a third component (its saved scores), fused in pairs and all three.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_section
from splits import SPLITS, Split

from tsdiff.fusion import fit_calibrators, fuse
from tsdiff.metrics import choose_sliding_window, vus_pr

WEIGHTS = (0.3, 0.5, 0.7)


def stability_weight(held_out: np.ndarray) -> float:
    """How well a component's calibration holds on normal rows it was not fitted on: calibrate on
    the first half of its held-out scores, count surprises of 2 or more (1 row in 100 by
    construction) on the second half; the weight is 1 over that rate relative to 1%, at most 1."""
    from tsdiff.calibration import TailCalibrator

    x = np.asarray(held_out, dtype=np.float64)
    half = len(x) // 2
    if half < 50:
        return 1.0
    rate = float((TailCalibrator().fit(x[:half]).transform(x[half:]) >= 2.0).mean())
    return 1.0 / max(rate / 0.01, 1.0)


def study_scores(cache: Path, variant: str, rule: str, stem: str) -> dict | None:
    """A diffusion rule's held-out and test scores from the evidence-study cache (bench_reduce.py)."""
    from bench_reduce import RULES

    path = cache / variant / f"{stem}.npz"
    if not path.exists():
        return None
    params = json.loads((cache / variant / "params.json").read_text())
    data = dict(np.load(path))
    for mode in ("single", "direct"):
        extra = cache / variant / f"{stem}__{mode}.npz"
        if extra.exists():
            data[mode] = dict(np.load(extra))
    val, test = RULES[rule].scores(data, params)
    return {"scores": test, "calibration": val}


def rules(diff: dict, causal: dict, extra: dict | None = None, extra_name: str = "") -> dict[str, np.ndarray]:
    """Test scores of each fusion rule, calibrated as ``FusionDetector`` does (same functions)."""
    parts = {"diffusion": diff, "causal": causal, **({extra_name: extra} if extra is not None else {})}
    out = {"diffusion alone": diff["scores"], "causal alone": causal["scores"]}
    for label, kind in (("surprise", "tail"), ("robust z", "zscore")):
        calibrators = fit_calibrators({name: p["calibration"] for name, p in parts.items()}, kind)
        cal = {name: calibrators[name].transform(p["scores"]) for name, p in parts.items()}
        a, b = cal["diffusion"], cal["causal"]
        for w in WEIGHTS:
            out[f"{label}, diffusion weight {w}"] = fuse(
                {"diffusion": a, "causal": b}, {"diffusion": w, "causal": 1 - w}
            )
        out[f"{label}, max"] = np.maximum(a, b)
        if kind == "tail":
            # a soft maximum of surprises: log10 of the summed odds, near the larger when they differ
            out[f"{label}, soft max"] = np.logaddexp(a * np.log(10), b * np.log(10)) / np.log(10)
            weights = {n: stability_weight(p["calibration"]) for n, p in parts.items()}
            out[f"{label}, stability-weighted"] = fuse(
                {"diffusion": a, "causal": b}, {n: weights[n] for n in ("diffusion", "causal")}
            )
        if extra is not None:  # a third component: each pair and all three, equal weights
            equal = dict.fromkeys(cal, 1.0)
            for names in (
                ("diffusion", extra_name),
                ("causal", extra_name),
                ("diffusion", "causal", extra_name),
            ):
                out[f"{label}, {' + '.join(names)}"] = fuse({n: cal[n] for n in names}, equal)
    if extra is not None:
        out[f"{extra_name} alone"] = extra["scores"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scores", type=Path, default=Path("benchmarks/out/scores"))
    parser.add_argument(
        "--extra", default="", help="a third component's saved scores to fuse as well, e.g. tsai-forecast"
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--split", choices=SPLITS, default="dev", help="see benchmarks/splits.py")
    parser.add_argument("--datasets", default="smd,skab,synthetic,msl")
    parser.add_argument("--study", type=Path, default=Path("benchmarks/out/study"))
    parser.add_argument(
        "--diffusion",
        default="",
        help="VARIANT:RULE of bench_reduce.py's cache for the diffusion scores (default: saved "
        "imdiffusion scores in --scores)",
    )
    parser.add_argument("--msl-subset", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    table: dict[str, dict[str, list[float]]] = {}
    datasets: list[str] = []
    series = Split(args.split, msl_subset=args.msl_subset).series(args.datasets.split(","))
    for s in series:
        stem = s.name.replace("/", "_")
        names = ("imdiffusion", "causal", args.extra) if args.extra else ("imdiffusion", "causal")
        files = [args.scores / f"{stem}__{d}.npz" for d in names]
        if args.diffusion:
            files = files[1:]
        if not all(f.exists() for f in files):
            continue
        loaded = [dict(np.load(f)) for f in files]
        if args.diffusion:
            variant, _, rule = args.diffusion.partition(":")
            diff = study_scores(args.study, variant, rule, stem)
            if diff is None:
                continue
            loaded.insert(0, diff)
        diff, causal, *extra = loaded
        window = choose_sliding_window(s.test.to_numpy())
        if s.dataset not in datasets:
            datasets.append(s.dataset)
        for name, score in rules(diff, causal, *extra, extra_name=args.extra).items():
            table.setdefault(name, {}).setdefault(s.dataset, []).append(vus_pr(s.labels, score, window))
    if not table:
        sys.exit(f"no saved scores in {args.scores}; run benchmarks/run.py with --scores first")
    lines = [
        f"Command: `python benchmarks/bench_fusion.py --split {args.split} --scores {args.scores}"
        + (f" --extra {args.extra}" if args.extra else "")
        + (f' --diffusion "{args.diffusion}"' if args.diffusion else "")
        + (f" --msl-subset {args.msl_subset}" if args.msl_subset else "")
        + "` (scores saved by the detection "
        "benchmark). VUS-PR of each fusion rule, mean over each dataset's series; calibrators are fitted "
        "on the held-out training scores of each component, never on test data. `HybridDetector` uses "
        "surprise with diffusion weight 0.5.",
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
        title = "Hybrid fusion rule" + ("" if args.split == "all" else f" ({args.split} split)")
        write_section(args.out, title, report)


if __name__ == "__main__":
    main()

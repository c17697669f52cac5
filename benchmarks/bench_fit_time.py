"""Cheaper fits of the default hybrid: what each variant costs in accuracy, per dev dataset.

For every series of ``bench_events.py``'s cases (``--split``), the default hybrid is the one in
its cache (its VUS-PR under today's fusion rule, from ``bench_fusion_weights.series_evidence``), and
each variant (``--variants``: ``key=value`` parameters of ``HybridDetector``, ``;`` between
variants, nested keys such as ``diffusion__max_steps`` reach the default components;
``preset=streaming`` starts from that preset instead of the defaults) is fitted
here, timed, and scored on the same test rows. Reported per dataset: VUS-PR of the fused score and
of the diffusion component, the change against the default, and the mean fit seconds (the
default's from the cache, where it may have shared the machine; compare with
``bench_fit_profile.py`` for a fit alone).

Usage::

    python benchmarks/bench_fit_time.py --split dev --variants "diffusion__max_steps=450"
"""

from __future__ import annotations

import argparse
import json
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
from bench_fusion_weights import series_evidence
from run import detector_factories, parse_variant, variant
from splits import Split

from tsdiff.fusion import fuse
from tsdiff.injection import evidence, skill_weights
from tsdiff.metrics import choose_sliding_window, vus_pr


def cases(split: str, datasets: list[str], msl_subset: int) -> Any:
    """``bench_events.cases``, with only ``msl_subset`` of the split's MSL channels (0: all)."""
    for dataset in datasets:
        if dataset == "msl" and msl_subset:
            for series in Split(split, msl_subset=msl_subset).series(["msl"]):
                yield bench_events.Case(
                    series.dataset, series.name, series.train, series.test, series.labels, None
                )
        else:
            yield from bench_events.cases(split, [dataset])


def default_scores(case, cache: Path) -> dict[str, float]:
    ev = series_evidence(case, cache)
    given = {"diffusion": 0.5, "causal": 0.5}
    weights = skill_weights(evidence(ev["skills"], ev["stability"]), given, 2.0)
    window = choose_sliding_window(case.test.to_numpy())
    return {
        "hybrid": vus_pr(case.labels, fuse(ev["calibrated"], weights), sliding_window=window),
        "diffusion": vus_pr(case.labels, ev["calibrated"]["diffusion"], sliding_window=window),
        "fit_seconds": ev["cost"][1],
    }


def variant_scores(case, params: dict) -> dict[str, float]:
    params = dict(params)
    preset = params.pop("preset", None)  # another preset of the hybrid as the variant's base
    det = variant(detector_factories(0)["hybrid" if preset is None else f"hybrid-{preset}"], params)()
    t0 = time.perf_counter()
    det.fit(case.train)
    fit_s = time.perf_counter() - t0
    parts = det.score_scaled(det.scaler_.transform(case.test.to_numpy(dtype=np.float64)))
    window = choose_sliding_window(case.test.to_numpy())
    return {
        "hybrid": vus_pr(case.labels, parts.scores, sliding_window=window),
        "diffusion": vus_pr(case.labels, parts.components["diffusion"], sliding_window=window),
        "fit_seconds": fit_s,
        "steps": int(det.components_["diffusion"].history_.steps),
        "latency": int(det.stream_geometry().lookahead),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "report"), default="dev")
    parser.add_argument("--datasets", default="smd,skab,synthetic")
    parser.add_argument("--variants", required=True, help="key=value[,key=value] per variant, ';' between")
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "out" / "events")
    parser.add_argument("--msl-subset", type=int, default=0, help="only this many MSL channels (0: all)")
    parser.add_argument("--raw", type=Path, help="per-series results (JSON lines), read back to resume")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("tsdiff").setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    variants = [v.strip() for v in args.variants.split(";") if v.strip()]
    done: dict[tuple[str, str], dict] = {}
    if args.raw and args.raw.exists():
        for line in args.raw.read_text().splitlines():
            row = json.loads(line)
            done[(row["variant"], row["series"])] = row
    results: dict[str, dict[str, list[dict]]] = {}
    for case in cases(args.split, args.datasets.split(","), args.msl_subset):
        key = f"{case.dataset}/{case.name}"
        rows = {"default": default_scores(case, args.cache)}
        for text in variants:
            if (text, key) not in done:
                _, params = parse_variant(f"hybrid[{text}]")
                row = {"variant": text, "series": key, **variant_scores(case, params)}
                done[(text, key)] = row
                if args.raw:
                    with args.raw.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
            rows[text] = done[(text, key)]
        for name, row in rows.items():
            results.setdefault(case.dataset, {}).setdefault(name, []).append(row)
        logging.info("%s: %s", key, {n: round(r["hybrid"], 3) for n, r in rows.items()})
    shown = [d for d in ("SMD", "SKAB", "synthetic", "MSL") if d in results]
    lines = [
        "| hybrid | "
        + " | ".join(f"{d} VUS-PR (diffusion alone)" for d in shown)
        + " | mean | largest loss against the default | fit s per series (SMD) |",
        "|---|" + "---:|" * (len(shown) + 3),
    ]
    for name in ["default", *variants]:
        means = {d: statistics.fmean(r["hybrid"] for r in results[d][name]) for d in shown}
        diffusion = {d: statistics.fmean(r["diffusion"] for r in results[d][name]) for d in shown}
        base = {d: statistics.fmean(r["hybrid"] for r in results[d]["default"]) for d in shown}
        loss = max(base[d] - means[d] for d in shown)
        fit = statistics.fmean(
            r["fit_seconds"] for r in results.get("SMD", {}).get(name, [{"fit_seconds": 0}])
        )
        cells = " | ".join(f"{means[d]:.3f} ({diffusion[d]:.3f})" for d in shown)
        lines.append(
            f"| {name} | {cells} | {statistics.fmean(means.values()):.3f} | {loss:+.3f} | {fit:.0f} |"
        )
    subset = f" --msl-subset {args.msl_subset}" if args.msl_subset else ""
    text = "\n".join(
        [
            f"Command: `python benchmarks/bench_fit_time.py --split {args.split} --datasets {args.datasets} "
            f'--variants "{args.variants}"{subset}` (2 cores, alone). Split: {args.split}. The default\'s '
            "models are those of 'Events and their root causes' (fused here under today's rule); each "
            "variant is fitted with seed 0 on the same training rows.",
            "",
            *lines,
        ]
    )
    print(text)
    if args.out:
        from report import write_section

        write_section(args.out, f"Faster hybrid fits ({args.split} split)", text)


if __name__ == "__main__":
    main()

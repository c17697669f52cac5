"""Benchmark tsdiff detectors side by side on SMD, SKAB and synthetic data.

Usage (from the project root)::

    python benchmarks/run.py                               # every detector, every dataset
    python benchmarks/run.py --split dev                   # the series every choice is made on
    python benchmarks/run.py --split report --out benchmarks/RESULTS.md  # the published figures
    python benchmarks/run.py --detectors pca,kmeans --datasets smd --machines 1-2,1-3
    python benchmarks/run.py --split dev --detectors "window-pca[n_components=0.75],window-pca"
    python benchmarks/run.py --out benchmarks/RESULTS.md   # also write the markdown report
    python benchmarks/run.py --resume --out benchmarks/RESULTS.md  # keep finished runs, add the rest

SMD, SKAB and MSL are read from ``../shared/datasets`` (or ``$TSDIFF_DATA``); when they are absent
those datasets are skipped with a note (``--datasets bundled`` runs the bundled SMD machine).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import load_raw, markdown_report, merge_results, run_all, save_raw
from report import write_section
from splits import DATASETS, SPLITS, Split

import tsdiff


def detector_factories(seed: int) -> dict[str, Callable[[], Any]]:
    """Every registered detector and preset (``NAME`` for the defaults, ``NAME-PRESET`` for the
    others; the tiny preset left out), each with a fixed seed."""
    from tsdiff.registry import DETECTORS, build

    def factory(name: str, preset: str) -> Callable[[], Any]:
        return lambda: build(name, preset, random_state=seed, verbose=False)

    out = {}
    for entry in DETECTORS.values():
        for preset in ["default", *(p for p in entry.presets if p not in ("default", "tiny"))]:
            out[entry.name if preset == "default" else f"{entry.name}-{preset}"] = factory(entry.name, preset)
    return out


def parse_variant(name: str) -> tuple[str, dict[str, Any]]:
    """``"NAME[key=value,...]"`` -> (NAME, parameters): a registered detector with some parameters
    changed, for studies on the development split. Values are read as JSON where they parse
    (``3``, ``0.5``, ``null``, ``true``), as strings otherwise."""
    match = re.fullmatch(r"([^\[\]]+)(?:\[(.*)\])?", name)
    if match is None:
        raise SystemExit(f"cannot read detector {name!r}; write NAME or NAME[key=value,...]")
    params: dict[str, Any] = {}
    for item in filter(None, (match.group(2) or "").split(",")):
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"cannot read {item!r} in {name!r}; write key=value")
        try:
            params[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            params[key.strip()] = text.strip()
    return match.group(1), params


#: the registered detector a fused detector's component left at None stands for
COMPONENT_DEFAULTS = {"diffusion": "imdiffusion", "causal": "causal"}


def variant(factory: Callable[[], Any], params: dict[str, Any]) -> Callable[[], Any]:
    """The detector with ``params`` set; a nested key (``diffusion__max_steps``) whose component is
    left at its default (None) first gets that default as an estimator of its own."""

    from tsdiff.registry import build as registered

    def build() -> Any:
        detector = factory()
        for head in {key.split("__", 1)[0] for key in params if "__" in key}:
            if head in COMPONENT_DEFAULTS and detector.get_params(deep=False).get(head, "absent") is None:
                component = registered(COMPONENT_DEFAULTS[head], "default")
                if "verbose" in component.get_params(deep=False):
                    component.set_params(verbose=False)
                detector.set_params(**{head: component})
        return detector.set_params(**params)

    return build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detectors", default="all", help="comma-separated detector names, or 'all'")
    parser.add_argument(
        "--datasets",
        default=",".join(DATASETS),
        help=f"comma-separated: {', '.join(DATASETS)}, bundled",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="dev: the series every choice is made on; report: the series published figures come "
        "from; all: both (see benchmarks/splits.py)",
    )
    parser.add_argument("--machines", help="only these SMD machines of the split, e.g. 1-2,1-3")
    parser.add_argument(
        "--msl-subset", type=int, default=0, help="only this many MSL channels of the split, evenly spaced"
    )
    parser.add_argument("--seed", type=int, default=0, help="the detectors' random_state")
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument(
        "--raw", type=Path, default=Path("benchmarks/out/results.json"), help="raw per-run results"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished (detector, series) results in --raw instead of running them again",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="with --resume: only report the finished results, run nothing",
    )
    parser.add_argument("--note", default="", help="a line added to the report's header")
    parser.add_argument("--scores", type=Path, help="also save each run's test scores (.npz) here")
    parser.add_argument(
        "--components",
        action="store_true",
        help="also score a fused detector's fitted components alone (rows NAME/COMPONENT, same fits)",
    )
    args = parser.parse_args(argv)
    harness.SCORES_DIR = args.scores
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    factories = detector_factories(args.seed)
    names = list(factories) if args.detectors == "all" else re.split(r",(?![^\[]*\])", args.detectors)
    chosen = {}
    for name in names:
        base, params = parse_variant(name)
        if base not in factories:
            parser.error(f"unknown detector {base!r}; known: {sorted(factories)}")
        chosen[name] = variant(factories[base], params) if params else factories[base]

    datasets = args.datasets.split(",")
    unknown = [d for d in datasets if d not in (*DATASETS, "bundled")]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; known: {', '.join((*DATASETS, 'bundled'))}")
    split = Split(args.split, msl_subset=args.msl_subset)
    machines = args.machines.split(",") if args.machines else None
    if machines and set(machines) - set(split.smd_machines()):
        parser.error(
            f"--machines outside the {args.split} split: {sorted(set(machines) - set(split.smd_machines()))}"
        )

    started = time.time()
    reuse = load_raw(args.raw) if args.resume else []
    results = run_all(
        split.series(datasets, machines),
        chosen,
        reuse=reuse,
        raw_path=None if args.report_only else args.raw,
        run_missing=not args.report_only,
        components=args.components,
    )
    if not results:
        logging.error("no series were run (is ../shared/datasets present?)")
        return 1
    save_raw(merge_results(reuse, results), args.raw)
    given = list(sys.argv[1:] if argv is None else argv)
    if "--note" in given:  # the note is printed below the command, not inside it
        i = given.index("--note")
        del given[i : i + 2]
    command = "python benchmarks/run.py " + " ".join(given)
    header = "\n".join(
        [
            f"Command: `{command.strip()}`  ",
            f"tsdiff {tsdiff.__version__}, Python {platform.python_version()}, {platform.machine()}, "
            f"split {args.split} (benchmarks/splits.py), run took {(time.time() - started) / 60:.1f} min"
            + (" (finished runs reused, see --resume)" if args.resume else "")
            + ".  ",
            "VUS-PR/AUC-PR/VUS-ROC are threshold-free. F1, event F1 and PA-F1 use each detector's own "
            "label-free threshold (POT on training scores); PA-F1 (point-adjusted) is optimistic by "
            "construction and is shown only beside the others. `flagged` is the share of test rows "
            "labelled anomalous. Peak MiB is the peak resident memory above the level before fitting, in one "
            "process: memory an earlier run already grew into is not counted (small series read near 0).",
        ]
        + (["", args.note] if args.note else [])
    )
    shown = names + [d for d in dict.fromkeys(r.detector for r in results) if d not in names]
    report = markdown_report(results, shown, header)
    print(report)
    if args.out:
        title = {"all": "Detection benchmark", "dev": "Detection benchmark, development split"}
        write_section(args.out, title.get(args.split, "Detection benchmark, report split"), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

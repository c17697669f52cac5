"""Check that a change to the code leaves every detector's output as it was.

Fits every registered detector (each of its presets) with a fixed seed on SMD machine-1-2 (the
bundled copy) and on a synthetic series, runs ``detect`` on the test part, and either saves
what came out or compares it with a saved run::

    python benchmarks/check_scores.py --save benchmarks/out/before.npz      # before a change
    python benchmarks/check_scores.py --compare benchmarks/out/before.npz   # after it

Compared per detector: scores, per-metric scores, labels, the threshold, calibrated component
scores, and each event's top metrics and root causes. The comparison passes when every value
agrees within ``--tolerance`` (absolute, default 1e-9) and the event lists are equal.

``--short`` caps training (diffusion 40 optimisation steps, tsai one epoch on 1,000 windows)
and cuts both series to ``--rows`` rows: a check in a few minutes while the code changes. Runs
without it use the presets as a user gets them (about 40 minutes on 2 cores), with one change:
the diffusion detector's ``max_seconds`` safety net is lifted, so that a busy machine cannot cut
training short and make two runs differ. torch runs on ``TSDIFF_NUM_THREADS`` threads (default
2 here): a different thread count changes the last bits of every torch result.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: what every run changes: no wall-clock limit on training (it would make results machine-dependent)
NO_TIME_LIMIT = {"ImDiffusionDetector": {"max_seconds": 1e9}}
SHORT_CAPS = {
    "ImDiffusionDetector": {"max_steps": 40, "eval_every": 20, "max_seconds": 1e9},
    "TsaiForecastDetector": {"epochs": 1, "max_train_windows": 1000},
    "TsaiReconstructionDetector": {"epochs": 1, "max_train_windows": 1000},
}


def detector_specs(seed: int) -> dict[str, Any]:
    """name -> a configured detector, for every registered detector and preset (``name/preset``;
    the tiny preset and presets that are the defaults left out)."""
    from tsdiff.registry import DETECTORS

    out = {}
    for entry in DETECTORS.values():
        for preset in entry.preset_names:
            if preset == "tiny" or (preset != "default" and preset not in entry.presets):
                continue
            key = entry.name if preset == "default" else f"{entry.name}/{preset}"
            out[key] = (entry, preset, {"random_state": seed, "verbose": False})
    return out


def adjusted(detector: Any, caps: dict[str, dict[str, Any]]) -> Any:
    """``detector`` with the parameters in ``caps`` (by class name) set, in its components too."""
    from sklearn.base import clone

    import tsdiff

    def cap(value: Any) -> Any:
        if isinstance(value, tsdiff.BaseDetector):
            return adjusted(value, caps)
        if isinstance(value, (list, tuple)):
            return type(value)(cap(v) for v in value)
        return value

    detector = clone(detector)
    params = detector.get_params(deep=False)
    nested = {k: cap(v) for k, v in params.items() if cap(v) is not v}
    if isinstance(detector, tsdiff.HybridDetector) and params.get("diffusion") is None:
        nested["diffusion"] = adjusted(tsdiff.ImDiffusionDetector(verbose=False), caps)
    return detector.set_params(**caps.get(type(detector).__name__, {}), **nested)


def series(rows: int | None, seed: int) -> dict[str, tuple[Any, Any]]:
    from tsdiff.datasets import load_bundled, make_synthetic

    smd = load_bundled()
    synthetic = make_synthetic(n_metrics=10, n_rows=8000, random_state=seed)
    out = {"smd-1-2": (smd.train, smd.test), "synthetic": (synthetic.train, synthetic.test)}
    if rows:
        out = {k: (train.iloc[:rows], test.iloc[:rows]) for k, (train, test) in out.items()}
    return out


def outputs(detector: Any, train: Any, test: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """What ``detect`` returned, as arrays and a JSON-ready record."""
    detector.fit(train)
    result = detector.detect(test)
    arrays = {
        "scores": result.scores.to_numpy(dtype=np.float64),
        "feature_scores": result.feature_scores.to_numpy(dtype=np.float64),
        "labels": result.labels.to_numpy(dtype=np.float64),
        "threshold": np.array([result.threshold], dtype=np.float64),
    }
    for name, component in sorted(result.components.items()):
        arrays[f"component.{name}"] = component.to_numpy(dtype=np.float64)
    events = [
        {
            "start": str(ev["start"]),
            "end": str(ev["end"]),
            "top_metrics": [str(m) for m in ev["top_metrics"]],
            "root_causes": [str(m) for m in ev["root_causes"]],
        }
        for _, ev in result.events.iterrows()
    ]
    return arrays, {"events": events, "threshold_method": result.threshold_method}


def compare(name: str, new: dict, old: dict, tolerance: float, largest: list[float]) -> list[str]:
    """Differences beyond ``tolerance`` between two runs' outputs; ``largest`` collects each array's
    largest absolute difference."""
    problems = []
    if set(new) != set(old):
        problems.append(f"{name}: outputs {sorted(new)} against {sorted(old)} saved")
    for key in sorted(set(new) & set(old)):
        a, b = new[key], old[key]
        if key == "record":
            if a != b:
                problems.append(f"{name}: events or threshold method differ")
            continue
        if a.shape != b.shape:
            problems.append(f"{name}.{key}: shape {a.shape} against {b.shape}")
            continue
        both_nan = np.isnan(a) & np.isnan(b)
        diff = np.where(both_nan, 0.0, np.abs(a - b))
        worst = float(np.nanmax(diff)) if diff.size else 0.0
        largest.append(worst)
        if not worst <= tolerance:
            problems.append(f"{name}.{key}: max |diff| {worst:.3g}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path, help="write the outputs here (.npz)")
    action.add_argument("--compare", type=Path, help="compare the outputs with this saved run")
    parser.add_argument("--detectors", default="all", help="comma-separated names, or 'all'")
    parser.add_argument("--short", action="store_true", help="cap training and cut the series")
    parser.add_argument("--rows", type=int, default=3000, help="rows kept of each part with --short")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-9)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("TSDIFF_NUM_THREADS", "2")

    from tsdiff.registry import build

    specs = detector_specs(args.seed)
    names = list(specs) if args.detectors == "all" else args.detectors.split(",")
    unknown = sorted(set(names) - set(specs))
    if unknown:
        parser.error(f"unknown detector(s) {unknown}; known: {list(specs)}")
    data = series(args.rows if args.short else None, args.seed)
    saved = dict(np.load(args.compare, allow_pickle=False)) if args.compare else {}
    records = json.loads(args.compare.with_suffix(".json").read_text()) if args.compare else {}
    arrays_out: dict[str, np.ndarray] = {}
    records_out: dict[str, Any] = {}
    problems: list[str] = []
    largest: list[float] = []
    for series_name, (train, test) in data.items():
        for name in names:
            entry, preset, params = specs[name]
            if not entry.available():
                print(f"{series_name}/{name}: skipped ({entry.extra} extra not installed)", flush=True)
                continue
            detector = build(entry.name, preset, **params)
            detector = adjusted(detector, SHORT_CAPS if args.short else NO_TIME_LIMIT)
            key = f"{series_name}/{name}"
            started = time.perf_counter()
            arrays, record = outputs(detector, train, test)
            seconds = time.perf_counter() - started
            for k, v in arrays.items():
                arrays_out[f"{key}/{k}"] = v
            records_out[key] = record
            if args.compare and key not in records:
                print(f"{key}: not in the saved run ({seconds:.1f}s)", flush=True)
            elif args.compare:
                # this run's arrays only: "imdiffusion/scores", not "imdiffusion/eps/scores"
                old = {k.rsplit("/", 1)[1]: v for k, v in saved.items() if k.rsplit("/", 1)[0] == key}
                new = {**arrays, "record": record}
                old["record"] = records[key]
                found = compare(key, new, old, args.tolerance, largest)
                problems += found
                print(f"{key}: {'DIFFERS' if found else 'same'} ({seconds:.1f}s)", flush=True)
            else:
                print(f"{key}: {len(arrays['scores'])} rows scored ({seconds:.1f}s)", flush=True)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.save, **arrays_out)
        args.save.with_suffix(".json").write_text(json.dumps(records_out, indent=1))
        print(f"saved {len(records_out)} runs to {args.save}")
        return 0
    for line in problems:
        print(line)
    print(f"largest |difference| over {len(largest)} compared arrays: {max(largest, default=0.0):.3g}")
    print("all outputs unchanged" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

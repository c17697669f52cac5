"""How the diffusion detector's evidence becomes a row score: training variants and evidence rules,
compared on the development split.

``ImDiffusionDetector`` measures an imputation error for every (row, denoising step, metric). For
each *variant* (a set of detector parameters) this script fits the detector once per series (seed
0), caches the entry errors of the held-out training rows and of the test rows at every visited
step (and, with ``--draws 2``, under a second noise draw), and then applies each *rule* (which
steps vote, how metrics and steps are reduced, how long the smoothing is) to the cache. Every rule
is calibrated on the held-out training rows only, never on test labels, and is scored by VUS-PR.
Usage::

    python benchmarks/bench_reduce.py --collect --variant default            # fit and cache (slow)
    python benchmarks/bench_reduce.py --collect --variant cond --params '{"conditioning": "conditional"}'
    python benchmarks/bench_reduce.py --variants default,cond [--out benchmarks/RESULTS.md]

Choices are made on ``--split dev`` (the default); see benchmarks/splits.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import PeakMemory
from report import write_section
from splits import SPLITS, Split

import tsdiff
from tsdiff.diffusion.config import DiffusionConfig
from tsdiff.diffusion.voting import metric_scales
from tsdiff.frame import centered_mean, trailing_mean
from tsdiff.metrics import choose_sliding_window, vus_pr
from tsdiff.thresholds import make_threshold


def collect(series, cache: Path, seed: int, params: dict, draws: int = 1) -> None:
    """Fit once per series; cache held-out and test entry errors at every visited step."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "params.json").write_text(json.dumps(params, indent=1))
    for s in series:
        path = cache / f"{s.name.replace('/', '_')}.npz"
        if path.exists():
            continue
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            det = tsdiff.ImDiffusionDetector(random_state=seed, verbose=False, **params).fit(s.train)
            t1 = time.perf_counter()
            # the detector's own score (the reference rule) when its recorded steps are all the
            # visited ones; otherwise the rule "all steps" stands in for it
            reference = det.score(s.test).to_numpy(np.float32) if det.record == "last" else None
            t2 = time.perf_counter()
        arrays = {
            "labels": np.asarray(s.labels, dtype=np.int8),
            "fit_s": np.float64(t1 - t0),
            "score_s": np.float64(t2 - t1),
            "peak_mib": np.float64(mem.mib),
            "history_steps": np.int64(det.history_.steps),
        }
        if reference is not None:
            arrays["reference"] = reference
        det.save(cache / "models" / path.stem)  # for other scoring passes of the same model later
        # every visited step recorded, so rules can choose among them
        visit, _ = det.config_.steps()
        det.set_params(ensemble_steps=len(visit))
        det.config_ = DiffusionConfig.from_params(det.get_params(deep=False))  # the same model
        arrays["steps"] = np.asarray(det.config_.steps()[1], dtype=np.int64)
        # voters are family-major: each mask family's recorded steps in turn
        arrays["families"] = np.asarray([f"{kind}{size}" for kind, size in det.config_.families()])
        for d in range(draws):
            det.seed_ = det.seed_ + d  # another noise draw for the same model and windows
            suffix = "" if d == 0 else str(d + 1)
            arrays["val" + suffix] = det.imputation_errors(s.train.iloc[det.n_train_rows_ :]).astype(
                np.float32
            )
            arrays["test" + suffix] = det.imputation_errors(s.test).astype(np.float32)
            det.seed_ -= d
        _save(path, arrays)
        logging.info("%s cached (fit %.0f s, score %.0f s)", s.name, t1 - t0, t2 - t1)


def _save(path: Path, arrays: dict | None = None, **more: np.ndarray) -> None:
    """Write an .npz whole or not at all (a run stopped mid-write leaves no half file behind)."""
    partial = path.with_name(path.stem + ".partial.npz")
    np.savez_compressed(partial, **(arrays or {}), **more)
    partial.replace(path)


def collect_passes(series, cache: Path, modes: list[str], steps: int = 10) -> None:
    """Other scoring passes of the models ``collect`` saved: ``single`` (one denoising pass at each
    of ``steps`` evenly spaced noise levels: the denoising error, and with ELBO weights the
    density) and ``direct`` (reconstruction-free), cached as ``<series>__<mode>.npz``."""
    for s in series:
        stem = s.name.replace("/", "_")
        folder = cache / "models" / stem
        if not folder.exists():
            continue
        for mode in modes:
            path = cache / f"{stem}__{mode}.npz"
            if path.exists():
                continue
            det = tsdiff.load(folder)
            det.set_params(scoring=mode, ensemble_steps=steps, record="last")
            det.config_ = DiffusionConfig.from_params(det.get_params(deep=False))  # the same model
            t0 = time.perf_counter()
            test = det.imputation_errors(s.test).astype(np.float32)
            seconds = time.perf_counter() - t0
            val = det.imputation_errors(s.train.iloc[det.n_train_rows_ :]).astype(np.float32)
            _save(
                path,
                val=val,
                test=test,
                steps=np.asarray(det.config_.steps()[1], dtype=np.int64),
                score_s=np.float64(seconds),
            )
            logging.info("%s %s pass cached (%.0f s)", s.name, mode, seconds)


# ----------------------------------------------------------------------------- evidence rules
def schedule(params: dict):
    """The noise schedule of a variant's detector parameters."""
    from tsdiff.diffusion.schedule import NoiseSchedule

    return NoiseSchedule(int(params.get("diffusion_steps", 50)), params.get("schedule", "quad"))


def snr(steps: np.ndarray, params: dict) -> np.ndarray:
    """The context's signal-to-noise ratio alpha_bar / (1 - alpha_bar) at each step."""
    return schedule(params).snr[steps]


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


def smooth_entries(entry: np.ndarray, length: int, smooth=centered_mean) -> np.ndarray:
    """Moving mean (centred by default) along time of every (step, metric) column."""
    n, s, k = entry.shape
    flat = np.nan_to_num(entry, nan=0.0).reshape(n, s * k)
    return smooth(flat, length).reshape(n, s, k)


def over_steps(val_rows: np.ndarray, test_rows: np.ndarray, how: str) -> np.ndarray:
    """(n, S) -> (n,): vote (the m-th largest threshold ratio, m = half the steps, as the detector)
    or the mean ratio."""
    thresholds = np.array(
        [max(make_threshold("pot", risk=1e-3).fit(col).threshold_, 1e-12) for col in val_rows.T]
    )
    ratios = test_rows / thresholds[None, :]
    if how == "mean":
        return ratios.mean(axis=1)
    m = max(1, int(np.ceil(0.5 * ratios.shape[1])))
    return -np.partition(-ratios, m - 1, axis=1)[:, m - 1]


@dataclass(frozen=True)
class Rule:
    """Which steps vote, and how entry errors become one score a row."""

    steps: str = "all"  # "all" | "snr" (context SNR >= 1) | "ref" (t <= 27, the reference's ensemble)
    normalise: bool = False
    metrics: str = "mean"
    smooth_first: bool = False
    combine: str = "vote"
    length: int | None = None  # None: one grating segment, as the detector
    draws: int = 1
    families: str = ""  # comma-separated mask families (e.g. "grating4,tail4"); "" for all
    source: str = ""  # "" (the chain's errors), or another cached pass: "single", "direct"
    floor: float = 0.1  # normalisation: a metric's scale is at least this share of the median's
    power: float = 1.0  # normalisation divides by scale ** power (0.5: half way, in log terms)
    trailing: bool = False  # smoothing over the rows up to each row (a streaming score)

    def keep_steps(self, steps: np.ndarray, params: dict) -> np.ndarray:
        if self.steps == "all" or (params.get("conditioning") == "conditional" and self.steps == "snr"):
            return np.ones(len(steps), dtype=bool)
        if self.steps == "snr":
            return snr(steps, params) >= 1.0
        if self.steps == "ref":
            return steps <= 27
        raise ValueError(self.steps)

    def applies(self, data: dict) -> bool:
        if self.source:
            return self.source in data
        if not self.families:
            return True
        cached = list(data.get("families", []))
        return len(cached) > 1 and all(f in cached for f in self.families.split(","))

    def keep(self, data: dict, params: dict) -> np.ndarray:
        steps = self.keep_steps(data["steps"], params)
        cached = list(data.get("families", ["grating4"]))
        wanted = self.families.split(",") if self.families else cached
        return np.concatenate([steps & (f in wanted) for f in cached])

    def __call__(self, data: dict, params: dict) -> np.ndarray:
        return self.scores(data, params)[1]

    def scores(self, data: dict, params: dict) -> tuple[np.ndarray, np.ndarray]:
        """Scores of the held-out rows and of the test rows."""
        if self.source:  # another scoring pass of the same model
            data = data[self.source]
        keep = self.keep(data, params)
        val = np.mean([data["val" + s][:, keep] for s in ["", "2"][: self.draws]], axis=0, dtype=np.float64)
        test = np.mean([data["test" + s][:, keep] for s in ["", "2"][: self.draws]], axis=0, dtype=np.float64)
        window = int(params.get("window", 64))
        segments = params.get("grating_segments", 4)
        length = self.length or max(1, window // int(np.min(segments)))
        if self.combine == "elbo":  # the density: ELBO-weighted squared errors, one voter
            weights = elbo_weights(data["steps"][keep], params)
            val = np.einsum("nsk,s->nk", np.nan_to_num(val) ** 2, weights)[:, None, :]
            test = np.einsum("nsk,s->nk", np.nan_to_num(test) ** 2, weights)[:, None, :]
        if self.normalise:
            scale = metric_scales(val, self.floor) ** self.power
            val, test = val / scale[None], test / scale[None]
        smooth = trailing_mean if self.trailing else centered_mean
        if self.smooth_first:  # smooth each metric, then reduce (a sustained one-metric shift stands out)
            v = over_metrics(smooth_entries(val, length, smooth), self.metrics)
            t = over_metrics(smooth_entries(test, length, smooth), self.metrics)
        else:  # reduce, then smooth the row error (the detector's order)
            v = smooth(over_metrics(val, self.metrics), length)
            t = smooth(over_metrics(test, self.metrics), length)
        how = "vote" if self.combine == "elbo" else self.combine
        return over_steps(v, v, how), over_steps(v, t, how)


def elbo_weights(steps: np.ndarray, params: dict) -> np.ndarray:
    """The detector's ELBO weights of the steps (:meth:`NoiseSchedule.elbo_weights`)."""
    return schedule(params).elbo_weights(steps)


RULES: dict[str, Rule] = {
    "all steps, mean, vote (the detector)": Rule(),
    "steps t <= 27 (reference)": Rule(steps="ref"),
    "informative steps (SNR >= 1)": Rule(steps="snr"),
    "informative, steps mean": Rule(steps="snr", combine="mean"),
    "informative, normalised mean": Rule(steps="snr", normalise=True),
    "informative, normalised mean, smooth first": Rule(steps="snr", normalise=True, smooth_first=True),
    "informative, normalised top3, smooth first": Rule(
        steps="snr", normalise=True, metrics="top3", smooth_first=True
    ),
    "informative, normalised blend top3, smooth first": Rule(
        steps="snr", normalise=True, metrics="blendtop3", smooth_first=True
    ),
    "informative, normalised blend max, smooth first": Rule(
        steps="snr", normalise=True, metrics="blendmax", smooth_first=True
    ),
    "informative, raw blend top3, smooth first": Rule(steps="snr", metrics="blendtop3", smooth_first=True),
    "informative, smoothing 1": Rule(steps="snr", length=1),
    "informative, smoothing 4": Rule(steps="snr", length=4),
    "informative, smoothing 8": Rule(steps="snr", length=8),
    "informative, smoothing 32": Rule(steps="snr", length=32),
    "informative, 2 noise draws": Rule(steps="snr", draws=2),
    # combinations of what helped above
    "informative, normalised mean, smoothing 32": Rule(steps="snr", normalise=True, length=32),
    "informative, normalised (floor 0.5) mean, smoothing 32": Rule(
        steps="snr", normalise=True, floor=0.5, length=32
    ),
    "informative, normalised blend top3, smooth first, smoothing 32": Rule(
        steps="snr", normalise=True, metrics="blendtop3", smooth_first=True, length=32
    ),
    "informative, normalised (floor 0.5) blend top3, smooth first, smoothing 32": Rule(
        steps="snr", normalise=True, floor=0.5, metrics="blendtop3", smooth_first=True, length=32
    ),
    "informative, half-normalised blend top3, smooth first, smoothing 32": Rule(
        steps="snr", normalise=True, power=0.5, metrics="blendtop3", smooth_first=True, length=32
    ),
    "informative, half-normalised mean, smoothing 32": Rule(
        steps="snr", normalise=True, power=0.5, length=32
    ),
    "informative, half-normalised blend top3, smooth first, smoothing 32, 2 draws": Rule(
        steps="snr", normalise=True, power=0.5, metrics="blendtop3", smooth_first=True, length=32, draws=2
    ),
    "informative, normalised (floor 0.5) blend top3, smooth first, smoothing 32, 2 draws": Rule(
        steps="snr", normalise=True, floor=0.5, metrics="blendtop3", smooth_first=True, length=32, draws=2
    ),
}
# the same model scored without the chain
RULES |= {
    "single: denoising error, all 10 steps, vote": Rule(source="single"),
    "single: denoising error, informative steps, vote": Rule(source="single", steps="snr"),
    "density: ELBO-weighted squared error": Rule(source="single", combine="elbo"),
    "direct: reconstruction-free, vote": Rule(source="direct"),
    "direct: reconstruction-free, informative steps": Rule(source="direct", steps="snr"),
}
# each pass under the evidence rule the chain's default adopted (half-normalised top-3 blend,
# each metric smoothed over 32 rows first), so the modes differ only in their errors
ADOPTED = {"normalise": True, "power": 0.5, "metrics": "blendtop3", "smooth_first": True, "length": 32}
RULES |= {
    "single: denoising error, half-normalised blend top3, smooth first, smoothing 32": Rule(
        source="single", **ADOPTED
    ),
    "density: ELBO-weighted squared error, half-normalised blend top3, smooth first, smoothing 32": Rule(
        source="single", combine="elbo", **ADOPTED
    ),
    "direct: reconstruction-free, half-normalised blend top3, smooth first, smoothing 32": Rule(
        source="direct", **ADOPTED
    ),
}
# mask families (variants trained with several scales and the tail mask)
for fams in (
    "grating4",
    "grating16",
    "grating4,grating16",
    "tail4",
    "grating4,tail4",
    "grating4,grating16,tail4",
):
    RULES[f"informative, masks {fams}"] = Rule(steps="snr", families=fams)
    RULES[f"informative, smoothing 32, masks {fams}"] = Rule(steps="snr", families=fams, length=32)
    RULES[f"informative, normalised blend top3, masks {fams}"] = Rule(
        steps="snr", normalise=True, metrics="blendtop3", smooth_first=True, families=fams
    )


# the tail mask alone with a trailing smoothing: what the streaming preset scores (no lookahead)
for length in (16, 32):
    RULES[f"streaming: informative, masks tail4, trailing smoothing {length}"] = Rule(
        steps="snr", families="tail4", length=length, trailing=True
    )
for length in (8, 16, 32, 64):
    name = f"streaming: informative, half-normalised blend top3, masks tail4, trailing smoothing {length}"
    RULES[name] = Rule(
        steps="snr",
        normalise=True,
        power=0.5,
        metrics="blendtop3",
        smooth_first=True,
        families="tail4",
        length=length,
        trailing=True,
    )


def report(split: Split, datasets: list[str], variants: list[str], cache: Path, rule_filter: str) -> str:
    rules = RULES
    if rule_filter:
        rules = {k: v for k, v in RULES.items() if any(p in k for p in rule_filter.split(","))}
    table: dict[str, dict[str, list[float]]] = {}
    cost: dict[str, dict[str, list[float]]] = {}
    seen: list[str] = []
    warnings.filterwarnings("ignore")
    for s in split.series(datasets):
        window = choose_sliding_window(s.test.to_numpy())
        for variant in variants:
            folder = cache / variant
            path = folder / f"{s.name.replace('/', '_')}.npz"
            if not path.exists():
                continue
            params = json.loads((folder / "params.json").read_text())
            data = dict(np.load(path))
            for mode in ("single", "direct"):
                extra = folder / f"{path.stem}__{mode}.npz"
                if extra.exists():
                    data[mode] = dict(np.load(extra))
            if s.dataset not in seen:
                seen.append(s.dataset)
            if "reference" in data:
                row = table.setdefault(f"{variant}: detector as fitted", {})
                row.setdefault(s.dataset, []).append(vus_pr(s.labels, data["reference"], window))
            c = cost.setdefault(variant, {})
            for key in ("fit_s", "score_s", "peak_mib"):
                # the score time is the detector's own score, taken only when it was scored as fitted
                value = float(data[key]) if key != "score_s" or "reference" in data else float("nan")
                c.setdefault(key, []).append(value)
            for name, fn in rules.items():
                if (fn.draws > 1 and "val2" not in data) or not fn.applies(data):
                    continue
                score = fn(data, params)
                table.setdefault(f"{variant}: {name}", {}).setdefault(s.dataset, []).append(
                    vus_pr(s.labels, score, window)
                )
    core = [d for d in ("SMD", "SKAB", "synthetic") if d in seen]
    lines = [
        "| variant: rule | "
        + " | ".join(f"VUS-PR {d}" for d in seen)
        + f" | mean of {', '.join(core)} | mean of all present |",
        "|---|" + "---:|" * (len(seen) + 2),
    ]
    for name, per in table.items():
        means = [statistics.fmean(per[d]) if d in per else float("nan") for d in seen]
        # a rule missing on one of the core datasets has no comparable core mean
        core_mean = "-"
        if set(core) <= set(per):
            core_mean = f"{statistics.fmean(statistics.fmean(per[d]) for d in core):.3f}"
        cells = " | ".join(f"{m:.3f}" for m in means)
        lines.append(f"| {name} | {cells} | {core_mean} | {np.nanmean(means):.3f} |")
    lines += ["", "| variant | fit s (sum) | score s (sum) | peak MiB (max) |", "|---|---:|---:|---:|"]
    for variant, c in cost.items():
        lines.append(
            f"| {variant} | {sum(c['fit_s']):.0f} | {np.nansum(c['score_s']):.0f} "
            f"| {max(c['peak_mib']):.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("benchmarks/out/study"))
    parser.add_argument("--collect", action="store_true")
    parser.add_argument("--variant", default="default", help="name of the variant --collect caches")
    parser.add_argument("--params", default="{}", help="detector parameters for --collect, as JSON")
    parser.add_argument(
        "--passes", default="", help="other scoring passes (single,direct) of --variant's saved models"
    )
    parser.add_argument("--draws", type=int, default=1, help="noise draws cached per series (1 or 2)")
    parser.add_argument("--seed", type=int, default=0, help="random_state of the --collect fits")
    parser.add_argument("--variants", default="default", help="comma-separated variants to report")
    parser.add_argument("--datasets", default="smd,skab,synthetic,msl")
    parser.add_argument("--split", choices=SPLITS, default="dev", help="see benchmarks/splits.py")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rules", default="", help="comma-separated substrings of rule names")
    parser.add_argument("--note", default="", help="text added below the tables")
    parser.add_argument(
        "--msl-subset", type=int, default=0, help="only this many MSL channels of the split, evenly spaced"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    split = Split(args.split, msl_subset=args.msl_subset)
    datasets = args.datasets.split(",")
    if args.passes:
        collect_passes(split.series(datasets), args.cache / args.variant, args.passes.split(","))
        return
    if args.collect:
        collect(
            split.series(datasets), args.cache / args.variant, args.seed, json.loads(args.params), args.draws
        )
        return
    text = report(split, datasets, args.variants.split(","), args.cache, args.rules)
    header = (
        f"Command: `python benchmarks/bench_reduce.py --split {args.split} --variants {args.variants}"
        + (f" --msl-subset {args.msl_subset}" if args.msl_subset else "")
        + "` "
        "(entry errors cached by `--collect`, one fit per series and variant, seed 0 unless the "
        "variant is named `_seed1`). VUS-PR, mean over each dataset's series; every rule is "
        "calibrated on the held-out training rows only.\n\n"
    )
    body = header + text + (f"\n{args.note}\n" if args.note else "")
    print(body)
    if args.out:
        write_section(args.out, f"Diffusion evidence study ({args.split} split)", body)


if __name__ == "__main__":
    main()

"""Where the default hybrid's fit spends its time, stage by stage, on one SMD machine.

The fit of ``HybridDetector()`` is timed whole, and each stage is timed by wrapping the function
that does it (the wrappers only read the clock):

* causal: lag choice and graph discovery, the mechanisms, the scores of its held-out rows;
* diffusion: the denoiser's training steps, the validation evaluations inside them, the
  imputation of its held-out rows (the calibration scores);
* fusion: the injected-anomaly skills (the weighting) and the rest (calibrators, threshold).

Usage::

    python benchmarks/bench_fit_profile.py --machine 1-2 --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

STAGES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(owner: Any, name: str, stage: str) -> None:
    """Wrap ``owner.name`` so that its seconds add up under ``stage``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            STAGES[stage] += time.perf_counter() - t0
            CALLS[stage] += 1

    setattr(owner, name, wrapper)


def instrument() -> None:
    import tsdiff.diffusion.detector as diffusion_detector
    import tsdiff.diffusion.training as training
    from tsdiff.causal.detector import CausalDetector
    from tsdiff.fusion import FusionDetector

    timed(CausalDetector, "_fit", "causal: lag, discovery and mechanisms")
    timed(CausalDetector, "_calibrate", "causal: held-out scores")
    timed(training.ValidationSet, "error", "diffusion: validation inside training")
    timed(training, "fit_denoiser", "diffusion: training (with its validation)")  # imported at call time
    timed(diffusion_detector.ImDiffusionDetector, "_calibrate", "diffusion: held-out imputation")
    timed(FusionDetector, "_injected_skills", "fusion: injected-anomaly skills")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machine", default="1-2", help="SMD machine (dev split: 1-2, 1-3, 1-4)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr)
    warnings.simplefilter("ignore")
    import torch

    from tsdiff.datasets import load_smd
    from tsdiff.registry import build

    instrument()
    data = load_smd(args.machine)
    det = build("hybrid", "default", random_state=0, verbose=False)
    t0 = time.perf_counter()
    det.fit(data.train)
    total = time.perf_counter() - t0
    history = det.components_["diffusion"].history_
    training = STAGES["diffusion: training (with its validation)"]
    validation = STAGES["diffusion: validation inside training"]
    rows = [
        ("causal: lag, discovery and mechanisms", STAGES["causal: lag, discovery and mechanisms"]),
        ("causal: held-out scores", STAGES["causal: held-out scores"]),
        (f"diffusion: {history.steps} training steps", training - validation),
        (f"diffusion: {CALLS['diffusion: validation inside training']} validations", validation),
        ("diffusion: held-out imputation", STAGES["diffusion: held-out imputation"]),
        ("fusion: injected-anomaly skills", STAGES["fusion: injected-anomaly skills"]),
    ]
    rows.append(("the rest (scaling, calibrators, threshold, copies)", total - sum(s for _, s in rows)))
    n, k = data.train.shape
    lines = [
        f"Command: `python benchmarks/bench_fit_profile.py --machine {args.machine}` (2 cores, alone, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads). Split: development (SMD "
        f"machine-{args.machine}: {n} training rows, {k} metrics). `HybridDetector()` with its defaults, "
        "each stage timed by a wrapper round the function that does it.",
        "",
        "| stage | seconds | share |",
        "|---|---:|---:|",
        *[f"| {name} | {s:.1f} | {100 * s / total:.0f}% |" for name, s in rows],
        f"| **whole fit** | **{total:.1f}** | 100% |",
        "",
        f"A training step takes {1000 * (training - validation) / max(1, history.steps):.0f} ms "
        f"(batch {det.components_['diffusion'].batch_size}); training stopped by "
        f"{history.stopped_because} after {history.steps} steps, best validation at step "
        f"{history.best_step}.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from report import write_section

        write_section(args.out, "Fit profile of the default hybrid", text)


if __name__ == "__main__":
    main()

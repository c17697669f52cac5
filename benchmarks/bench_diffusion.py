"""Where the CPU time of the imputation diffusion goes, and what each design choice saves.

Times the denoiser (one training step and one inference pass, per window of 38 metrics) for the
reference size of ImDiffusion (64 channels, 4 blocks, 8 heads, windows of 100, one token per time
step) and for tsdiff's default (32 channels, 3 blocks, 2 heads, windows of 64, 4 time steps per
token), and the scoring cost per row of the chain and single-step modes. Usage::

    python benchmarks/bench_diffusion.py [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from tsdiff.diffusion.denoiser import Denoiser
from tsdiff.torch_runtime import available_cpus

N_METRICS = 38
CONFIGS = {
    "reference size (64 ch, 4 blocks, 8 heads, window 100, patch 1)": dict(
        channels=64, layers=4, heads=8, patch=1, window=100
    ),
    "reference size with 4-step patches (window 100)": dict(
        channels=64, layers=4, heads=8, patch=4, window=100
    ),
    "tsdiff default (32 ch, 3 blocks, 2 heads, window 64, patch 4)": dict(
        channels=32, layers=3, heads=2, patch=4, window=64
    ),
}


def time_denoiser(channels: int, layers: int, heads: int, patch: int, window: int, batch: int = 32) -> tuple:
    torch.manual_seed(0)
    model = Denoiser(N_METRICS, 50, channels=channels, layers=layers, heads=heads, patch=patch)
    x = torch.randn(batch, N_METRICS, window)
    observed = torch.rand(batch, N_METRICS, window) > 0.5
    step = torch.randint(0, 50, (batch,))
    strategy = torch.zeros(batch, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def train_step() -> None:
        loss = (model(x, observed, step, strategy) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer() -> None:
        with torch.inference_mode():
            model(x, observed, step, strategy)

    out = []
    for fn, mode in ((train_step, True), (infer, False)):
        model.train(mode)
        fn()
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        out.append(statistics.median(runs) / batch * 1000)
    return out[0], out[1], sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the tables into this markdown file")
    args = parser.parse_args()
    torch.set_num_threads(available_cpus())
    lines = [
        "Command: `python benchmarks/bench_diffusion.py --out benchmarks/RESULTS.md`  ",
        f"{N_METRICS} metrics, batches of 32 windows, torch {torch.__version__} on {available_cpus()} "
        "CPU threads; median of 3 runs. Scoring costs 2 masks x (steps) passes per window, "
        "one window per half window of rows.",
        "",
        "| denoiser | train ms/window | inference ms/window | parameters | chain (10 steps) ms/row | "
        "single (5 steps) ms/row |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, cfg in CONFIGS.items():
        train_ms, infer_ms, params = time_denoiser(**cfg)
        per_row = 2 * infer_ms / (cfg["window"] // 2)  # two masks, one window per window/2 rows
        cost = f"{10 * per_row:.3f} | {5 * per_row:.3f}"
        lines.append(f"| {name} | {train_ms:.1f} | {infer_ms:.2f} | {params:,} | {cost} |")
    print("\n".join(lines))
    if args.out:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import write_section

        write_section(args.out, "Diffusion denoiser cost", "\n".join(lines))


if __name__ == "__main__":
    main()

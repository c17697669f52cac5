"""Batched scoring: every window of a series imputed under both grating masks, errors back to rows.

Windows of ``config.window`` rows start every half window (the last one ends on the last row);
each row takes its errors from the window in which it lies closest to the centre. A stream passes
a ``memo`` that keeps each window's errors by stream position, so rescoring a moving buffer only
computes the windows it has not seen.
"""

from __future__ import annotations

import numpy as np
import torch

from tsdiff.diffusion.config import DiffusionConfig
from tsdiff.diffusion.denoiser import Denoiser
from tsdiff.diffusion.imputation import imputation_errors, noise_draws, window_noise
from tsdiff.frame import window_starts, windows_to_rows
from tsdiff.torch_runtime import cpu_threads, network_input, window_batch


def entry_errors(
    model: Denoiser,
    values: np.ndarray,
    config: DiffusionConfig,
    seed: int,
    device: torch.device,
    offset: int = 0,
    memo: dict | None = None,
    verbose: bool = False,
) -> np.ndarray:
    """Imputation error of every entry of scaled ``values`` (n, K) at each recorded step: (n, S, K),
    NaN where missing.

    Errors compare the imputation with the unclipped scaled value, so a value far outside the
    model's range still counts at its full size. ``offset`` is the row number of ``values[0]``
    in a longer stream (it keys the noise, so a window's noise does not depend on the call).
    ``memo`` maps a window's stream position to its errors: a stream rescoring its buffer
    computes only the windows it has not seen (a window's rows never change once received).
    """
    from tqdm.auto import tqdm

    w, stride = config.window, config.stride
    n, k = values.shape
    starts = window_starts(n, w, stride)
    visit, record = config.steps()
    model = model.to(device).eval()
    process = config.process(device)
    draws = noise_draws(config.scoring, len(visit), len(record))
    x_all, present_all = (t.to(device) for t in network_input(values, config.clip))
    truth_all = network_input(values, None)[0].to(device)
    per_window = np.empty((len(starts), w, len(record), k), dtype=np.float32)
    todo = np.arange(len(starts))
    if memo is not None:
        known = np.array([offset + int(s) in memo for s in starts], dtype=bool)
        for i in np.flatnonzero(known):
            per_window[i] = memo[offset + int(starts[i])]
        todo = np.flatnonzero(~known)
    batch = max(1, config.batch_size * 2)
    progress = tqdm(total=len(todo), desc="scoring", unit="window", disable=not verbose, leave=False)
    try:
        with cpu_threads(), torch.inference_mode():
            for b in range(0, len(todo), batch):
                rows = todo[b : b + batch]
                chunk = starts[rows]
                x0 = window_batch(x_all, chunk, w)  # (B, K, L)
                truth = window_batch(truth_all, chunk, w)
                present = window_batch(present_all, chunk, w)
                noise = window_noise(seed, chunk + offset, (2, draws, k, w), device)
                err = imputation_errors(model, process, x0, present, noise, config, truth)  # (S, B, K, L)
                per_window[rows] = err.permute(1, 3, 0, 2).cpu().numpy()
                if memo is not None:  # grid windows only: the last, end-aligned one moves each call
                    for i in rows:
                        if (offset + int(starts[i])) % stride == 0:
                            memo[offset + int(starts[i])] = per_window[i].copy()
                progress.update(len(chunk))
    finally:
        progress.close()
        model.cpu()
    return windows_to_rows(per_window, starts, n, how="center")  # (n, S, K)

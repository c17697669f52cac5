"""Batched scoring: every window of a series imputed under the scoring masks, errors back to rows.

Each mask family gives every row one error per recorded step:

* a grating scale: windows of ``config.window`` rows start every half window (the last one ends on
  the last row), each imputed under the scale's two complementary gratings; a row takes its
  errors from the window in which it lies closest to the centre;
* the tail mask: the series is cut into blocks of ``config.tail`` rows, and each block is imputed
  from the rows before it only, in the window that ends with the block (the first blocks of a
  series, with fewer rows before them, from the first window). A row's errors need no row after
  its block.

A stream passes a ``memo`` that keeps each window's (or block's) errors by stream position, so
rescoring a moving buffer only computes what it has not seen.
"""

from __future__ import annotations

import numpy as np
import torch

from tsdiff.diffusion.config import DiffusionConfig
from tsdiff.diffusion.denoiser import Denoiser
from tsdiff.diffusion.imputation import Pass, grating_passes, imputation_errors, noise_draws, window_noise
from tsdiff.diffusion.masks import GRATING, TAIL
from tsdiff.frame import window_starts, windows_to_rows
from tsdiff.torch_runtime import cpu_threads, network_input, window_batch

#: seeds of the mask families after the first are offset by this prime times their index
FAMILY_SEED_STEP = 7919


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
    """Imputation error of every entry of scaled ``values`` (n, K) for each mask family and
    recorded step: (n, F * S, K), family-major, NaN where missing (``scoring="density"``: one
    ELBO term per family, (n, F, K)).

    Errors compare the imputation with the unclipped scaled value, so a value far outside the
    model's range still counts at its full size. ``offset`` is the row number of ``values[0]``
    in a longer stream (it keys the noise, so a window's noise does not depend on the call).
    ``memo`` maps a window's stream position to its errors (one nested dict per family after the
    first): a stream rescoring its buffer computes only the windows it has not seen.
    """
    from tqdm.auto import tqdm

    model = model.to(device).eval()
    x_all, present_all = (t.to(device) for t in network_input(values, config.clip))
    truth_all = network_input(values, None)[0].to(device)
    families = config.families()
    parts = []
    progress = tqdm(desc="scoring", unit="window", disable=None if verbose else True, leave=False)
    try:
        with cpu_threads(), torch.inference_mode():
            for index, (kind, size) in enumerate(families):
                own = memo if memo is None or index == 0 else memo.setdefault(f"{kind}{size}", {})
                family = _Family(model, config, seed + FAMILY_SEED_STEP * index, device, progress)
                tensors = (x_all, present_all, truth_all)
                if kind == "grating":
                    part = family.grating(tensors, size, offset, own)
                else:
                    part = family.tail(tensors, size, offset, own)
                parts.append(config.density(part) if config.scoring == "density" else part)
    finally:
        progress.close()
        model.cpu()
    return np.concatenate(parts, axis=1)


class _Family:
    """Scores one mask family over a whole series, in batches of windows."""

    def __init__(
        self, model: Denoiser, config: DiffusionConfig, seed: int, device: torch.device, progress
    ) -> None:
        self.model, self.config, self.seed, self.device, self.progress = model, config, seed, device, progress
        self.process = config.process(device)
        visit, record = config.steps()
        self.n_record = len(record)
        self.draws = noise_draws(config.scoring, len(visit), len(record))
        self.batch = max(1, config.batch_size * 2)

    def _errors(self, tensors, starts: np.ndarray, keys: np.ndarray, n_passes: int, make_passes):
        """(len(starts), L, S, K) errors of the windows starting at ``starts`` (noise keyed by ``keys``)."""
        x_all, present_all, truth_all = tensors
        w, k = self.config.window, x_all.shape[1]
        out = np.empty((len(starts), w, self.n_record, k), dtype=np.float32)
        for b in range(0, len(starts), self.batch):
            chunk = starts[b : b + self.batch]
            x0 = window_batch(x_all, chunk, w)  # (B, K, L)
            truth = window_batch(truth_all, chunk, w)
            present = window_batch(present_all, chunk, w)
            shape = (n_passes, self.draws, k, w)
            noise = window_noise(self.seed, keys[b : b + self.batch], shape, self.device)
            passes = make_passes(present, b)
            err = imputation_errors(self.model, self.process, x0, present, noise, self.config, truth, passes)
            out[b : b + len(chunk)] = err.permute(1, 3, 0, 2).cpu().numpy()  # (B, L, S, K)
            self.progress.update(len(chunk))
        return out

    def _grating_passes(self, segments: int):
        if self.config.scoring == "direct":  # one pass, every entry a target, nothing as context
            return lambda present, _: [Pass(present, torch.zeros_like(present), GRATING)]
        return lambda present, _: grating_passes(self.config, present, segments)

    def grating(self, tensors, segments: int, offset: int, memo: dict | None) -> np.ndarray:
        n, k = tensors[0].shape
        w, stride = self.config.window, self.config.stride
        starts = window_starts(n, w, stride)
        per_window = np.empty((len(starts), w, self.n_record, k), dtype=np.float32)
        todo = _recall(memo, starts + offset, per_window)
        if len(todo):
            per_window[todo] = self._errors(
                tensors,
                starts[todo],
                starts[todo] + offset,
                1 if self.config.scoring == "direct" else 2,
                self._grating_passes(segments),
            )
        _remember(memo, starts[todo] + offset, per_window[todo], stride)
        return windows_to_rows(per_window, starts, n, how="center")  # (n, S, K)

    def tail(self, tensors, tail: int, offset: int, memo: dict | None) -> np.ndarray:
        n, k = tensors[0].shape
        w = self.config.window
        # blocks of tail rows from the start (a final, end-aligned one when the rows run out)
        blocks = np.arange(0, n - tail + 1, tail)
        if blocks[-1] + tail < n:
            blocks = np.append(blocks, n - tail)
        window_start = np.maximum(blocks + tail - w, 0)
        position = blocks - window_start  # where the block's targets start in its window
        per_block = np.empty((len(blocks), tail, self.n_record, k), dtype=np.float32)
        todo = _recall(memo, blocks + offset, per_block)
        if len(todo):
            steps = torch.arange(w, device=self.device)

            def passes(present: torch.Tensor, first: int) -> list[Pass]:
                pos = torch.as_tensor(position[todo][first : first + len(present)], device=self.device)
                pos = pos[:, None, None]
                targets = (steps >= pos) & (steps < pos + tail) & present
                context = (steps < pos) & present
                return [Pass(targets, context, TAIL)]

            errors = self._errors(tensors, window_start[todo], blocks[todo] + offset, 1, passes)
            for j, i in enumerate(todo):
                per_block[i] = errors[j, position[i] : position[i] + tail]
        _remember(memo, blocks[todo] + offset, per_block[todo], tail)
        rows = np.full((n, self.n_record, k), np.nan, dtype=np.float32)
        # the end-aligned block first, so the grid blocks it overlaps keep their own errors
        for i in list(range(len(blocks)))[::-1]:
            rows[blocks[i] : blocks[i] + tail] = per_block[i]
        return rows


def _recall(memo: dict | None, positions: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Fill ``out[i]`` from the memo where it holds stream position ``positions[i]``; the indices
    still to compute."""
    if memo is None:
        return np.arange(len(positions))
    known = np.array([int(p) in memo for p in positions], dtype=bool)
    for i in np.flatnonzero(known):
        out[i] = memo[int(positions[i])]
    return np.flatnonzero(~known)


def _remember(memo: dict | None, positions: np.ndarray, values: np.ndarray, period: int) -> None:
    """Keep the values of grid positions (multiples of ``period``): an end-aligned last window or
    block moves with each call and is not kept."""
    if memo is None:
        return
    for position, value in zip(positions, values, strict=True):
        if int(position) % period == 0:
            memo[int(position)] = value.copy()

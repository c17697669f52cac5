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
rescoring a moving buffer only computes what it has not seen. Under the tail mask with the chain,
a stream also starts the next block's chain as soon as the rows before the block are in and
spreads its steps over the updates that bring the block's rows: a target's value is never an input
to its own imputation, so the chain can run before the row arrives, and the row's update only
compares. A block whose rows turn out to have missing cells (a different mask) is imputed again.
The end-aligned last block is computed only when a row the stream reads needs it.
"""

from __future__ import annotations

import numpy as np
import torch

from tsdiff.base import MEMO_WANTED, child_memo
from tsdiff.diffusion.config import DiffusionConfig
from tsdiff.diffusion.denoiser import Denoiser
from tsdiff.diffusion.imputation import (
    ChainImputation,
    Pass,
    grating_passes,
    imputation_errors,
    noise_draws,
    window_noise,
)
from tsdiff.diffusion.masks import GRATING, TAIL
from tsdiff.frame import window_starts, windows_to_rows
from tsdiff.torch_runtime import cpu_threads, network_input, window_batch

#: seeds of the mask families after the first are offset by this prime times their index
FAMILY_SEED_STEP = 7919
#: memo key of the tail block whose chain a stream has started before its rows are all in
PENDING = "pending_tail"


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

    on_cpu = device.type == "cpu"  # moving a model that is already there still walks every module
    model = (model if on_cpu else model.to(device)).eval()
    x_all, present_all = (t.to(device) for t in network_input(values, config.clip))
    truth_all = network_input(values, None)[0].to(device)
    families = config.families()
    parts = []
    progress = tqdm(desc="scoring", unit="window", disable=None if verbose else True, leave=False)
    try:
        with cpu_threads(), torch.inference_mode():
            for index, (kind, size) in enumerate(families):
                own = memo if memo is None or index == 0 else child_memo(memo, f"{kind}{size}")
                family = _Family(model, config, seed + FAMILY_SEED_STEP * index, device, progress)
                tensors = (x_all, present_all, truth_all)
                if kind == "grating":
                    part = family.grating(tensors, size, offset, own)
                else:
                    part = family.tail(tensors, size, offset, own, _wanted_rows(memo, offset, config))
                parts.append(config.density(part) if config.scoring == "density" else part)
    finally:
        progress.close()
        if not on_cpu:
            model.cpu()
    return np.concatenate(parts, axis=1)


def _wanted_rows(memo: dict | None, offset: int, config: DiffusionConfig) -> int | None:
    """Index (in this call's rows) of the last row whose errors a read score depends on: the last
    row the stream reads, plus how far a centred smoothing reaches past it (None: every row)."""
    if memo is None or memo.get(MEMO_WANTED) is None:
        return None
    return int(memo[MEMO_WANTED]) - offset + config.smooth_ahead()


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

    def tail(
        self, tensors, tail: int, offset: int, memo: dict | None, wanted: int | None = None
    ) -> np.ndarray:
        n, k = tensors[0].shape
        w = self.config.window
        # blocks of tail rows from the start, and a final, end-aligned one when the rows run out
        # (skipped when no row that is read needs it: ``wanted`` is the last row that is)
        blocks = np.arange(0, n - tail + 1, tail)
        if blocks[-1] + tail < n and (wanted is None or wanted >= blocks[-1] + tail):
            blocks = np.append(blocks, n - tail)
        window_start = np.maximum(blocks + tail - w, 0)
        position = blocks - window_start  # where the block's targets start in its window
        per_block = np.empty((len(blocks), tail, self.n_record, k), dtype=np.float32)
        todo = _recall(memo, blocks + offset, per_block)
        chained = memo is not None and self.config.scoring == "chain"
        pending = memo.setdefault(PENDING, {}) if chained else None
        computed = todo
        if pending and len(todo):
            key = blocks[todo] + offset
            first = window_start[todo] + offset
            started = [
                i
                for i, p, f in zip(todo, key, first, strict=True)
                if self._finish(tensors, pending.pop(int(p), None), int(f), offset, i, per_block)
            ]
            todo = np.setdiff1d(todo, started)
        if len(todo):
            errors = self._errors(
                tensors, window_start[todo], blocks[todo] + offset, 1, self._tail_passes(position[todo], tail)
            )
            for j, i in enumerate(todo):
                per_block[i] = errors[j, position[i] : position[i] + tail]
        _remember(memo, blocks[computed] + offset, per_block[computed], tail)
        if pending is not None:
            self._start_next(tensors, pending, tail, offset)
        rows = np.full((n, self.n_record, k), np.nan, dtype=np.float32)
        # the end-aligned block first, so the grid blocks it overlaps keep their own errors
        for i in list(range(len(blocks)))[::-1]:
            rows[blocks[i] : blocks[i] + tail] = per_block[i]
        return rows

    def _tail_passes(self, position: np.ndarray, tail: int):
        """The tail pass of windows whose blocks start at ``position`` in them: the block's rows are
        the targets, the rows before it the context."""
        steps = torch.arange(self.config.window, device=self.device)

        def passes(present: torch.Tensor, first: int) -> list[Pass]:
            pos = torch.as_tensor(position[first : first + len(present)], device=self.device)[:, None, None]
            targets = (steps >= pos) & (steps < pos + tail) & present
            context = (steps < pos) & present
            return [Pass(targets, context, TAIL)]

        return passes

    def _start_next(self, tensors, pending: dict, tail: int, offset: int) -> None:
        """Start (or continue) the chain of the first block whose rows are not all in yet, taking
        enough steps that it is done when its last row arrives, if rows come one at a time."""
        x_all, present_all, _ = tensors
        n, k = x_all.shape
        w = self.config.window
        block = (n // tail) * tail
        key = block + offset
        for stale in [p for p in pending if p != key]:
            del pending[stale]
        if key % tail or block + tail - w < 0:  # off the grid, or a window shorter than the model's
            return
        run = pending.get(key)
        if run is None:
            first = block + tail - w
            x0 = torch.zeros((1, k, w), device=self.device)
            present = torch.ones((1, k, w), dtype=torch.bool, device=self.device)
            x0[0, :, : n - first] = x_all[first:n].T  # the rows after n are the block's, still to come
            present[0, :, : n - first] = present_all[first:n].T
            (one,) = self._tail_passes(np.array([w - tail]), tail)(present, 0)
            noise = window_noise(self.seed, [key], (1, self.draws, k, w), self.device)
            chain = ChainImputation(self.model, self.process, x0, present, noise, self.config, [one])
            run = pending[key] = _Started(first + offset, x0, one, chain)
        to_come = block + tail - n  # rows of the block still to arrive (1 .. tail)
        run.chain.advance(-(-run.chain.remaining // to_come))

    def _finish(
        self, tensors, run: _Started | None, start: int, offset: int, i: int, per_block: np.ndarray
    ) -> bool:
        """Errors of a block from its started chain, into ``per_block[i]``; False when there is none,
        or when the block's rows, now in, give another mask than the one assumed. ``start`` is the
        stream position of the block's window."""
        if run is None:
            return False
        x_all, present_all, truth_all = tensors
        w, tail = self.config.window, per_block.shape[1]
        if run.start != start:  # the block's window is not the one its chain was started in
            return False
        start -= offset
        x0, present = window_batch(x_all, [start], w), window_batch(present_all, [start], w)
        (one,) = self._tail_passes(np.array([w - tail]), tail)(present, 0)
        zero = torch.zeros((), device=self.device)
        same = (
            torch.equal(one.targets, run.one.targets)
            and torch.equal(one.context, run.one.context)
            and torch.equal(torch.where(one.context, x0, zero), torch.where(one.context, run.x0, zero))
        )
        if not same:
            return False
        run.chain.advance()
        errors = run.chain.errors(window_batch(truth_all, [start], w))  # (S, 1, K, L)
        per_block[i] = errors[:, 0, :, w - tail :].permute(2, 0, 1).cpu().numpy()
        return True


class _Started:
    """A tail block's chain begun before all its rows were in: the window's first row (stream
    position), its context values and pass, and the chain."""

    def __init__(self, start: int, x0: torch.Tensor, one: Pass, chain: ChainImputation) -> None:
        self.start, self.x0, self.one, self.chain = start, x0, one, chain


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

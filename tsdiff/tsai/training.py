"""tsai models trained by fastai's loop: architectures, heads, window batches, training and inference.

Imported only once :func:`tsdiff.tsai.compat.load_tsai` has run (it imports fastai and
tsai at module level).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.optimizer import Adam
from torch import nn

from tsdiff.tsai.compat import ARCHS

Batch = tuple[torch.Tensor, ...]


class ForecastHead(nn.Sequential):
    """Backbone features (batch, nf, window) -> the next row (batch, c_out), through all time steps."""

    def __init__(self, nf: int, c_out: int, seq_len: int) -> None:
        super().__init__(nn.GELU(), nn.Flatten(), nn.Linear(nf * seq_len, c_out))


class BottleneckHead(nn.Sequential):
    """Backbone features (batch, nf, window) -> a ``latent``-sized code -> the window (batch, c_out, window).

    The narrow code is what makes reconstruction informative: the model cannot copy its input and
    has to rebuild each window from the few typical patterns it learned on normal data.
    """

    def __init__(self, nf: int, c_out: int, seq_len: int, latent: int) -> None:
        super().__init__(
            nn.GELU(),
            nn.Flatten(),
            nn.Linear(nf * seq_len, latent),
            nn.GELU(),
            nn.Linear(latent, c_out * seq_len),
            nn.Unflatten(1, (c_out, seq_len)),
        )


def build_model(
    arch: str, c_in: int, seq_len: int, head: Callable[[int, int, int], nn.Module], config: dict
) -> Any:
    """A tsai architecture with its own backbone and our ``head(nf, c_in, seq_len)``."""
    import importlib

    cls = getattr(importlib.import_module(ARCHS[arch]), arch)
    return cls(c_in, c_in, seq_len, custom_head=head, **config)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's, numpy's and torch's global generators (fastai draws from all three); restore after."""
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002 (fastai and tsai draw from the legacy global)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)  # noqa: NPY002


class WindowLoader(DataLoader):
    """fastai DataLoader whose items are window numbers, turned into tensors a whole batch at a time.

    ``make_batch(positions)`` cuts the windows at those positions out of one series, so no window
    is ever stored on its own and a batch costs one indexing operation.
    """

    def __init__(self, make_batch: Callable[[np.ndarray], Batch], n: int, **kwargs: Any) -> None:
        super().__init__(dataset=range(n), num_workers=0, **kwargs)
        self.make_batch = make_batch
        self.n_inp = 1  # a batch is (input, target, present): one input, the rest go to the loss

    def create_item(self, s: int) -> int:
        return s

    def create_batch(self, b: list[int]) -> Batch:
        return self.make_batch(np.asarray(b, dtype=np.int64))

    def retain(self, res: Batch, b: list[int]) -> Batch:
        return res


class TqdmProgress(Callback):
    """One tqdm bar over all training batches (on stderr), with the last epoch's losses."""

    order = 70

    def before_fit(self) -> None:
        from tqdm.auto import tqdm

        total = self.n_epoch * len(self.dls.train)
        self.bar = tqdm(
            total=total, desc="training", unit="batch", leave=False, disable=None
        )  # off unless a terminal

    def after_batch(self) -> None:
        if self.training:
            self.bar.update(1)

    def after_epoch(self) -> None:
        values = self.recorder.values[-1] if self.recorder.values else []
        if len(values) >= 2:
            self.bar.set_postfix(train=f"{values[0]:.4f}", valid=f"{values[1]:.4f}")

    def after_fit(self) -> None:
        self.bar.close()


def masked_mse(pred: torch.Tensor, target: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the present entries only (missing targets teach nothing)."""
    weight = present.to(pred.dtype)
    return ((pred - target) ** 2 * weight).sum() / weight.sum().clamp(min=1.0)


def train(
    model: nn.Module,
    make_batch: Callable[[np.ndarray], Batch],
    positions: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    device: torch.device,
    verbose: bool,
) -> list[dict[str, float]]:
    """Fit ``model`` with fastai's one-cycle schedule; returns the train/valid loss of each epoch.

    ``positions`` holds the window positions of the training and validation parts; the training
    windows are shuffled each epoch (fastai's loader draws from Python's ``random``, seeded by the
    caller), the last incomplete batch is dropped unless it is the only one.
    """
    train_pos, valid_pos = positions
    bs = max(1, min(int(batch_size), len(train_pos)))

    def part(pos: np.ndarray) -> Callable[[np.ndarray], Batch]:
        return lambda idx: make_batch(pos[idx])

    train_dl = WindowLoader(
        part(train_pos), len(train_pos), bs=bs, shuffle=True, drop_last=len(train_pos) > bs
    )
    valid_dl = WindowLoader(part(valid_pos), len(valid_pos), bs=max(bs, 256), shuffle=False)
    dls = DataLoaders(train_dl, valid_dl, device=device)
    learn = Learner(dls, model.to(device), loss_func=masked_mse, opt_func=Adam, wd=weight_decay)
    callbacks = [TqdmProgress()] if verbose else []
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(int(epochs), lr_max=float(learning_rate), cbs=callbacks)
    history = []
    for values in learn.recorder.values:
        row = {"train_loss": float(values[0])}
        if len(values) > 1:
            row["valid_loss"] = float(values[1])
        history.append(row)
    model.eval()
    return history


def predict(
    model: nn.Module, make_input: Callable[[np.ndarray], torch.Tensor], n: int, batch_size: int, device: Any
) -> np.ndarray:
    """The model's outputs for windows ``0 .. n-1``, computed in batches with the torch model itself."""
    model = model.to(device).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(n, start + batch_size), dtype=np.int64)
            out.append(model(make_input(idx).to(device)).float().cpu().numpy())
    return np.concatenate(out, axis=0)

"""Training the denoiser, and the settings that shape it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tsdiff.diffusion.config import DiffusionConfig
from tsdiff.diffusion.denoiser import Denoiser
from tsdiff.diffusion.training import ValidationSet, WindowSource, train_denoiser
from tsdiff.registry import TINY_DIFFUSION


# ----------------------------------------------------------------- training
def test_training_lowers_the_validation_error():
    torch.manual_seed(0)
    t = torch.arange(2000, dtype=torch.float32)
    series = torch.stack([torch.sin(t / 8), torch.cos(t / 8), torch.sin(t / 8 + 1)], dim=1)  # (n, K)
    present = torch.ones_like(series, dtype=torch.bool)
    config = DiffusionConfig.of(
        window=16,
        diffusion_steps=20,
        reverse_steps=9,
        ensemble_steps=3,
        batch_size=16,
        learning_rate=3e-3,
        eval_every=50,
        patience=10,
    )
    process = config.process(torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    model = Denoiser(3, 20, channels=16, layers=1, heads=2, patch=2)
    val = ValidationSet(WindowSource(series[1500:], present[1500:], 16), process, config, gen, 32)
    before = val.error(model.eval(), 32)
    train = WindowSource(series[:1500], present[:1500], 16)
    history = train_denoiser(model, process, train, val, config, 150, gen)
    assert history.steps == 150 and history.stopped_because == "max_steps"
    assert history.best_val_error < 0.7 * before
    assert val.error(model, 32) == pytest.approx(history.best_val_error)


def test_epoch_cap_binds_on_short_training_data():
    config = DiffusionConfig.of(**{**TINY_DIFFUSION, "max_steps": 10_000}, max_epochs=1.0)
    assert config.train_steps(400) == int(np.ceil((400 - 16 + 1) / 16))

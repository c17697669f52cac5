"""Training the denoiser, and the settings that shape it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tsdiff.diffusion.config import DiffusionConfig
from tsdiff.diffusion.denoiser import Denoiser
from tsdiff.diffusion.training import ValidationSet, WindowSource, train_denoiser
from tsdiff.errors import ParameterError
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


# ----------------------------------------------------------------- recorded steps
def test_informative_rule_records_the_steps_whose_context_carries_signal():
    config = DiffusionConfig.of(record="informative", conditioning="unconditional")
    visit, record = config.steps()
    alpha_bar = config.noise_schedule().alpha_bar
    snr = alpha_bar / (1.0 - alpha_bar)
    # exactly the visited steps at which the noised context is at least as much signal as noise
    assert list(record) == [t for t in visit if snr[t] >= 1.0]
    assert list(record) == [16, 11, 5, 0]  # quad schedule, 50 steps, 10 visited
    assert all(snr[t] < 1.0 for t in set(visit) - set(record))
    # with a clean context every visited step is informative
    clean = DiffusionConfig.of(record="informative", conditioning="conditional")
    assert list(clean.steps()[1]) == list(visit)
    # "last" keeps the old rule: the last ensemble_steps visited
    last = DiffusionConfig.of(record="last", ensemble_steps=3, conditioning="unconditional")
    assert list(last.steps()[1]) == [11, 5, 0]
    assert config.training_step_range() == 17
    with pytest.raises(ParameterError, match="record"):
        DiffusionConfig.of(record="some")
    with pytest.raises(ParameterError, match="train_focus"):
        DiffusionConfig.of(train_focus=1.5)


def test_train_focus_draws_steps_from_the_recorded_range(monkeypatch):
    from tsdiff.diffusion import training

    seen: list[torch.Tensor] = []
    real = training.noised_input

    def spy(process, x0, present, targets, t, eps, conditioning):
        seen.append(t.clone())
        return real(process, x0, present, targets, t, eps, conditioning)

    monkeypatch.setattr(training, "noised_input", spy)
    values = np.random.default_rng(0).standard_normal((400, 2))
    for focus in (0.0, 1.0):
        seen.clear()
        settings = {"record": "informative", "conditioning": "unconditional", "train_focus": focus}
        config = DiffusionConfig.of(**{**TINY_DIFFUSION, **settings})
        training.fit_denoiser(values, 300, config, 0, torch.device("cpu"), False)
        drawn = torch.cat(seen[:30])  # training batches (validation batches come later)
        top = config.training_step_range()
        if focus == 1.0:
            assert int(drawn.max()) < top
        else:
            assert int(drawn.max()) >= top  # uniform over all steps reaches above the range

"""Imputing masked windows, and the errors at the recorded steps."""

from __future__ import annotations

import pytest
import torch

from tsdiff import errors
from tsdiff.diffusion.config import DiffusionConfig
from tsdiff.diffusion.denoiser import Denoiser
from tsdiff.diffusion.imputation import DiffusionProcess, imputation_errors, noise_draws, window_noise
from tsdiff.diffusion.schedule import NoiseSchedule


# ----------------------------------------------------------------- imputation
@pytest.mark.parametrize("mode", ["chain", "single"])
@pytest.mark.parametrize("conditioning", ["unconditional", "conditional"])
def test_every_present_entry_gets_one_error(mode, conditioning):
    torch.manual_seed(0)
    model = Denoiser(n_metrics=3, n_steps=20, channels=8, layers=1, heads=1, patch=2).eval()
    process = DiffusionProcess(NoiseSchedule(20), torch.device("cpu"), clip=10.0)
    x0 = torch.randn(4, 3, 16)
    present = torch.rand(4, 3, 16) > 0.2
    config = DiffusionConfig.of(
        window=16,
        diffusion_steps=20,
        reverse_steps=5,
        ensemble_steps=3,
        scoring=mode,
        conditioning=conditioning,
        record="last",
    )
    visit, record = config.steps()
    noise = window_noise(
        1, range(4), (2, noise_draws(mode, len(visit), len(record)), 3, 16), torch.device("cpu")
    )
    err = imputation_errors(model, process, x0, present, noise, config)
    assert err.shape == (3, 4, 3, 16)
    assert torch.equal(~torch.isnan(err[0]), present)
    assert (err[~torch.isnan(err)] >= 0).all()


def test_errors_use_the_unclipped_truth():
    model = Denoiser(n_metrics=1, n_steps=10, channels=8, layers=1, heads=1).eval()
    process = DiffusionProcess(NoiseSchedule(10), torch.device("cpu"), clip=5.0)
    x0 = torch.zeros(1, 1, 8)
    truth = x0.clone()
    truth[0, 0, 3] = 100.0
    present = torch.ones(1, 1, 8, dtype=torch.bool)
    config = DiffusionConfig.of(
        window=8, grating_segments=2, diffusion_steps=10, reverse_steps=2, ensemble_steps=1, patch=1
    )
    noise = window_noise(0, [0], (2, noise_draws("chain", 2, 1), 1, 8), torch.device("cpu"))
    err = imputation_errors(model, process, x0, present, noise, config, truth=truth)
    assert err[0, 0, 0, 3] >= 95.0  # the imputation stays within the clip range; the error keeps the size


@pytest.mark.parametrize("prediction", ["x0", "eps"])
def test_both_parameterisations_recover_the_clean_values_and_noise(prediction):
    process = DiffusionProcess(NoiseSchedule(20), torch.device("cpu"), clip=None, prediction=prediction)
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 8, generator=gen), torch.randn(2, 3, 8, generator=gen)
    for t in (0, 10, 19):
        x_t = process.noise(x0, t, eps)
        x0_hat, eps_hat = process.estimates(x_t, t, process.training_target(x0, eps))
        torch.testing.assert_close(x0_hat, x0, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(eps_hat, eps, rtol=1e-3, atol=1e-3)
    with pytest.raises(errors.ParameterError, match="prediction"):
        DiffusionProcess(NoiseSchedule(20), torch.device("cpu"), prediction="v")


def test_window_noise_depends_on_start_not_batch():
    a = window_noise(7, [0, 5, 9], (2, 3), torch.device("cpu"))
    b = window_noise(7, [9], (2, 3), torch.device("cpu"))
    torch.testing.assert_close(a[2], b[0])
    assert not torch.equal(a[0], a[1])

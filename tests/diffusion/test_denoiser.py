"""The denoiser network."""

from __future__ import annotations

import pytest
import torch

from tsdiff.diffusion.denoiser import Denoiser, haar_approximations


# ----------------------------------------------------------------- denoiser
def test_denoiser_shapes_and_side_info_reuse():
    torch.manual_seed(0)
    model = Denoiser(n_metrics=3, n_steps=10, channels=8, layers=2, heads=2, patch=4).eval()
    x = torch.randn(5, 3, 16)
    observed = torch.rand(5, 3, 16) > 0.5
    step = torch.randint(0, 10, (5,))
    strategy = torch.zeros(5, dtype=torch.long)
    with torch.no_grad():
        out = model(x, observed, step, strategy)
        again = model(x, observed, step, strategy, side=model.side_info(observed))
    assert out.shape == x.shape
    torch.testing.assert_close(out, again)
    with pytest.raises(ValueError, match="multiple of the patch"):
        model(torch.randn(1, 3, 10), torch.ones(1, 3, 10, dtype=torch.bool), step[:1], strategy[:1])


def test_denoiser_starts_by_predicting_zero_noise():
    model = Denoiser(n_metrics=2, n_steps=10, channels=8, layers=1, heads=1)
    out = model(
        torch.randn(2, 2, 8),
        torch.ones(2, 2, 8, dtype=torch.bool),
        torch.tensor([1, 2]),
        torch.zeros(2).long(),
    )
    assert torch.count_nonzero(out) == 0


def test_single_metric_has_no_metric_attention():
    model = Denoiser(n_metrics=1, n_steps=10, channels=8, layers=1, heads=1)
    assert model.blocks[0].metric_layer is None
    assert model(
        torch.randn(2, 1, 8),
        torch.ones(2, 1, 8, dtype=torch.bool),
        torch.tensor([0, 1]),
        torch.zeros(2).long(),
    ).shape == (2, 1, 8)


def test_haar_approximations_are_block_means_held_over_each_block():
    values = torch.arange(6, dtype=torch.float32).reshape(1, 1, 6)  # 0 1 2 3 4 5
    flags = torch.tensor([[[1.0, 0.0, 1.0, 1.0, 0.0, 0.0]]])
    haar = haar_approximations(values, flags, 2)
    assert haar.shape == (1, 1, 6, 4)
    # level 1: pairs; level 2: blocks of 4, the last one holding the 2 rows left
    torch.testing.assert_close(haar[0, 0, :, 0], torch.tensor([0.5, 0.5, 2.5, 2.5, 4.5, 4.5]))
    torch.testing.assert_close(haar[0, 0, :, 1], torch.tensor([0.5, 0.5, 1.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(haar[0, 0, :, 2], torch.tensor([1.5, 1.5, 1.5, 1.5, 4.5, 4.5]))
    torch.testing.assert_close(haar[0, 0, :, 3], torch.tensor([0.75, 0.75, 0.75, 0.75, 0.0, 0.0]))


def test_wavelet_levels_widen_the_input_and_keep_the_output_shape():
    torch.manual_seed(0)
    model = Denoiser(n_metrics=3, n_steps=10, channels=8, layers=1, heads=2, patch=4, wavelet_levels=2)
    assert model.input.in_features == (2 + 4) * 4
    x = torch.randn(2, 3, 16)
    out = model(x, torch.rand(2, 3, 16) > 0.5, torch.tensor([1, 2]), torch.zeros(2).long())
    assert out.shape == x.shape

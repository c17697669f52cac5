"""Noise schedules and the imputation masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tsdiff import errors
from tsdiff.diffusion.masks import (
    GRATING,
    TAIL,
    GratingMask,
    grating_pattern,
    grating_targets,
    tail_pattern,
    training_targets,
)
from tsdiff.diffusion.schedule import NoiseSchedule


# ----------------------------------------------------------------- schedule
@pytest.mark.parametrize("kind", ["quad", "linear", "cosine"])
def test_schedules_are_valid_and_noise_grows(kind):
    s = NoiseSchedule(50, kind)
    assert s.beta.shape == (50,) and np.all((s.beta > 0) & (s.beta < 1))
    assert np.all(np.diff(s.alpha_bar) < 0)  # ever noisier
    assert s.alpha_bar[0] > 0.99 and s.alpha_bar[-1] < 0.1


def test_quad_schedule_matches_its_definition():
    s = NoiseSchedule(50, "quad", 1e-4, 0.5)
    np.testing.assert_allclose(s.beta, np.linspace(1e-2, 0.5**0.5, 50) ** 2)


def test_ddim_steps_descend_and_end_at_zero():
    s = NoiseSchedule(50)
    steps = s.ddim_steps(10)
    assert len(steps) == 10 and steps[0] == 49 and steps[-1] == 0 and np.all(np.diff(steps) < 0)
    assert len(s.ddim_steps(80)) == 50
    with pytest.raises(errors.ParameterError):
        NoiseSchedule(50, "exotic")


# ----------------------------------------------------------------- masks
def test_grating_masks_are_complementary():
    a, b = grating_targets(16, 4, 0), grating_targets(16, 4, 1)
    assert not (a & b).any() and (a | b).all()
    assert a[:4].all() and not a[4:8].any()  # segments of 4 steps, even ones hidden by phase 0


def test_checker_layout_alternates_metrics_and_covers_every_entry_once():
    time_p, checker = grating_pattern(16, 3, 4, "time"), grating_pattern(16, 3, 4, "checker")
    for p in (time_p, checker):
        assert p.shape == (2, 3, 16) and not (p[0] & p[1]).any() and (p[0] | p[1]).all()
    assert torch.equal(time_p[0], grating_targets(16, 4, 0).expand(3, 16))
    assert torch.equal(checker[0, 0], checker[0, 2]) and torch.equal(checker[0, 1], checker[1, 0])
    # while metric 0 is hidden, metric 1 at the same times is context
    assert not (checker[0, 0] & checker[0, 1]).any()
    present = torch.ones(5, 3, 16, dtype=torch.bool)
    targets, context, strategy = training_targets(
        present, 0.7, 1.0, 4, torch.Generator().manual_seed(0), "checker"
    )
    assert torch.equal(context, present & ~targets)
    assert (strategy == GRATING).all()
    assert all(torch.equal(t, checker[0]) or torch.equal(t, checker[1]) for t in targets)
    with pytest.raises(errors.ParameterError, match="layout"):
        grating_pattern(16, 3, 4, "diagonal")


def test_grating_never_targets_missing_entries():
    present = torch.ones(2, 3, 16, dtype=torch.bool)
    present[0, 1, 2] = False
    mask = GratingMask(16, 4)
    assert not mask.targets(0, present)[0, 1, 2]
    covered = mask.targets(0, present) | mask.targets(1, present)
    assert torch.equal(covered, present)


def test_training_targets_mix_strategies_and_respect_missing():
    gen = torch.Generator().manual_seed(0)
    present = torch.rand(400, 3, 16, generator=gen) > 0.1
    targets, context, strategy = training_targets(present, 0.7, 0.5, 4, gen)
    assert not (targets & ~present).any() and torch.equal(context, present & ~targets)
    share_grating = (strategy == GRATING).float().mean().item()
    assert 0.4 < share_grating < 0.6
    random_rows = strategy != GRATING
    ratio = targets[random_rows].sum() / present[random_rows].sum()
    assert 0.65 < ratio.item() < 0.75
    grating_rows = targets[strategy == GRATING]
    # a grating row hides whole time steps: every present entry of a hidden step is a target
    hidden_steps = grating_rows.any(dim=1)
    assert hidden_steps.float().mean().item() == pytest.approx(0.5, abs=0.05)


def test_tail_pattern_hides_what_comes_after_the_targets():
    targets, context = tail_pattern(16, 3, 4, 12)
    assert targets[:, 12:].all() and not targets[:, :12].any()
    assert context[:, :12].all() and not context[:, 12:].any()
    targets, context = tail_pattern(16, 3, 4, 5)  # a shorter context: steps 9.. are neither
    assert targets[:, 5:9].all() and not (targets | context)[:, 9:].any() and context[:, :5].all()
    with pytest.raises(errors.ParameterError, match="tail"):
        tail_pattern(16, 3, 4, 13)


def test_training_targets_with_scales_and_tail():
    gen = torch.Generator().manual_seed(0)
    present = torch.rand(600, 3, 16, generator=gen) > 0.1
    targets, context, strategy = training_targets(present, 0.7, 0.5, (2, 8), gen, tail=4, tail_fraction=0.3)
    assert not (targets & context).any() and not ((targets | context) & ~present).any()
    tail_rows = strategy == TAIL
    assert 0.22 < tail_rows.float().mean().item() < 0.38
    steps = torch.arange(16)
    for t, c in zip(targets[tail_rows], context[tail_rows], strict=True):
        hidden = t.any(dim=0)
        first = int(steps[hidden].min())
        # every target step comes after every context step: nothing is imputed from its future
        seen = steps[c.any(dim=0)]
        assert (int(seen.max()) if len(seen) else -1) < first and int(hidden.sum()) <= 4
    # both grating scales are drawn: segments of 8 steps and of 2 steps
    grating = targets[strategy == GRATING].any(dim=1).float()  # (B, L) hidden steps
    runs = (grating[:, 1:] != grating[:, :-1]).sum(dim=1)
    assert {1, 7} <= set(runs.tolist())

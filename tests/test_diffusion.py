"""Imputation diffusion: schedule, masks, denoiser, imputation loop, training, and detector specifics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_frame

from tsdiff import errors
from tsdiff.diffusion import ImDiffusionDetector
from tsdiff.diffusion.denoiser import Denoiser
from tsdiff.diffusion.imputation import DiffusionProcess, imputation_errors, noise_draws, window_noise
from tsdiff.diffusion.masks import GRATING, GratingMask, grating_pattern, grating_targets, training_targets
from tsdiff.diffusion.schedule import NoiseSchedule
from tsdiff.diffusion.training import TrainingConfig, ValidationSet, WindowSource, train_denoiser
from tsdiff.registry import TINY_DIFFUSION


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
    targets, strategy = training_targets(present, 0.7, 1.0, 4, torch.Generator().manual_seed(0), "checker")
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
    targets, strategy = training_targets(present, 0.7, 0.5, 4, gen)
    assert not (targets & ~present).any()
    share_grating = (strategy == GRATING).float().mean().item()
    assert 0.4 < share_grating < 0.6
    random_rows = strategy != GRATING
    ratio = targets[random_rows].sum() / present[random_rows].sum()
    assert 0.65 < ratio.item() < 0.75
    grating_rows = targets[strategy == GRATING]
    # a grating row hides whole time steps: every present entry of a hidden step is a target
    hidden_steps = grating_rows.any(dim=1)
    assert hidden_steps.float().mean().item() == pytest.approx(0.5, abs=0.05)


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


# ----------------------------------------------------------------- imputation
@pytest.mark.parametrize("mode", ["chain", "single"])
@pytest.mark.parametrize("conditioning", ["unconditional", "conditional"])
def test_every_present_entry_gets_one_error(mode, conditioning):
    torch.manual_seed(0)
    model = Denoiser(n_metrics=3, n_steps=20, channels=8, layers=1, heads=1, patch=2).eval()
    process = DiffusionProcess(NoiseSchedule(20), torch.device("cpu"), clip=10.0)
    x0 = torch.randn(4, 3, 16)
    present = torch.rand(4, 3, 16) > 0.2
    visit = NoiseSchedule(20).ddim_steps(5)
    record = visit[-3:] if mode == "chain" else visit[:3]
    noise = window_noise(
        1, range(4), (2, noise_draws(mode, len(visit), len(record)), 3, 16), torch.device("cpu")
    )
    err = imputation_errors(
        model, process, x0, present, GratingMask(16, 4), visit, record, noise, mode, conditioning
    )
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
    visit = NoiseSchedule(10).ddim_steps(2)
    noise = window_noise(0, [0], (2, noise_draws("chain", 2, 1), 1, 8), torch.device("cpu"))
    err = imputation_errors(
        model, process, x0, present, GratingMask(8, 2), visit, visit[-1:], noise, truth=truth
    )
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


# ----------------------------------------------------------------- training
def test_training_lowers_the_validation_error():
    torch.manual_seed(0)
    t = torch.arange(2000, dtype=torch.float32)
    series = torch.stack([torch.sin(t / 8), torch.cos(t / 8), torch.sin(t / 8 + 1)])  # (K, n)
    present = torch.ones_like(series, dtype=torch.bool)
    process = DiffusionProcess(NoiseSchedule(20), torch.device("cpu"), clip=10.0)
    config = TrainingConfig(
        window=16,
        batch_size=16,
        learning_rate=3e-3,
        max_steps=150,
        max_seconds=600,
        eval_every=50,
        patience=10,
        mask_ratio=0.7,
        grating_fraction=0.5,
        grating_segments=4,
        conditioning="unconditional",
    )
    gen = torch.Generator().manual_seed(0)
    model = Denoiser(3, 20, channels=16, layers=1, heads=2, patch=2)
    val = ValidationSet(
        WindowSource(series[:, 1500:], present[:, 1500:], 16), process, [2, 5, 8], 4, "unconditional", 32, gen
    )
    before = val.error(model.eval(), 32)
    history = train_denoiser(
        model, process, WindowSource(series[:, :1500], present[:, :1500], 16), val, config, gen
    )
    assert history.steps == 150 and history.stopped_because == "max_steps"
    assert history.best_val_error < 0.7 * before
    assert val.error(model, 32) == pytest.approx(history.best_val_error)


# ----------------------------------------------------------------- detector
@pytest.fixture(scope="module")
def fitted():
    train = make_frame(400, 4, seed=0)
    return ImDiffusionDetector(random_state=0, **TINY_DIFFUSION).fit(train)


def test_vote_threshold_is_one_and_labels_are_votes(fitted):
    test = make_frame(200, 4, seed=1)
    test.iloc[100:110, 1] += 10.0
    result = fitted.detect(test)
    assert result.threshold == 1.0 and result.threshold_method.startswith("vote: at least 2 of 3")
    values = fitted.scaler_.transform(test.to_numpy())
    steps, _ = fitted._reduce(fitted._entry_errors(values))
    votes = (steps / fitted.step_thresholds_ > 1).sum(axis=1)
    np.testing.assert_array_equal(result.labels.to_numpy(), (votes >= 2).astype(int))
    assert result.labels.iloc[100:110].any()


def test_mean_combination_fits_one_threshold():
    det = ImDiffusionDetector(random_state=0, combine="mean", **TINY_DIFFUSION).fit(make_frame(400, 4))
    # one POT threshold on the combined score (quantile when too few held-out rows for a tail fit)
    assert det.threshold_model_ is not None and det.threshold_method_ in ("pot", "quantile")
    assert det.threshold_ == det.threshold_model_.threshold_


def test_noise_prediction_variant_trains_and_scores():
    frame = make_frame(300, 4)
    det = ImDiffusionDetector(**TINY_DIFFUSION, prediction="eps", random_state=0).fit(frame)
    assert np.isfinite(det.score(frame)).all()


def test_fast_single_step_mode_runs_and_differs(fitted):
    test = make_frame(200, 4, seed=1)
    fast = ImDiffusionDetector(random_state=0, scoring="single", **{**TINY_DIFFUSION, "ensemble_steps": 2})
    fast.fit(make_frame(400, 4, seed=0))
    record = fast._steps()[1]
    assert len(record) == 2 and 0 not in record  # one-step errors at step 0 would carry no information
    assert not np.allclose(fast.score(test), fitted.score(test))


def test_missing_cells_never_count(fitted):
    test = make_frame(200, 4, seed=1)
    test.iloc[50:70, 2] = np.nan
    test.iloc[150] = np.nan  # a row with nothing at all
    result = fitted.detect(test)
    assert np.isfinite(result.scores).all()
    assert (result.feature_scores.iloc[50:70]["m2"] < result.feature_scores["m2"].max() + 1).all()
    assert np.isfinite(result.feature_scores.to_numpy()).all()


def test_history_and_step_cap(fitted):
    h = fitted.history_
    assert h.steps <= TINY_DIFFUSION["max_steps"] and h.val_steps and h.best_step in h.val_steps


def test_checker_layout_detector_scores_every_row():
    frame = make_frame(300, 4)
    det = ImDiffusionDetector(**TINY_DIFFUSION, grating_layout="checker", random_state=0).fit(frame)
    scores = det.score(frame)
    assert scores.index.equals(frame.index) and np.isfinite(scores).all()


def test_epoch_cap_binds_on_short_training_data():
    det = ImDiffusionDetector(**{**TINY_DIFFUSION, "max_steps": 10_000}, max_epochs=1.0)
    assert det._train_steps(400) == int(np.ceil((400 - 16 + 1) / 16))


def test_too_short_for_train_and_validation_parts():
    # 16-row windows and a 20 % validation part need 80 rows
    with pytest.raises(errors.TooFewRowsError, match="at least 80"):
        ImDiffusionDetector(**TINY_DIFFUSION).fit(make_frame(40, 4))


@pytest.mark.parametrize(
    "bad",
    [
        {"window": 15},  # not a multiple of patch 2
        {"scoring": "fast"},
        {"conditioning": "both"},
        {"grating_layout": "diagonal"},
        {"prediction": "v"},
        {"ensemble_steps": 9},  # more than reverse_steps
        {"channels": 9, "heads": 2},  # not a multiple of heads
        {"vote_fraction": 0.0},
        {"device": "tpu"},
    ],
)
def test_bad_parameters_are_named(bad):
    with pytest.raises(errors.ParameterError):
        ImDiffusionDetector(**{**TINY_DIFFUSION, **bad}).fit(make_frame(400, 4))


def test_saved_model_keeps_weights_thresholds_and_history(fitted, tmp_path):
    import tsdiff

    fitted.save(tmp_path / "m")
    back = tsdiff.load(tmp_path / "m")
    np.testing.assert_array_equal(back.step_thresholds_, fitted.step_thresholds_)
    assert back.history_.best_step == fitted.history_.best_step
    test = make_frame(120, 4, seed=5)
    pd.testing.assert_series_equal(back.score(test), fitted.score(test))


def test_a_model_saved_before_a_parameter_existed_keeps_its_old_behaviour(fitted, tmp_path):
    import json

    import tsdiff

    fitted.save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["params"]["prediction"] == "x0"
    del config["params"]["prediction"], config["params"]["grating_layout"]
    config_path.write_text(json.dumps(config))
    back = tsdiff.load(tmp_path / "m")
    assert back.prediction == "eps" and back.grating_layout == "time"

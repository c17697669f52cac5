"""ImDiffusionDetector: votes, scoring modes, missing data, parameters and saved models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsdiff import errors
from tsdiff.diffusion import ImDiffusionDetector
from tsdiff.diffusion.voting import reduce_errors
from tsdiff.registry import TINY_DIFFUSION

from tests.helpers import make_frame


# ----------------------------------------------------------------- detector
@pytest.fixture(scope="module")
def fitted():
    train = make_frame(400, 4, seed=0)
    return ImDiffusionDetector(random_state=0, **TINY_DIFFUSION).fit(train)


@pytest.mark.parametrize(
    "record, conditioning, voters",
    [("last", "unconditional", 3), ("informative", "unconditional", 1), ("informative", "conditional", 3)],
)
def test_vote_threshold_is_one_and_labels_are_votes(record, conditioning, voters):
    det = ImDiffusionDetector(random_state=0, record=record, conditioning=conditioning, **TINY_DIFFUSION)
    det.fit(make_frame(400, 4, seed=0))
    test = make_frame(200, 4, seed=1)
    test.iloc[100:110, 1] += 10.0
    result = det.detect(test)
    needed = det.config_.votes_needed()
    # tiny chain: t = 49, 24, 0; with a noised context only t = 0 is informative, with a clean one all
    assert det.config_.n_voters() == voters
    assert result.threshold == 1.0
    assert result.threshold_method.startswith(f"vote: at least {needed} of {voters}")
    entry = det.imputation_errors(test)
    steps, _ = reduce_errors(entry, scales=det.metric_scales_, **det.config_.reduction())
    votes = (steps / det.step_thresholds_ > 1).sum(axis=1)
    np.testing.assert_array_equal(result.labels.to_numpy(), (votes >= needed).astype(int))
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
    fast = ImDiffusionDetector(
        random_state=0, scoring="single", record="last", **{**TINY_DIFFUSION, "ensemble_steps": 2}
    )
    fast.fit(make_frame(400, 4, seed=0))
    record = fast.config_.steps()[1]
    assert len(record) == 2 and 0 not in record  # one-step errors at step 0 would carry no information
    assert not np.allclose(fast.score(test), fitted.score(test))


def test_density_mode_is_the_elbo_weighted_sum_of_the_single_pass_errors(fitted):
    from tsdiff.diffusion.config import DiffusionConfig

    test = make_frame(200, 4, seed=1)
    test.iloc[50:60, 2] = np.nan
    errors_by_mode = {}
    for mode in ("single", "density"):  # two scoring modes of the same trained model
        det = ImDiffusionDetector(**fitted.get_params())
        det.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
        det.set_params(scoring=mode, ensemble_steps=2, record="last")
        det.config_ = DiffusionConfig.from_params(det.get_params(deep=False))
        errors_by_mode[mode] = det.imputation_errors(test)
    single, density = errors_by_mode["single"], errors_by_mode["density"]
    assert single.shape == (200, 2, 4) and density.shape == (200, 1, 4)
    weights = det.config_.noise_schedule().elbo_weights(det.config_.steps()[1])
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
    expected = (single.astype(np.float64) ** 2 * weights[None, :, None]).sum(axis=1)
    np.testing.assert_allclose(density[:, 0], expected, rtol=1e-5)
    assert np.isnan(density[50:60, 0, 2]).all() and not np.isnan(density[:50]).any()
    assert det.config_.n_voters() == 1


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


def test_streaming_preset_scores_by_the_tail_mask_and_takes_overrides():
    from tsdiff import HybridDetector

    det = ImDiffusionDetector.streaming(window=32)
    assert (det.score_masks, det.tail, det.window) == ("tail", 4, 32)
    hybrid = HybridDetector.streaming(verbose=False)
    assert hybrid.diffusion.score_masks == "tail" and hybrid.verbose is False


def test_tail_and_multiscale_models_save_and_load(tmp_path):
    from tsdiff import load
    from tsdiff.registry import STREAMING_DIFFUSION

    X = make_frame(300, 3, seed=0)
    for i, extra in enumerate([STREAMING_DIFFUSION, {"grating_segments": [2, 4], "tail": 4}]):
        det = ImDiffusionDetector(random_state=0, **{**TINY_DIFFUSION, **extra}).fit(X.iloc[:220])
        det.save(tmp_path / str(i))
        again = load(tmp_path / str(i))
        assert again.model_.strategy_emb.num_embeddings == 3
        np.testing.assert_allclose(again.score(X.iloc[220:]), det.score(X.iloc[220:]))


def test_normalised_blend_lets_one_broken_metric_of_many_stand_out():
    from tsdiff.diffusion.voting import metric_scales

    rng = np.random.default_rng(0)
    held_out = np.abs(rng.normal(size=(400, 1, 20))) * np.linspace(0.2, 5.0, 20)  # noisy metrics weigh more
    scales = metric_scales(held_out)
    test = np.abs(rng.normal(size=(200, 1, 20))) * np.linspace(0.2, 5.0, 20)
    test[100:110, 0, 0] += 3.0  # the quietest metric breaks for 10 rows
    plain, _ = reduce_errors(test, 8)
    tuned, _ = reduce_errors(test, 8, scales=scales, power=1.0, metrics="blend-top3")

    def contrast(rows):
        return rows[100:110, 0].mean() / np.median(rows[:, 0])

    assert contrast(tuned) > 2.0 * contrast(plain)
    with pytest.raises(errors.ParameterError, match="metrics"):
        reduce_errors(test, 8, metrics="max")

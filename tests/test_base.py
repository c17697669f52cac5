"""What the base class does for every detector: the hold-out, its calibration scores, the helpers
windowed detectors share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tsdiff
from tsdiff.frame import mean_over_present
from tsdiff.registry import build
from tsdiff.torch_runtime import network_input, window_batch

from tests.helpers import make_frame


def test_one_split_rule_for_every_detector():
    causal = tsdiff.CausalDetector(max_lag=2, validation_fraction=0.2)
    assert causal.holdout_start(1000) == 800
    assert causal.holdout_start(50) == 50 - 12  # at least max_lag + 10 rows held out
    assert tsdiff.CausalDetector(max_lag=2, validation_fraction=0.9).holdout_start(100) == 30  # keeps 30
    assert tsdiff.PCADetector().holdout_start(1000) == 1000  # no validation_fraction: nothing held out


@pytest.mark.parametrize("name", ["causal", "imdiffusion", "pca"])
def test_calibration_scores_are_the_held_out_rows_and_are_saved(name, tmp_path):
    train = make_frame(400, 4)
    det = build(name, "tiny", random_state=0).fit(train)
    held = 400 - det.n_train_rows_
    assert len(det.calibration_scores_) == (held or 400)
    assert np.isfinite(det.calibration_scores_).all()
    det.save(tmp_path / "m")
    np.testing.assert_array_equal(tsdiff.load(tmp_path / "m").calibration_scores_, det.calibration_scores_)


def test_default_calibration_scores_held_out_rows_with_the_context_they_need():
    det = build("kmeans", "tiny", random_state=0)
    det.validation_fraction = 0.25  # the base class holds out for any detector that takes it
    train = make_frame(400, 4)
    det.fit(train)
    assert det.n_train_rows_ == 300 and len(det.calibration_scores_) == 100
    reach = det.stream_geometry().history
    tail = det.score(train.iloc[300 - reach :]).to_numpy()[reach:]
    np.testing.assert_allclose(det.calibration_scores_, tail)


def test_bad_validation_fraction_is_named():
    with pytest.raises(tsdiff.errors.ParameterError, match="validation_fraction"):
        tsdiff.CausalDetector(validation_fraction=1.0).fit(make_frame(200, 3))


def test_network_input_fills_clips_and_marks_missing_cells():
    values = np.array([[1.0, np.nan], [50.0, 2.0], [np.nan, -50.0]])
    x, present = network_input(values, clip=10.0)
    assert x.dtype == torch.float32 and present.tolist() == [[True, False], [True, True], [False, True]]
    assert x.tolist() == [[1.0, 0.0], [10.0, 2.0], [0.0, -10.0]]
    carried, _ = network_input(values, clip=None, fill="carry")
    assert carried.tolist() == [[1.0, 0.0], [50.0, 2.0], [50.0, -50.0]]


def test_window_batch_cuts_windows_as_metrics_by_time():
    x = torch.arange(12.0).reshape(6, 2)  # rows 0..5, two metrics
    batch = window_batch(x, np.array([0, 3]), 3)
    assert batch.shape == (2, 2, 3)
    assert batch[1].tolist() == [[6.0, 8.0, 10.0], [7.0, 9.0, 11.0]]


def test_mean_over_present_ignores_missing_and_gives_zero_without_evidence():
    values = np.array([[1.0, 3.0], [np.nan, 4.0], [np.nan, np.nan]])
    np.testing.assert_array_equal(mean_over_present(values, axis=1), [2.0, 4.0, 0.0])


def test_a_drift_warning_says_when_the_threshold_is_no_fitted_tail():
    import warnings

    from tsdiff import PCADetector
    from tsdiff.errors import DriftWarning

    rng = np.random.default_rng(0)
    det = PCADetector().fit(rng.normal(size=(60, 3)))  # 60 calibration scores: no tail to fit
    assert det.threshold_method_ == "quantile"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det.detect(rng.normal(size=(200, 3)) * 3.0)
    message = str(next(w.message for w in caught if issubclass(w.category, DriftWarning)))
    assert "only the top of 60 calibration scores: too few for a pot tail fit" in message

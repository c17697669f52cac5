"""Behaviour specific to each baseline detector (the shared contract is in test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from tsdiff import errors
from tsdiff.baselines import IsolationForestDetector, KMeansDetector, PCADetector, RandomDetector
from tsdiff.baselines.iforest import average_path_length
from tsdiff.frame import RobustScaler

from tests.helpers import make_frame


def test_flattened_forest_scores_exactly_like_scikit_learn():
    train, test = make_frame(500, 5, seed=0), make_frame(300, 5, seed=1)
    det = IsolationForestDetector(n_estimators=30, max_samples=128, random_state=4).fit(train)
    ref = IsolationForest(n_estimators=30, max_samples=128, random_state=4)
    scaler = RobustScaler().fit(train.to_numpy())
    ref.fit(scaler.transform(train.to_numpy()))
    expected = -ref.score_samples(scaler.transform(test.to_numpy()))
    np.testing.assert_allclose(det.score(test).to_numpy(), expected, rtol=1e-12)


def test_average_path_length_known_values():
    np.testing.assert_allclose(average_path_length(np.array([1, 2])), [0.0, 1.0])
    # c(256) from the isolation-forest paper is about 10.24
    assert average_path_length(np.array([256]))[0] == pytest.approx(10.24, abs=0.01)


def test_a_forest_needs_two_rows_to_fit():
    # a tree of one point measures no path (its scores would be 0/0); a saved one is refused too
    # (test_persist's crafted models)
    with pytest.raises(errors.TooFewRowsError, match="2"):
        IsolationForestDetector(random_state=0).fit(make_frame(1, 3))
    det = IsolationForestDetector(n_estimators=5, random_state=0).fit(make_frame(2, 3))
    assert np.isfinite(det.score(make_frame(4, 3, seed=1))).all()


def test_pca_keeps_components_for_the_variance_asked():
    train = make_frame(400, 6, seed=0)
    det = PCADetector(n_components=0.99).fit(train)
    assert det.explained_variance_ratio_.sum() >= 0.99
    assert PCADetector(n_components=3).fit(train).components_.shape == (3, 6)
    with pytest.raises(errors.ParameterError):
        PCADetector(n_components=7).fit(train)
    with pytest.raises(errors.ParameterError):
        PCADetector(n_components=1.5).fit(train)


@pytest.mark.parametrize("n_metrics", [1, 3])
def test_pca_on_uncorrelated_metrics_keeps_a_residual(n_metrics):
    # 90% of the variance of uncorrelated metrics needs every direction: none would remain to score
    rng = np.random.default_rng(0)
    train = rng.standard_normal((500, n_metrics))
    det = PCADetector().fit(train)
    assert det.components_.shape[0] == n_metrics - 1
    test = train[:50].copy()
    test[20, 0] = 100.0  # 100 standard deviations
    scores = det.score(test)
    assert scores.idxmax() == 20 and scores[20] > 10 * det.threshold_
    with pytest.warns(UserWarning, match="no residual remains"):
        PCADetector(n_components=n_metrics).fit(train)


def test_pca_residual_is_zero_on_the_subspace():
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((300, 2))
    x = latent @ rng.standard_normal((2, 5))
    det = PCADetector(n_components=2).fit(x)
    assert det.score(x).max() < 1e-18
    broken = x.copy()
    broken[10, 3] += 5.0
    assert det.score(broken).idxmax() == 10


def test_kmeans_window_and_training_cap():
    train = make_frame(400, 3, seed=0)
    det = KMeansDetector(window=20, n_clusters=5, max_train_windows=50, random_state=0).fit(train)
    assert det.centers_.shape == (5, 20, 3)
    with pytest.raises(errors.TooFewRowsError):
        det.score(train.iloc[:19])
    assert len(det.score(train.iloc[:20])) == 20


def test_random_detector_is_uninformative_but_reproducible():
    x = make_frame(2000, 3, seed=0)
    a = RandomDetector(random_state=1).fit(x).score(x)
    b = RandomDetector(random_state=2).fit(x).score(x)
    assert not np.allclose(a, b)
    assert abs(np.corrcoef(a, x["m0"])[0, 1]) < 0.1

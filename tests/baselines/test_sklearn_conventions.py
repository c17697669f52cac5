"""scikit-learn's own estimator checks on the detectors without torch.

A windowed detector's score depends on the rows around it, so scikit-learn's two checks that a
row's score does not change when rows are reordered or scored alone fail by nature; every other
check passes. The checks fit on 10-40 rows, so windowed detectors run with a short window.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.estimator_checks import check_estimator

from tsdiff import IsolationForestDetector, KMeansDetector, PCADetector, WindowPCADetector
from tsdiff.errors import NotFittedError

ORDER_MATTERS = {
    "check_methods_sample_order_invariance": "a window's score depends on the rows before it",
    "check_methods_subset_invariance": "a window's score depends on the rows before it",
}


@pytest.mark.parametrize(
    ("detector", "expected_failures"),
    [
        (PCADetector(), {}),
        (IsolationForestDetector(n_estimators=20), {}),
        (KMeansDetector(window=4), ORDER_MATTERS),
        (WindowPCADetector(window=4), ORDER_MATTERS),
    ],
    ids=lambda x: type(x).__name__ if not isinstance(x, dict) else "",
)
def test_scikit_learn_estimator_checks(detector, expected_failures):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(detector, on_fail=None, expected_failed_checks=expected_failures)
    failed = {r["check_name"]: str(r["exception"])[:200] for r in results if r["status"] == "failed"}
    assert failed == {}
    assert len(results) >= 40


def test_anomaly_library_names_after_fit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    det = PCADetector()
    with pytest.raises(SklearnNotFittedError) as caught:
        det.decision_function(X)
    assert isinstance(caught.value, NotFittedError)  # tsdiff's own, too
    labels = det.fit_predict(X)
    assert labels.tolist() == det.predict(X).tolist()
    np.testing.assert_array_equal(det.decision_function(X), det.score(X).to_numpy())
    np.testing.assert_array_equal(det.score_samples(X), det.decision_function(X))
    assert det.score(X, y=np.zeros(200)).equals(det.score(X))  # y is ignored, as in a pipeline
    np.testing.assert_array_equal(det.decision_scores_, det.calibration_scores_)
    assert det.labels_.tolist() == (det.calibration_scores_ > det.threshold_).astype(int).tolist()

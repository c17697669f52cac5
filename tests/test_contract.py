"""The detector contract: one suite that every tsdiff detector passes (see tests/detectors.py)."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import tsdiff
from tsdiff import errors
from tsdiff.results import EVENT_COLUMNS, DetectionResult

from tests.detectors import DETECTORS, INFORMATIVE
from tests.helpers import make_frame

ALL = sorted(DETECTORS)


def fitted(name: str, train: pd.DataFrame, **kw):
    return DETECTORS[name](random_state=0, **kw).fit(train)


@pytest.mark.parametrize("name", ALL)
def test_index_kept_and_one_score_per_row(name, train_frame, test_frame):
    det = fitted(name, train_frame)
    scores = det.score(test_frame)
    assert isinstance(scores, pd.Series)
    assert scores.index.equals(test_frame.index)
    assert scores.shape == (len(test_frame),)
    assert np.isfinite(scores.to_numpy()).all()
    labels = det.predict(test_frame)
    assert labels.index.equals(test_frame.index)
    assert set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels.to_numpy(), (scores > det.threshold_).to_numpy().astype(int))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("index", ["int", "range"])
def test_other_indexes_kept(name, index):
    train = make_frame(300, 3, seed=0, index=index)
    test = make_frame(150, 3, seed=1, index=index)
    scores = fitted(name, train).score(test)
    assert scores.index.equals(test.index)


@pytest.mark.parametrize("name", ALL)
def test_numpy_input(name, train_frame, test_frame):
    det = fitted(name, train_frame.to_numpy())
    scores = det.score(test_frame.to_numpy())
    assert isinstance(scores.index, pd.RangeIndex) and len(scores) == len(test_frame)
    result = det.detect(test_frame.to_numpy())
    assert list(result.feature_scores.columns) == list(range(train_frame.shape[1]))


@pytest.mark.parametrize("name", ALL)
def test_huge_finite_values_never_poison_scores(name, train_frame, test_frame):
    train = train_frame.copy()
    train["flat"] = 1.0  # a tiny training spread turns a big value into a huge scaled one
    train.iloc[7, 1] = 1e99  # the largest magnitudes accepted, in training too
    det = fitted(name, train)
    test = test_frame.copy()
    test["flat"] = 1.0
    test.iloc[40, 0], test.iloc[41, 1], test.iloc[60:70, 4] = -1e99, 1e99, 1e99
    scores = det.score(test)
    assert np.isfinite(scores.to_numpy()).all()
    assert np.isfinite(det.detect(test).feature_scores.to_numpy()).all()
    for frame in (test, train):
        frame = frame.copy()
        frame.iloc[3, 2] = 1e200
        with pytest.raises(errors.ExtremeValueError, match="1e\\+200 at row") as info:
            det.score(frame) if frame is not train else DETECTORS[name](random_state=0).fit(frame)
        assert info.value.column == frame.columns[2] and info.value.row == frame.index[3]


@pytest.mark.parametrize("name", ALL)
def test_nan_input_accepted(name, train_frame, test_frame):
    train = train_frame.copy()
    test = test_frame.copy()
    rng = np.random.default_rng(0)
    for df in (train, test):
        holes = rng.random(df.shape) < 0.05
        df[:] = np.where(holes, np.nan, df.to_numpy())
    train.iloc[:5, 0] = np.nan  # a column that starts missing
    det = fitted(name, train)
    scores = det.score(test)
    assert np.isfinite(scores.to_numpy()).all()
    result = det.detect(test)
    assert np.isfinite(result.feature_scores.to_numpy()).all()


@pytest.mark.parametrize("name", ALL)
def test_detect_result(name, train_frame, test_frame):
    det = fitted(name, train_frame)
    result = det.detect(test_frame)
    assert isinstance(result, DetectionResult)
    assert result.scores.index.equals(test_frame.index)
    pd.testing.assert_series_equal(result.scores, det.score(test_frame))
    assert result.feature_scores.shape == test_frame.shape
    assert list(result.feature_scores.columns) == list(test_frame.columns)
    assert result.threshold == det.threshold_
    assert result.threshold_method
    assert list(result.events.columns) == EVENT_COLUMNS
    # events: flagged runs merged across short gaps, short ones dropped
    assert int(result.events["n_flagged"].sum()) <= int(result.labels.sum())
    for _, ev in result.events.iterrows():
        span = result.labels.loc[ev["start"] : ev["end"]]
        assert span.iloc[0] == 1 and span.iloc[-1] == 1 and len(span) == ev["n_rows"] >= 3
        assert int(span.sum()) == ev["n_flagged"]
        assert set(ev["top_metrics"]) <= set(test_frame.columns)
    raw = det.detect(test_frame, merge_gap=0, min_rows=1).events
    assert int(raw["n_rows"].sum()) == int(raw["n_flagged"].sum()) == int(result.labels.sum())
    assert (result.explanations is not None) == det.names_root_causes()
    frame = result.to_frame()
    assert frame.index.equals(test_frame.index)
    assert {"score", "label", "score:m0"} <= set(frame.columns)


@pytest.mark.parametrize("name", INFORMATIVE)
def test_obvious_anomaly_scores_high(name, train_frame, test_frame):
    scores = fitted(name, train_frame).score(test_frame)
    inside = scores.iloc[120:126].max()
    assert inside > scores.iloc[:100].quantile(0.99)


@pytest.mark.parametrize("name", INFORMATIVE)
def test_feature_scores_point_at_the_broken_metric(name, train_frame, test_frame):
    result = fitted(name, train_frame).detect(test_frame)
    blame = result.feature_scores.iloc[120:126].mean()
    assert blame.idxmax() == "m2"


def plain_params(det):
    """Deep parameters, with nested estimators replaced by their class and own parameters (also
    inside lists, such as a fusion's components; tuples as lists, as JSON keeps them)."""

    def plain(v):
        if hasattr(v, "get_params"):
            return type(v).__name__, plain_params(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return {k: plain(v) for k, v in det.get_params(deep=False).items()}


@pytest.mark.parametrize("name", ALL)
def test_get_params_and_clone(name):
    det = DETECTORS[name](random_state=3)
    params = det.get_params(deep=False)
    signature = inspect.signature(type(det).__init__).parameters
    assert set(params) == set(signature) - {"self"}
    assert {"threshold", "risk", "random_state"} <= set(params)
    twin = clone(det)
    assert plain_params(twin) == plain_params(det) and twin is not det
    twin.set_params(risk=0.01)
    assert twin.risk == 0.01 and det.risk != 0.01


@pytest.mark.parametrize("name", ALL)
def test_fit_does_not_touch_params_or_input(name, train_frame):
    det = DETECTORS[name](random_state=0)
    before = plain_params(det)
    copy = train_frame.copy()
    det.fit(train_frame)
    assert plain_params(det) == before
    pd.testing.assert_frame_equal(train_frame, copy)


@pytest.mark.parametrize("name", ALL)
def test_same_random_state_same_scores(name, train_frame, test_frame):
    a = fitted(name, train_frame).score(test_frame)
    b = fitted(name, train_frame).score(test_frame)
    pd.testing.assert_series_equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_scoring_does_not_change_the_model(name, train_frame, test_frame):
    det = fitted(name, train_frame)
    first = det.score(test_frame)
    det.score(make_frame(120, 4, seed=7))
    pd.testing.assert_series_equal(first, det.score(test_frame))


@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trip(name, train_frame, test_frame, tmp_path):
    det = fitted(name, train_frame)
    det.save(tmp_path / "model")
    back = tsdiff.load(tmp_path / "model")
    assert type(back) is type(det)
    assert plain_params(back) == plain_params(det)
    assert back.threshold_ == det.threshold_
    pd.testing.assert_series_equal(back.score(test_frame), det.score(test_frame))
    pd.testing.assert_frame_equal(
        back.detect(test_frame).feature_scores, det.detect(test_frame).feature_scores
    )


@pytest.mark.parametrize("name", ALL)
def test_reordered_columns_matched_by_name(name, train_frame, test_frame):
    det = fitted(name, train_frame)
    shuffled = test_frame[list(reversed(test_frame.columns))]
    pd.testing.assert_series_equal(det.score(shuffled), det.score(test_frame))


@pytest.mark.parametrize("name", ALL)
def test_not_fitted(name, test_frame):
    with pytest.raises(errors.NotFittedError):
        DETECTORS[name]().score(test_frame)


def _bad_inputs(test: pd.DataFrame):
    text = test.astype(object)
    text.iloc[7, 1] = "n/a"
    yield "non-numeric", text, errors.NonNumericColumnError, "m1"
    empty_col = test.copy()
    empty_col["m3"] = np.nan
    yield "all-nan", empty_col, errors.AllNaNColumnError, "m3"
    inf = test.copy()
    inf.iloc[5, 0] = np.inf
    yield "inf", inf, errors.InfiniteValueError, "m0"
    dup = test.copy()
    dup.index = dup.index.where(np.arange(len(dup)) != 10, dup.index[9])
    yield "duplicate-time", dup, errors.DuplicateTimestampError, None
    unsorted = test.iloc[[*range(50), 60, *range(50, 60), *range(61, len(test))]]
    yield "unsorted", unsorted, errors.UnsortedIndexError, None
    yield "missing-column", test.drop(columns="m1"), errors.ColumnMismatchError, "m1"
    yield "extra-column", test.assign(extra=1.0), errors.ColumnMismatchError, "extra"
    yield "too-few-rows", test.iloc[:1], errors.TooFewRowsError, None
    yield "3-d array", np.zeros((3, 4, 2)), errors.InputTypeError, None


@pytest.mark.parametrize("name", ALL)
def test_bad_scoring_input_raises_typed_errors(name, train_frame, test_frame):
    det = fitted(name, train_frame)
    for what, bad, error, column in _bad_inputs(test_frame):
        if what == "too-few-rows" and det.min_rows() <= 1:
            continue
        with pytest.raises(error) as info:
            det.score(bad)
        assert isinstance(info.value, errors.TsdiffError) and isinstance(info.value, ValueError), what
        if column is not None:
            assert info.value.column == column, what
            assert repr(column) in str(info.value), what


@pytest.mark.parametrize("name", ALL)
def test_bad_training_input_raises_typed_errors(name, train_frame):
    for what, bad, error, _ in _bad_inputs(train_frame):
        if what in ("missing-column", "extra-column"):
            continue
        if what == "too-few-rows" and DETECTORS[name]().min_rows() <= 1:
            continue
        with pytest.raises(error):
            DETECTORS[name]().fit(bad)
    # a series that appeared at the very end of the range (a new pod): named, nothing learnt
    late = train_frame.copy()
    late.iloc[:-3, 2] = np.nan
    with pytest.raises(errors.SparseColumnError, match="'m2'") as info:
        DETECTORS[name]().fit(late)
    assert info.value.column == "m2"


@pytest.mark.parametrize("name", ALL)
def test_bad_parameters(name, train_frame):
    with pytest.raises(errors.ParameterError):
        DETECTORS[name](threshold="best-f1").fit(train_frame)
    with pytest.raises(errors.ParameterError):
        DETECTORS[name](risk=1.5).fit(train_frame)


def _auc_pr(labels, scores):
    from tsdiff.metrics import auc_pr

    return auc_pr(np.asarray(labels), np.asarray(scores))


# ----------------------------------------------------------------- the fusion rule's contract
@pytest.mark.parametrize("power", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("good", ["causal", "pca"])
def test_a_random_component_cannot_drag_a_good_one_down(good, power):
    """The contract of every label-free fusion rule: fused with a random score, a good detector
    keeps its score; two equally good components fuse to no less than either."""
    from tsdiff.datasets import make_synthetic
    from tsdiff.fusion import FusionDetector
    from tsdiff.registry import build

    data = make_synthetic(n_metrics=5, n_rows=6000, random_state=4)
    alone = build(good, "tiny", random_state=0).fit(data.train)
    with_random = FusionDetector(
        [(good, build(good, "tiny"), 0.5), ("random", build("random"), 0.5)],
        weighting_power=power,
        random_state=0,
        verbose=False,
    ).fit(data.train)
    assert with_random.weights_["random"] < 0.05
    labels = data.labels.to_numpy()
    own = _auc_pr(labels, alone.score(data.test))
    assert _auc_pr(labels, with_random.score(data.test)) >= own - 0.02
    twins = FusionDetector(
        [("a", build(good, "tiny"), 0.5), ("b", build(good, "tiny"), 0.5)],
        weighting_power=power,
        random_state=0,
        verbose=False,
    ).fit(data.train)
    assert twins.weights_ == pytest.approx({"a": 0.5, "b": 0.5})
    assert _auc_pr(labels, twins.score(data.test)) >= own - 1e-9

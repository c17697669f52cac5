"""Tests of tsdiff.metrics: TSB-AD 1.5 reference values, hand-worked cases, quirks and validation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdiff.errors import InputError
from tsdiff.metrics import (
    METRIC_KEYS,
    affiliation_f,
    affiliation_precision_recall,
    auc_pr,
    auc_roc,
    best_f1_threshold,
    choose_sliding_window,
    evaluate,
    event_f1,
    point_adjusted_f1,
    range_f1,
    standard_f1,
    vus,
    vus_pr,
    vus_roc,
)

REFERENCE = json.loads((Path(__file__).parent / "data" / "tsbad_metrics_reference.json").read_text())
CASES = {case["name"]: case for case in REFERENCE["cases"]}
TOL = 1e-3


def _close(expected: float, got: float, tol: float = TOL) -> bool:
    if math.isnan(expected):
        return math.isnan(got)
    return abs(expected - got) <= tol


# ------------------------------------------------------------------------------ TSB-AD reference
@pytest.mark.parametrize("name", sorted(CASES))
def test_evaluate_matches_tsbad_reference(name: str) -> None:
    case = CASES[name]
    got = evaluate(case["labels"], case["score"], case["sliding_window"], pred=case.get("pred"))
    assert set(got) == {*METRIC_KEYS, "F1-threshold"}
    assert got["F1-threshold"] == ("given" if "pred" in case else "oracle")
    wrong = {k: (v, got[k]) for k, v in case["expected"].items() if not _close(v, got[k])}
    assert not wrong, f"{name}: expected vs got {wrong}"
    assert set(case["expected"]) == set(METRIC_KEYS)


@pytest.mark.parametrize("name", ["random_score", "with_threshold_pred", "constant_score"])
def test_single_metric_functions_match_reference(name: str) -> None:
    case = CASES[name]
    y, s, w, p = case["labels"], case["score"], case["sliding_window"], case.get("pred")
    exp = case["expected"]
    got = {
        "AUC-PR": auc_pr(y, s),
        "AUC-ROC": auc_roc(y, s),
        "VUS-PR": vus_pr(y, s, w),
        "VUS-ROC": vus_roc(y, s, w),
        "Standard-F1": standard_f1(y, s, pred=p),
        "PA-F1": point_adjusted_f1(y, s, pred=p),
        "Event-based-F1": event_f1(y, s, pred=p),
        "R-based-F1": range_f1(y, s, pred=p),
        "Affiliation-F": affiliation_f(y, s, pred=p),
    }
    wrong = {k: (exp[k], v) for k, v in got.items() if not _close(exp[k], v)}
    assert not wrong
    assert vus(y, s, w) == (got["VUS-ROC"], got["VUS-PR"])


# ------------------------------------------------------------------------------ hand-worked cases
def test_perfect_scores() -> None:
    y = np.zeros(200, dtype=int)
    y[50:60] = 1
    y[120:125] = 1
    s = y + 0.01 * np.arange(200) / 200  # anomalies strictly above every normal point
    assert auc_roc(y, s) == 1.0
    assert auc_pr(y, s) == 1.0
    res = evaluate(y, s, sliding_window=10)
    assert res["AUC-ROC"] == 1.0 and res["AUC-PR"] == 1.0
    for key in ("Standard-F1", "PA-F1", "Event-based-F1", "R-based-F1", "Affiliation-F"):
        assert res[key] == pytest.approx(1.0, abs=1e-4), key


def test_inverted_scores_give_auc_zero() -> None:
    y = np.array([0, 0, 1, 1, 0, 0])
    assert auc_roc(y, -y.astype(float)) == 0.0


def test_auc_against_sklearn() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.1).astype(int)
    s = np.round(rng.random(500) + 0.5 * y, 2)  # with ties
    assert auc_roc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auc_pr(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_given_predictions_by_hand() -> None:
    y = [0, 1, 1, 1, 0, 0, 1, 1, 0, 0]
    p = [0, 0, 1, 0, 0, 1, 0, 0, 0, 0]
    # point-wise: TP 1, FP 1, FN 4
    assert standard_f1(y, pred=p) == pytest.approx(2 / 7)
    # adjusted: first segment (3 points) is hit, second (2) missed, one false alarm -> 2*3/(6+1+2)
    assert point_adjusted_f1(y, pred=p) == pytest.approx(6 / 9)
    # events: 1 of 2 detected, point precision 1/2
    assert event_f1(y, pred=p) == pytest.approx(0.5)
    res = evaluate(y, np.linspace(0, 1, 10), sliding_window=2, pred=p)
    assert res["F1-threshold"] == "given"
    assert res["PA-F1"] == pytest.approx(6 / 9)


def test_range_f1_by_hand() -> None:
    y = [0, 1, 1, 1, 1, 0, 0, 0]
    p = [0, 0, 1, 1, 0, 0, 0, 0]
    # recall: existence 1, overlap 2/4, cardinality 1 -> 0.2 + 0.8 * 0.5 = 0.6; precision 1
    assert range_f1(y, pred=p) == pytest.approx(2 * 0.6 / 1.6)
    # two predicted ranges on one anomaly: cardinality 1/2 halves the overlap reward
    p2 = [0, 1, 0, 1, 0, 0, 0, 0]
    recall = 0.2 + 0.8 * (2 / 4) * 0.5
    assert range_f1(y, pred=p2) == pytest.approx(2 * recall / (recall + 1))


def test_affiliation_by_hand() -> None:
    # event [4, 6) in the zone [0, 10]; prediction [8, 9).
    # precision: integral over d in [2, 3] of 1 - (2d + 2)/10 = 0.3
    # recall: integral over t in [4, 6] of 1 - 2(8 - t)/10, divided by |J| = 2 -> 0.4
    y = [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    p = [0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    precision, recall = affiliation_precision_recall(y, p)
    assert precision == pytest.approx(0.3)
    assert recall == pytest.approx(0.4)
    assert affiliation_f(y, pred=p) == pytest.approx(2 * 0.3 * 0.4 / 0.7)
    assert affiliation_f(y, pred=y) == pytest.approx(1.0)
    assert math.isnan(affiliation_f(y, pred=[0] * 10))  # nothing predicted: precision undefined


def test_vus_without_buffer_equals_auc() -> None:
    # window 0: no label extension; with n <= 250 every position is a threshold, so a single anomaly
    # segment gives back the plain ROC and PR areas
    rng = np.random.default_rng(0)
    y = np.zeros(120, dtype=int)
    y[40:55] = 1
    s = rng.random(120) + 0.4 * y
    roc, pr = vus(y, s, sliding_window=0)
    assert roc == pytest.approx(auc_roc(y, s), abs=1e-12)
    assert pr == pytest.approx(auc_pr(y, s), abs=1e-12)


def test_vus_rewards_near_misses() -> None:
    y = np.zeros(300, dtype=int)
    y[100:110] = 1
    near = np.zeros(300)
    near[112:116] = 1.0  # just after the anomaly
    far = np.zeros(300)
    far[250:254] = 1.0
    assert vus_pr(y, near, 20) > vus_pr(y, far, 20)
    assert auc_pr(y, near) == pytest.approx(auc_pr(y, far))


# ----------------------------------------------------------------------------- reproduced quirks
def test_point_adjust_never_fills_index_zero() -> None:
    # TSB-AD back-fills with range(i, 0, -1): point 0 stays unpredicted -> TP 2, FN 1
    assert point_adjusted_f1([1, 1, 1, 0, 0], pred=[0, 1, 0, 0, 0]) == pytest.approx(4 / 5)


def test_event_at_last_point_is_never_detected() -> None:
    # TSB-AD's _get_events ends an event running to the end one point early
    assert event_f1([0, 0, 0, 1], pred=[0, 0, 0, 1]) == 0.0
    assert event_f1([0, 0, 1, 1], pred=[0, 0, 1, 1]) == pytest.approx(1.0)


def test_range_f1_all_ones_prediction_has_no_range() -> None:
    # range_convers_new finds no run in an all-ones vector: precision 0, cardinality 0
    y = [0, 1, 1, 0, 0]
    assert range_f1(y, pred=[1, 1, 1, 1, 1]) == 0.0
    # one point fewer and it is a range again: recall 1, precision 2/4
    assert range_f1(y, pred=[1, 1, 1, 1, 0]) == pytest.approx(2 * 0.5 / 1.5)


def test_constant_scores_give_nan_affiliation() -> None:
    # the first oracle threshold predicts nothing -> NaN, which Python's max() keeps
    assert math.isnan(affiliation_f([0, 1, 1, 0], [0.5] * 4))


def test_best_f1_threshold_is_consistent() -> None:
    case = CASES["informative_segments"]
    y, s = np.array(case["labels"]), np.array(case["score"])
    thr, value = best_f1_threshold(y, s, "point_adjusted")
    assert value == pytest.approx(case["expected"]["PA-F1"])
    assert point_adjusted_f1(y, pred=(s > thr).astype(int)) == pytest.approx(value)
    thr, value = best_f1_threshold(y, s, "range")
    assert range_f1(y, pred=(s > thr).astype(int)) == pytest.approx(value)
    thr, value = best_f1_threshold(y, s, "standard")
    assert value == pytest.approx(case["expected"]["Standard-F1"])
    assert standard_f1(y, pred=(s >= thr).astype(int)) == pytest.approx(value, abs=1e-4)
    with pytest.raises(ValueError, match="kind"):
        best_f1_threshold(y, s, "nope")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ edge cases
def test_no_anomaly_gives_nan_without_crash() -> None:
    y = np.zeros(50, dtype=int)
    s = np.random.default_rng(0).random(50)
    res = evaluate(y, s, sliding_window=5)
    assert all(math.isnan(res[k]) for k in METRIC_KEYS)
    assert res["F1-threshold"] == "oracle"
    for fn in (auc_roc, auc_pr, standard_f1, point_adjusted_f1, event_f1, range_f1, affiliation_f):
        assert math.isnan(fn(y, s))
    assert all(math.isnan(v) for v in vus(y, s, 5))


def test_tiny_and_all_anomalous_inputs_do_not_crash() -> None:
    res = evaluate([1], [0.3], sliding_window=3)
    assert math.isnan(res["AUC-ROC"]) and math.isnan(res["VUS-PR"])
    evaluate([0, 1], [0.1, 0.9], sliding_window=0)
    evaluate([1, 1, 1], [0.1, 0.5, 0.2], sliding_window=2, pred=[1, 0, 1])


def test_pandas_inputs() -> None:
    idx = pd.date_range("2024-01-01", periods=8, freq="min")
    y = pd.Series([0, 1, 1, 0, 0, 0, 1, 0], index=idx)
    s = pd.Series(np.linspace(0, 1, 8), index=idx)
    assert evaluate(y, s, 2) == evaluate(y.to_numpy(), s.to_numpy(), 2)
    assert auc_roc(y.astype(bool), s) == auc_roc(y, s)


# ------------------------------------------------------------------------------ validation
def test_length_mismatch() -> None:
    with pytest.raises(InputError, match="same length"):
        evaluate([0, 1, 0], [0.1, 0.2])
    with pytest.raises(InputError, match="same length"):
        standard_f1([0, 1, 0], [0.1, 0.2, 0.3], pred=[0, 1])


def test_non_binary_labels_report_the_row() -> None:
    y = pd.Series([0, 1, 2, 0], index=[10, 11, 12, 13])
    with pytest.raises(InputError) as info:
        evaluate(y, [0.1, 0.2, 0.3, 0.4])
    assert info.value.row == 12
    assert info.value.column == "labels"
    with pytest.raises(InputError):
        evaluate([0, 1, np.nan, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(InputError, match="pred"):
        evaluate([0, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], pred=[0, 0.5, 0, 0])


def test_non_finite_scores() -> None:
    with pytest.raises(InputError) as info:
        auc_roc([0, 1, 0], [0.1, np.nan, 0.3])
    assert info.value.row == 1
    with pytest.raises(InputError):
        vus_pr([0, 1, 0], [0.1, np.inf, 0.3])


def test_bad_shapes_and_window() -> None:
    with pytest.raises(InputError):
        evaluate(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(InputError):
        evaluate([], [])
    with pytest.raises(InputError):
        evaluate(["a", "b"], [0.1, 0.2])
    with pytest.raises(ValueError):
        evaluate([0, 1], [0.1, 0.2], sliding_window=-1)
    with pytest.raises(ValueError):
        vus([0, 1], [0.1, 0.2], sliding_window=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        point_adjusted_f1([0, 1])  # neither scores nor pred


# ------------------------------------------------------------------------------ sliding window
def _seasonal(period: int, n: int = 3000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.sin(2 * np.pi * t / period) + 0.1 * rng.standard_normal(n)


@pytest.mark.parametrize("period", [6, 24, 50, 100, 288])
def test_choose_sliding_window_finds_the_period(period: int) -> None:
    # noise can move a flat peak of a long period by one lag
    assert abs(choose_sliding_window(_seasonal(period)) - period) <= (0 if period < 100 else 1)


def test_choose_sliding_window_fallbacks() -> None:
    assert choose_sliding_window(np.ones(500)) == 125  # constant
    assert choose_sliding_window(_seasonal(500)) == 125  # no peak within 400 lags
    # quirk: a peak at lag 4 or 5 is index 1 or 2 after dropping lags 0-2, below TSB-AD's 3 -> 125
    assert choose_sliding_window(_seasonal(4)) == 125
    assert choose_sliding_window(_seasonal(5)) == 125


def test_choose_sliding_window_matches_statsmodels_acf() -> None:
    from scipy.signal import argrelextrema
    from statsmodels.tsa.stattools import acf

    x = _seasonal(37, n=25000, seed=1) + 0.5 * _seasonal(91, n=25000, seed=2)
    ac = acf(x[:20000], nlags=400, fft=True)[3:]
    peaks = argrelextrema(ac, np.greater)[0]
    best = peaks[np.argmax(ac[peaks])]
    expected = best + 3 if 3 <= best <= 300 else 125
    assert choose_sliding_window(x) == expected


def test_choose_sliding_window_uses_first_column_and_max_rows() -> None:
    frame = pd.DataFrame({"a": _seasonal(30), "b": _seasonal(70)})
    assert choose_sliding_window(frame) == 30
    assert choose_sliding_window(frame.to_numpy()) == 30
    x = np.concatenate((_seasonal(40, 2000), _seasonal(90, 20000)))
    assert choose_sliding_window(x, max_rows=2000) == 40
    with_nan = _seasonal(30)
    with_nan[5] = np.nan
    assert choose_sliding_window(with_nan) == 30

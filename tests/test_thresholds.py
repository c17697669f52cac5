"""Tests of tsdiff.thresholds: POT/SPOT/DSPOT extreme-value thresholds and the quantile threshold."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from scipy import stats

from tsdiff.errors import InputError, NotFittedError, ParameterError
from tsdiff.thresholds import (
    BaseThreshold,
    BudgetThreshold,
    DSPOTThreshold,
    POTThreshold,
    QuantileThreshold,
    SPOTThreshold,
    fit_gpd,
    gpd_quantile,
    make_threshold,
)

Q = 1e-3
# |log(p/q)| of the fitted threshold's true tail probability p; over 40 seeds of 50,000 scores the
# spread (sd) is about 0.1 for every tail below, so 0.4 leaves ~4 sd.
LOG_RATIO_TOL = 0.4


def _log_ratio(dist, z: float, q: float = Q) -> float:
    p = dist.sf(z)
    return math.log(p / q) if p > 0 else -math.inf


# ---------------------------------------------------------------------------------------- GPD fit


@pytest.mark.parametrize(("gamma", "n"), [(-0.3, 300), (0.0, 300), (0.4, 300), (1.0, 1000)])
def test_fit_gpd_is_the_maximum_likelihood(gamma, n):
    y = stats.genpareto(gamma, scale=2.0).rvs(size=n, random_state=np.random.default_rng(7))
    fit = fit_gpd(y)
    c, _, scale = stats.genpareto.fit(y, floc=0)
    ll_scipy = stats.genpareto.logpdf(y, c, 0, scale).sum()
    assert fit.loglik == pytest.approx(stats.genpareto.logpdf(y, fit.gamma, 0, fit.sigma).sum(), rel=1e-9)
    assert fit.loglik >= ll_scipy - 1e-6 * abs(ll_scipy)
    assert fit.gamma == pytest.approx(c, abs=1e-3)
    assert fit.sigma == pytest.approx(scale, rel=1e-3)


def test_fit_gpd_degenerate_inputs_give_none():
    assert fit_gpd([1.0]) is None
    assert fit_gpd([2.0, 2.0, 2.0]) is None
    assert fit_gpd([1.0, 0.0, 2.0]) is None
    assert fit_gpd([1.0, math.inf]) is None


def test_fit_gpd_uniform_excesses_use_the_bounded_edge():
    y = np.random.default_rng(3).uniform(0, 5, 2000)
    fit = fit_gpd(y)
    assert -1.0 <= fit.gamma < -0.9
    assert fit.sigma / -fit.gamma == pytest.approx(y.max(), rel=0.01)  # upper end of the support


def test_gpd_quantile_is_continuous_at_gamma_zero():
    z0 = gpd_quantile(1.0, 0.0, 2.0, 1e-3, 1000, 20)
    assert z0 == pytest.approx(1.0 - 2.0 * math.log(0.05))
    assert gpd_quantile(1.0, 1e-9, 2.0, 1e-3, 1000, 20) == pytest.approx(z0, rel=1e-7)


# -------------------------------------------------------------------------------------------- POT


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pot_exponential_tail(seed):
    dist = stats.expon()
    x = dist.rvs(size=50_000, random_state=np.random.default_rng(seed))
    pot = POTThreshold(risk=Q).fit(x)
    assert pot.info_["method"] == "pot"
    assert pot.info_["n_peaks"] == 1000
    assert abs(pot.info_["gamma"]) < 0.1
    assert abs(_log_ratio(dist, pot.threshold_)) < LOG_RATIO_TOL


@pytest.mark.parametrize(
    ("dist", "gamma"), [(stats.genpareto(0.25), 0.25), (stats.genpareto(0.5, scale=3), 0.5)]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_pot_heavy_tail(dist, gamma, seed):
    x = dist.rvs(size=50_000, random_state=np.random.default_rng(seed))
    pot = POTThreshold(risk=Q).fit(x)
    assert pot.info_["gamma"] == pytest.approx(gamma, abs=0.12)
    assert abs(_log_ratio(dist, pot.threshold_)) < LOG_RATIO_TOL


@pytest.mark.parametrize(("dist", "gamma"), [(stats.genpareto(-0.25), -0.25), (stats.uniform(), -1.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_pot_bounded_tail(dist, gamma, seed):
    x = dist.rvs(size=50_000, random_state=np.random.default_rng(seed))
    pot = POTThreshold(risk=Q).fit(x)
    assert pot.info_["gamma"] == pytest.approx(gamma, abs=0.1)
    assert pot.threshold_ < dist.support()[1]
    assert abs(_log_ratio(dist, pot.threshold_)) < LOG_RATIO_TOL


def test_pot_is_affine_equivariant():
    x = np.random.default_rng(4).standard_exponential(20_000)
    ref = POTThreshold().fit(x).threshold_
    for scale, shift in [(1e12, 0.0), (1e-9, 0.0), (1.0, -1e6), (3.0, -50.0)]:
        z = POTThreshold().fit(scale * x + shift).threshold_
        assert (z - shift) / scale == pytest.approx(ref, rel=1e-6)


def test_pot_extrapolates_beyond_the_data_and_says_so():
    x = np.random.default_rng(5).standard_exponential(2000)
    pot = POTThreshold(risk=1e-4).fit(x)
    assert pot.info_["extrapolation"] is True
    assert pot.info_["method"] == "pot"
    assert pot.threshold_ > x.max()
    assert POTThreshold(risk=1e-3).fit(x).info_["extrapolation"] is False


def test_pot_falls_back_to_the_quantile_with_few_peaks():
    x = np.random.default_rng(6).normal(size=200)  # 4 peaks above the 0.98 quantile
    pot = POTThreshold(risk=0.01).fit(x)
    assert pot.info_["method"] == "quantile"
    assert pot.info_["n_peaks"] < 10
    assert "min_peaks" in pot.info_["reason"]
    assert pot.threshold_ == pytest.approx(np.quantile(x, 0.99))


def test_constant_scores_give_the_constant_and_flag_only_larger():
    for thr in (POTThreshold(), QuantileThreshold(0.01), SPOTThreshold(), DSPOTThreshold()):
        thr.fit(np.full(500, 3.5))
        assert thr.threshold_ == 3.5
        np.testing.assert_array_equal(thr.predict([3.5, 2.0, 4.0]), [0, 0, 1])
    spot = SPOTThreshold().fit(np.full(500, 3.5))
    labels, _ = spot.run([3.5] * 100 + [9.0])
    assert labels.sum() == 1 and labels[-1] == 1


def test_negative_scores_and_nan_are_handled():
    x = -100.0 - np.random.default_rng(8).standard_exponential(20_000)
    with_nan = x.copy()
    with_nan[::7] = np.nan
    pot = POTThreshold().fit(with_nan)
    assert pot.info_["n"] == np.count_nonzero(~np.isnan(with_nan))
    assert pot.threshold_ == POTThreshold().fit(with_nan[~np.isnan(with_nan)]).threshold_
    assert -100.0 > pot.threshold_ > -101.0  # negative exponential: bounded at -100
    assert pot.predict([np.nan, -99.0]).tolist() == [0, 1]


# --------------------------------------------------------------------------------------- Quantile


def test_quantile_threshold_matches_numpy_and_labels_the_right_fraction():
    x = np.random.default_rng(9).normal(size=10_001)
    thr = QuantileThreshold(risk=0.05).fit(x)
    assert thr.threshold_ == np.quantile(x, 0.95)
    labels = thr.predict(x)
    assert labels.dtype == np.int8
    assert labels.sum() == 500
    assert make_threshold("quantile", 0.05).fit(x).threshold_ == thr.threshold_


# ------------------------------------------------------------------------------------- SPOT/DSPOT


def test_spot_on_a_stationary_stream_labels_about_risk():
    # SPOT leaves flagged scores out of the peaks, which biases the rate upwards over a long stream
    # (see the SPOTThreshold docstring); over 10,000 scores after 10,000 initial ones it stays < 2.5q.
    q = 2e-3
    rates = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        spot = SPOTThreshold(risk=q).fit(rng.standard_exponential(10_000))
        labels, thresholds = spot.run(rng.standard_exponential(10_000))
        rates.append(labels.mean() / q)
        assert spot.n_anomalies_ == labels.sum()
        assert thresholds.shape == labels.shape and np.all(np.isfinite(thresholds))
    assert 0.5 < np.mean(rates) < 2.5, rates


def test_lazy_refits_match_refitting_on_every_peak():
    rng = np.random.default_rng(15)
    init, stream = rng.standard_exponential(2000), rng.standard_exponential(10_000)
    lazy, lazy_thr = SPOTThreshold(risk=Q).fit(init).run(stream)
    exact, exact_thr = SPOTThreshold(risk=Q, refit_growth=0.0).fit(init).run(stream)
    assert np.count_nonzero(lazy != exact) <= 2
    np.testing.assert_allclose(lazy_thr, exact_thr, rtol=0.02)


def test_a_level_shift_into_the_peaks_stays_fast():
    # every new score is a peak: refits on each would cost O(peaks) each, lazy refits keep it linear
    rng = np.random.default_rng(16)
    spot = SPOTThreshold(risk=Q).fit(rng.standard_exponential(2000))
    start = time.perf_counter()
    spot.run(rng.uniform(spot.info_["initial_threshold"], spot.threshold_, 3000))
    assert spot.info_["n_peaks"] > 3000
    assert time.perf_counter() - start < 10.0  # about 0.7 s on a 2-core machine


def test_spot_flags_spikes_without_learning_them():
    rng = np.random.default_rng(10)
    stream = rng.standard_exponential(5000)
    spikes = rng.choice(np.arange(100, 5000), size=10, replace=False)
    stream[spikes] += 30.0
    spot = SPOTThreshold(risk=Q).fit(rng.standard_exponential(5000))
    labels, thresholds = spot.run(stream)
    assert labels[spikes].all()
    assert labels.sum() < 10 + 5000 * 5 * Q
    assert thresholds.max() < 15.0  # spikes did not inflate the tail
    assert spot.to_dict()["state"]["peaks"] and max(spot.to_dict()["state"]["peaks"]) < 20.0


def test_dspot_follows_a_linear_drift():
    rng = np.random.default_rng(11)
    n = 6000
    x = 0.005 * np.arange(n) + rng.standard_exponential(n)
    spot_labels, _ = SPOTThreshold(risk=Q).fit(x[:1000]).run(x[1000:])
    dspot = DSPOTThreshold(risk=Q, depth=10).fit(x[:1000])
    labels, thresholds = dspot.run(x[1000:])
    assert spot_labels[2500:].mean() > 0.9  # plain SPOT flags nearly everything once drifted
    assert labels.mean() < 5 * Q
    assert thresholds[-1] - thresholds[0] == pytest.approx(0.005 * 4999, rel=0.2)


def test_spot_starts_from_the_quantile_and_switches_to_gpd():
    rng = np.random.default_rng(12)
    spot = SPOTThreshold(risk=0.005).fit(rng.standard_exponential(200))  # 4 peaks < min_peaks
    assert spot.info_["method"] == "quantile"
    spot.run(rng.standard_exponential(2000))
    assert spot.info_["method"] == "pot"
    assert spot.info_["n_peaks"] >= 10


def test_spot_skips_nan():
    spot = SPOTThreshold().fit(np.random.default_rng(13).standard_exponential(2000))
    before = spot.to_dict()
    assert spot.update(math.nan) is False
    assert spot.to_dict() == before
    assert spot.step(1e9) is True


def _stream(thr, scores):
    return np.array([thr.update(s) for s in scores], dtype=bool), thr


def test_budget_flags_a_lasting_rise_for_a_few_rows_then_learns_it():
    rng = np.random.default_rng(20)
    budget = BudgetThreshold(risk=Q, budget=0.02, window=200, hold=0).fit(rng.standard_exponential(3000))
    floor = budget.threshold_
    quiet = rng.standard_exponential(2000)
    shifted = 20.0 + rng.standard_exponential(2000)  # a new normal far above the floor
    labels, _ = _stream(budget, np.concatenate([quiet, shifted]))
    assert labels[:2000].mean() < 5 * Q  # a stationary stream: the floor decides
    assert labels[2000:2004].all()  # the jump is flagged at once (k = 0.02 x 200 = 4 rows)
    assert labels[2200:].mean() < 0.04  # then it is learned: about the budget of the rows
    assert budget.threshold_ > 20.0 and budget.info_["floor"] == floor
    spike, _ = _stream(budget, [60.0])
    assert spike.all()  # a spike above the new normal still stands out
    # a quieter stream never takes the threshold below the fitted one
    _stream(budget, np.zeros(500))
    assert budget.threshold_ == floor


def test_budget_hold_keeps_the_rising_edge_of_one_anomaly():
    """A smoothed score climbs over a few rows: without the hold, each row is judged against the
    rows before it, so the bar rises with the edge and the peak can fall under it."""
    rng = np.random.default_rng(21)
    calibration = rng.standard_exponential(3000)
    edge = np.array([12.0, 14.0, 16.0, 15.9, 15.8, 15.7, 15.6, 15.5])
    held = BudgetThreshold(risk=Q, budget=0.01, window=200, hold=8).fit(calibration)
    plain = BudgetThreshold(risk=Q, budget=0.01, window=200, hold=0).fit(calibration)
    assert _stream(held, edge)[0].all()
    assert not _stream(plain, edge)[0].all()


def test_budget_threshold_in_make_threshold_and_its_checks():
    assert make_threshold("budget", 1e-3, budget=0.05, window=50, hold=3).get_params() == {
        "risk": 1e-3,
        "initial_level": 0.98,
        "min_peaks": 10,
        "budget": 0.05,
        "window": 50,
        "hold": 3,
    }
    for kwargs in ({"budget": 0.0}, {"budget": 1.0}, {"window": 0}, {"hold": -1}, {"hold": 2.5}):
        with pytest.raises(ParameterError):
            BudgetThreshold(**kwargs)
    assert BudgetThreshold().fit(np.arange(100.0)).update(math.nan) is False


# ------------------------------------------------------------------------------- persistence, API


@pytest.mark.parametrize("method", ["pot", "spot", "dspot", "budget", "quantile"])
def test_to_dict_round_trip(method):
    rng = np.random.default_rng(14)
    thr = make_threshold(method, 0.002).fit(rng.standard_exponential(3000))
    stream = np.concatenate([rng.standard_exponential(2000), [40.0]])
    if method in ("spot", "dspot"):
        thr.run(stream[:1000])
    if method == "budget":  # end inside a flagged run, so the hold is part of the state
        _stream(thr, np.concatenate([stream[:998], [30.0, 31.0]]))
    d = json.loads(json.dumps(thr.to_dict(), allow_nan=False))
    copy = BaseThreshold.from_dict(d)
    assert type(copy) is type(thr)
    assert copy.threshold_ == thr.threshold_
    assert copy.info_ == thr.info_
    if method in ("spot", "dspot"):
        a, ta = thr.run(stream[1000:])
        b, tb = copy.run(stream[1000:])
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ta, tb)
    elif method == "budget":
        np.testing.assert_array_equal(_stream(thr, stream[1000:])[0], _stream(copy, stream[1000:])[0])
        assert copy.threshold_ == thr.threshold_
    else:
        np.testing.assert_array_equal(thr.predict(stream), copy.predict(stream))


def test_from_dict_of_unfitted_and_wrong_class():
    d = SPOTThreshold(risk=0.01, initial_level=0.9).to_dict()
    assert d["state"] is None
    copy = SPOTThreshold.from_dict(d)
    assert copy.get_params() == {"risk": 0.01, "initial_level": 0.9, "min_peaks": 10, "refit_growth": 0.01}
    with pytest.raises(ParameterError):
        QuantileThreshold.from_dict(d)
    with pytest.raises(ParameterError):
        BaseThreshold.from_dict({"method": "nope", "params": {}, "state": None})


def test_make_threshold_builds_each_method():
    assert isinstance(make_threshold("POT", 1e-4, initial_level=0.99), POTThreshold)
    assert isinstance(make_threshold("spot", 1e-3), SPOTThreshold)
    assert make_threshold("dspot", 1e-3, depth=25).depth == 25
    assert isinstance(make_threshold("quantile", 0.1), QuantileThreshold)
    with pytest.raises(ParameterError):
        make_threshold("gaussian", 1e-3)
    with pytest.raises(ParameterError):
        make_threshold("quantile", 1e-3, depth=3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"risk": 0.0},
        {"risk": 1.0},
        {"risk": -0.1},
        {"risk": math.nan},
        {"risk": "0.1"},
        {"risk": True},
        {"initial_level": 0.0},
        {"initial_level": 1.0},
        {"risk": 0.05, "initial_level": 0.98},  # risk must be below 1 - initial_level
        {"min_peaks": 1},
        {"min_peaks": 2.5},
    ],
)
def test_invalid_parameters_raise(kwargs):
    with pytest.raises(ParameterError):
        POTThreshold(**kwargs)
    with pytest.raises(ParameterError):
        SPOTThreshold(**kwargs)


def test_invalid_depth_and_quantile_risk_raise():
    with pytest.raises(ParameterError):
        DSPOTThreshold(depth=0)
    for growth in (-0.1, math.inf, math.nan):
        with pytest.raises(ParameterError):
            SPOTThreshold(refit_growth=growth)
    with pytest.raises(ParameterError):
        QuantileThreshold(risk=1.5)


def test_bad_inputs_raise_input_error():
    for bad in ([], [np.nan, np.nan], [1.0, np.inf], np.ones((3, 3)), ["a", "b"]):
        with pytest.raises(InputError):
            POTThreshold().fit(bad)
    with pytest.raises(InputError):
        DSPOTThreshold(depth=10).fit(np.arange(10.0))
    with pytest.raises(NotFittedError):
        POTThreshold().predict([1.0])
    with pytest.raises(NotFittedError):
        SPOTThreshold().update(1.0)

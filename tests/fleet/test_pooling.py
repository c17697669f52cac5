"""A threshold pooled over a fleet's hosts: the tail shared, each host's scale kept."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tsdiff
from tsdiff import errors
from tsdiff.fleet.pooling import POOLED, choose_thresholds, host_threshold, pooled_level, robust_scale
from tsdiff.thresholds import make_threshold

RISK = 1e-3


def smoothed_noise(n: int, rng: np.random.Generator, scale: float = 1.0, loc: float = 0.0) -> np.ndarray:
    """Correlated normal scores, as a smoothed anomaly score of normal rows is: a moving mean of 8."""
    raw = np.abs(rng.standard_t(5, size=n + 7))
    return loc + scale * np.convolve(raw, np.ones(8) / 8, mode="valid")


def test_a_pooled_tail_flags_about_risk_where_each_hosts_own_few_scores_flag_many_times_more():
    rng = np.random.default_rng(0)
    scales = rng.uniform(0.5, 5.0, size=40)
    held = {f"h{i}": smoothed_noise(200, rng, s, loc=3 * s) for i, s in enumerate(scales)}
    fresh = {f"h{i}": smoothed_noise(20_000, rng, s, loc=3 * s) for i, s in enumerate(scales)}
    own = {name: make_threshold("pot", risk=RISK).fit(x) for name, x in held.items()}
    assert {m.info_["method"] for m in own.values()} == {"quantile"}  # 200 scores: too few peaks
    thresholds, pool = choose_thresholds({n: (x, "quantile") for n, x in held.items()}, RISK, "auto")
    assert pool["hosts"] == 40 and pool["scores"] == 8000 and pool["method"] == "pot"
    own_share = np.mean([np.mean(fresh[n] > own[n].threshold_) for n in held])
    pooled_share = np.mean([np.mean(fresh[n] > thresholds[n]) for n in held])
    assert own_share > 5 * RISK
    assert pooled_share < 3 * RISK and pooled_share < own_share / 4


def test_each_host_keeps_its_scale():
    rng = np.random.default_rng(1)
    base = smoothed_noise(300, rng)
    hosts = {
        "a": (base, "quantile"),
        "b": (10 * base + 5, "quantile"),
        "c": (smoothed_noise(300, rng), "quantile"),
    }
    thresholds, pool = choose_thresholds(hosts, RISK, "pooled")
    assert thresholds["b"] == pytest.approx(10 * thresholds["a"] + 5)
    assert thresholds["a"] == pytest.approx(host_threshold(base, pool))
    assert robust_scale(np.full(50, 2.0)) == (2.0, 1.0)  # constant scores: spread 1, never 0


def test_rules_choose_which_hosts_take_the_pool():
    rng = np.random.default_rng(2)
    hosts = {"fitted": (smoothed_noise(5000, rng), "pot"), "short": (smoothed_noise(150, rng), "quantile")}
    assert set(choose_thresholds(hosts, RISK, "auto")[0]) == {"short"}
    assert set(choose_thresholds(hosts, RISK, "pooled")[0]) == {"fitted", "short"}
    assert choose_thresholds(hosts, RISK, "host") == ({}, None)
    assert choose_thresholds({"short": hosts["short"]}, RISK, "pooled") == ({}, None)  # one host: no pool
    assert choose_thresholds({"fitted": hosts["fitted"], "b": hosts["fitted"]}, RISK, "auto") == ({}, None)
    with pytest.raises(errors.ParameterError, match="threshold rule"):
        choose_thresholds(hosts, RISK, "fleet")
    with pytest.raises(errors.ParameterError, match="2 hosts"):
        pooled_level([hosts["short"][0]], RISK)


def test_set_threshold_is_saved_and_refuses_a_non_finite_value(tmp_path):
    from tests.helpers import make_frame

    det = build_pca().fit(make_frame(300, 3, seed=0))
    with pytest.raises(errors.ParameterError, match="finite"):
        det.set_threshold(float("nan"), POOLED)
    det.set_threshold(1.25, POOLED).save(tmp_path / "m")
    back = tsdiff.load(tmp_path / "m")
    assert back.threshold_ == 1.25 and back.threshold_method_ == POOLED
    result = back.detect(make_frame(50, 3, seed=1))
    np.testing.assert_array_equal(result.labels.to_numpy(), (result.scores.to_numpy() > 1.25).astype(int))


def build_pca():
    from tsdiff.registry import build

    return build("pca", "tiny", random_state=0)


distributed = pytest.importorskip("distributed", reason="the fleet extra (dask.distributed) is not installed")


def test_fit_fleet_pools_the_threshold_and_saves_it_in_each_model_and_the_index(tmp_path):
    from tsdiff.fleet import entity_path, fit_fleet
    from tsdiff.fleet.cluster import local_cluster
    from tsdiff.fleet.storage import INDEX_FILE

    from tests.fleet.test_fleet import long_table

    hosts = [f"web-{i}" for i in range(4)]
    table = long_table(hosts, anomaly_in=None)
    with local_cluster(1, threads_per_worker=1) as cluster, distributed.Client(cluster) as client:
        pooled = fit_fleet(
            table, build_pca(), tmp_path / "p", entity_col="host", client=client, verbose=False
        )
        own = fit_fleet(
            table,
            build_pca(),
            tmp_path / "h",
            entity_col="host",
            client=client,
            verbose=False,
            threshold="host",
        )
    assert own.threshold_pool is None and pooled.threshold_pool["takers"] == 4
    index = json.loads((tmp_path / "p" / INDEX_FILE).read_text())
    assert index["threshold_pool"] == pooled.threshold_pool and index["threshold_pool"]["risk"] == RISK
    own_index = json.loads((tmp_path / "h" / INDEX_FILE).read_text())
    assert "threshold_pool" not in own_index
    for host in hosts:
        model = tsdiff.load(entity_path(tmp_path / "p", host))
        alone = tsdiff.load(entity_path(tmp_path / "h", host))
        assert model.threshold_method_ == POOLED == index["entities"][host]["threshold_method"]
        assert model.threshold_ == pytest.approx(index["entities"][host]["threshold"])
        assert model.threshold_ == pytest.approx(
            host_threshold(alone.calibration_scores_, index["threshold_pool"])
        )
        assert alone.threshold_method_ == own_index["entities"][host]["threshold_method"] != POOLED
        np.testing.assert_array_equal(model.calibration_scores_, alone.calibration_scores_)

"""FusionDetector and its calibrators; HybridDetector as its diffusion + causal preset."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import tsdiff
from tsdiff import errors
from tsdiff.calibration import TailCalibrator, ZScoreCalibrator
from tsdiff.fusion import FusionDetector, fit_calibrators, fuse
from tsdiff.registry import build

from tests.helpers import make_frame


# ----------------------------------------------------------------- calibrators
def test_surprise_follows_the_normal_scores_survival():
    rng = np.random.default_rng(0)
    normal = rng.standard_normal(20_000)
    cal = TailCalibrator().fit(normal)
    q90, q99 = np.quantile(normal, [0.9, 0.99])
    assert cal.transform(np.array([q90]))[0] == pytest.approx(1.0, abs=0.05)  # 1 in 10
    assert cal.transform(np.array([q99]))[0] == pytest.approx(2.0, abs=0.15)  # 1 in 100
    beyond = cal.transform(np.array([normal.max(), normal.max() + 1, normal.max() + 2]))
    assert np.all(np.diff(beyond) > 0)  # the tail keeps growing past anything seen
    assert cal.transform(np.array([np.nan]))[0] == 0.0


def test_scores_far_past_training_stay_ordered():
    # a component whose test scores run thousands of tail scales past its normal ones (PCA on a
    # spacecraft channel did): every one keeps its own, finite surprise, none saturate together
    normal = np.random.default_rng(0).exponential(1.0, 5_000)
    far = normal.max() * np.array([1e3, 1e4, 1e5, 1e6, 1e8])
    out = TailCalibrator().fit(normal).transform(np.concatenate([far, [np.inf]]))
    assert np.all(np.isfinite(out))
    assert np.all(np.diff(out[:-1]) > 0)
    assert out[-1] >= out[-2]


@pytest.mark.parametrize("kind", [TailCalibrator, ZScoreCalibrator])
def test_calibrators_round_trip_through_arrays(kind):
    scores = np.random.default_rng(1).gamma(2.0, size=500)
    cal = kind().fit(scores)
    arrays = cal.to_arrays("calibration.x")
    assert all(k.startswith("calibration.x.") for k in arrays)
    back = kind.from_arrays(arrays, "calibration.x")
    probe = np.linspace(-1, 30, 50)
    np.testing.assert_array_equal(back.transform(probe), cal.transform(probe))


def test_robust_z_centres_on_the_median_and_reads_the_old_layout():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    cal = ZScoreCalibrator().fit(scores)
    assert cal.transform(np.array([3.0]))[0] == 0.0
    old = {"c.probs": np.array([0.0]), "c.quantiles": np.array([3.0]), "c.tail": np.array([0.0, 2.0])}
    assert ZScoreCalibrator.from_arrays(old, "c").transform(np.array([7.0]))[0] == 2.0


def test_a_calibrator_needs_finite_scores_and_complete_arrays():
    with pytest.raises(errors.ParameterError, match="finite"):
        TailCalibrator().fit(np.array([np.nan, np.inf]))
    with pytest.raises(errors.ModelFormatError, match=r"calibration\.x\.tail"):
        TailCalibrator.from_arrays(
            {"calibration.x.probs": np.zeros(3), "calibration.x.quantiles": np.zeros(3)}, "calibration.x"
        )


def test_calibrators_are_fitted_on_the_rows_every_component_held_out():
    long = np.concatenate([np.full(50, 1000.0), np.arange(100.0)])  # its first rows are not shared
    short = np.arange(100.0)
    calibrators = fit_calibrators({"long": long, "short": short})
    probe = np.array([10.0, 50.0, 99.0])
    np.testing.assert_allclose(calibrators["long"].transform(probe), calibrators["short"].transform(probe))


def test_fuse_divides_the_weights_by_their_sum():
    a, b = np.array([1.0, 2.0]), np.array([3.0, 6.0])
    np.testing.assert_allclose(fuse({"a": a, "b": b}, {"a": 1.0, "b": 3.0}), 0.25 * a + 0.75 * b)


# ----------------------------------------------------------------- the detector
@pytest.fixture(scope="module")
def data():
    train = make_frame(400, 4, seed=0)
    test = make_frame(200, 4, seed=1)
    test.iloc[100:110, 2] += 6.0
    return train, test


def inner_scores(fusion, name, frame):
    """A component's raw scores inside the fusion (the components see the fusion's scaled values)."""
    scaled = pd.DataFrame(fusion.scaler_.transform(frame.to_numpy()), columns=frame.columns)
    return fusion.components_[name].score(scaled).to_numpy()


def pca_causal(**kw):
    components = [("pca", build("pca", "tiny"), 1.0), ("causal", build("causal", "tiny"), 3.0)]
    return FusionDetector(components, random_state=0, verbose=False, **kw)


@pytest.fixture(scope="module")
def fused(data):
    return pca_causal().fit(data[0])


def test_fused_score_is_the_weighted_sum_of_calibrated_components(fused, data):
    result = fused.detect(data[1])
    parts = result.components
    assert set(parts) == {"pca", "causal"}
    w = fused.weights_
    assert sum(w.values()) == pytest.approx(1.0) and all(v >= 0 for v in w.values())
    np.testing.assert_allclose(result.scores, w["pca"] * parts["pca"] + w["causal"] * parts["causal"])
    fixed = pca_causal(weighting="fixed").fit(data[0])
    assert fixed.weights_ == {"pca": 0.25, "causal": 0.75} and fixed.weighting_ is None
    parts = fixed.detect(data[1]).components
    np.testing.assert_allclose(fixed.score(data[1]), 0.25 * parts["pca"] + 0.75 * parts["causal"])
    # each component is calibrated by its own held-out scores, not refitted
    raw = inner_scores(fused, "causal", data[1])
    np.testing.assert_allclose(parts["causal"], fused.calibrators_["causal"].transform(raw))


def test_attribution_adds_up_to_the_fused_score(fused, data):
    result = fused.detect(data[1])
    np.testing.assert_allclose(result.feature_scores.sum(axis=1), result.scores, rtol=1e-9, atol=1e-12)
    assert result.feature_scores.iloc[100:110].mean().idxmax() == "m2"


def test_threshold_is_fitted_on_the_common_held_out_rows(fused):
    causal = fused.components_["causal"]
    assert len(fused.calibration_scores_) == len(causal.calibration_scores_)  # pca holds out nothing
    assert len(fused.components_["pca"].calibration_scores_) == 400
    assert fused.threshold_ > 0 and fused.n_train_rows_ == 400


def test_root_causes_come_from_the_component_that_names_them(fused, data):
    assert fused.names_root_causes()
    events = fused.detect(data[1]).events
    assert len(events) and all(isinstance(c, list) for c in events["root_causes"])
    assert any(events["root_causes"].map(len))
    plain = FusionDetector([("pca", build("pca", "tiny"), 1.0), ("kmeans", build("kmeans", "tiny"), 1.0)])
    plain.fit(data[0])
    assert not plain.names_root_causes()
    assert all(c == [] for c in plain.detect(data[1]).events["root_causes"])


def test_weights_follow_the_skill_on_injected_anomalies_and_the_stability(fused, data, tmp_path):
    skills, steady = fused.weighting_["skills"], fused.weighting_["stability"]
    assert set(skills) == set(steady) == {"pca", "causal"}
    assert all(0.0 <= v <= 1.0 for v in [*skills.values(), *steady.values()])
    given = {"pca": 0.25, "causal": 0.75}
    raw = {n: given[n] * (skills[n] * steady[n] ** 2) ** 2 for n in skills}
    assert fused.weights_ == pytest.approx({n: w / sum(raw.values()) for n, w in raw.items()})
    # the skill alone ("injection"): the same skills, the stability not used
    alone = pca_causal(weighting="injection").fit(data[0])
    assert alone.weighting_ == {"skills": skills}
    total = sum(given[n] * skills[n] ** 2 for n in skills)
    assert alone.weights_ == pytest.approx({n: given[n] * skills[n] ** 2 / total for n in skills})
    fused.save(tmp_path / "m")
    again = tsdiff.load(tmp_path / "m")
    assert again.weights_ == fused.weights_ and again.weighting_ == fused.weighting_
    pd.testing.assert_series_equal(again.score(data[1]), fused.score(data[1]))


def test_seed_reaches_every_component(fused):
    assert {c.random_state for c in fused.components_.values()} == {0}


def test_save_and_load_keeps_every_component(fused, data, tmp_path):
    fused.save(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.joinpath("m").iterdir() if p.is_dir()) == ["causal", "pca"]
    back = tsdiff.load(tmp_path / "m")
    assert isinstance(back, FusionDetector) and list(back.components_) == ["pca", "causal"]
    pd.testing.assert_series_equal(back.score(data[1]), fused.score(data[1]))
    np.testing.assert_array_equal(back.calibration_scores_, fused.calibration_scores_)


def test_a_component_folder_of_another_kind_or_columns_is_refused(fused, data, tmp_path):
    fused.save(tmp_path / "m")
    build("kmeans", "tiny").fit(data[0]).save(tmp_path / "m" / "pca")
    with pytest.raises(errors.ModelFormatError, match="KMeansDetector"):
        tsdiff.load(tmp_path / "m")
    fused.save(tmp_path / "n")
    build("pca", "tiny").fit(data[0].rename(columns={"m0": "other"})).save(tmp_path / "n" / "pca")
    with pytest.raises(errors.ModelFormatError, match="other columns"):
        tsdiff.load(tmp_path / "n")


def test_a_detector_without_components_cannot_claim_them(data, tmp_path):
    build("pca", "tiny").fit(data[0]).save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["components"] = ["x"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(errors.ModelFormatError, match="no components"):
        tsdiff.load(tmp_path / "m")


@pytest.mark.parametrize(
    ("components", "message"),
    [
        (None, "triples"),
        ([], "at least one"),
        ([("a", "not a detector", 1.0)], "not a tsdiff detector"),
        ([("a/b", "pca", 1.0)], "letters, digits"),
        ([("a", "pca", 1.0), ("a", "kmeans", 1.0)], "two components"),
        ([("a", "pca", -1.0)], ">= 0"),
        ([("a", "pca", 0.0)], "add up to 0"),
        ([("a", "pca")], r"\(name, detector, weight\)"),
    ],
)
def test_bad_components_are_named(components, message, data):
    if components:
        components = [
            (c[0], build(c[1], "tiny") if c[1] in ("pca", "kmeans") else c[1], *c[2:]) for c in components
        ]
    with pytest.raises(errors.ParameterError, match=message):
        FusionDetector(components).fit(data[0])


# ----------------------------------------------------------------- hybrid
@pytest.fixture(scope="module")
def hybrid(data):
    return build("hybrid", "tiny", random_state=0).fit(data[0])


def test_hybrid_is_the_fusion_of_its_two_components(hybrid, data):
    same = FusionDetector(
        [("diffusion", build("imdiffusion", "tiny"), 0.5), ("causal", build("causal", "tiny"), 0.5)],
        random_state=0,
        verbose=False,
    ).fit(data[0])
    pd.testing.assert_series_equal(same.score(data[1]), hybrid.score(data[1]))
    assert hybrid.diffusion_ is hybrid.components_["diffusion"]
    assert hybrid.graph_ is hybrid.causal_.graph_


@pytest.mark.parametrize(("weight", "alone"), [(1.0, "diffusion"), (0.0, "causal")])
def test_diffusion_weight_moves_the_score_between_components(weight, alone, data):
    det = build("hybrid", "tiny", random_state=0, diffusion_weight=weight).fit(data[0])
    result = det.detect(data[1])
    np.testing.assert_allclose(result.scores, result.components[alone])


def test_hybrid_checks_its_components_and_weight(data):
    with pytest.raises(errors.ParameterError, match="diffusion_weight"):
        build("hybrid", "tiny", diffusion_weight=1.5).fit(data[0])
    with pytest.raises(errors.ParameterError, match="causal must be a CausalDetector"):
        build("hybrid", "tiny", causal=build("pca")).fit(data[0])


def test_zscore_calibration_fuses_robust_z(data):
    det = build("hybrid", "tiny", random_state=0, calibration="zscore").fit(data[0])
    held = det.components_["causal"].calibration_scores_
    z = det.detect(data[1]).components["causal"]
    raw = inner_scores(det, "causal", data[1])
    np.testing.assert_allclose(z, (raw - np.median(held)) / det.calibrators_["causal"].scale_)


def test_a_component_name_that_leaves_the_folder_is_refused(fused, tmp_path):
    fused.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["components"] = ["../elsewhere", "causal"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(errors.ModelFormatError, match="not a component name"):
        tsdiff.load(tmp_path / "m")


def test_a_model_saved_with_fixed_weights_can_be_reweighed(data):
    fixed = pca_causal(weighting="fixed").fit(data[0])
    chosen = pca_causal().fit(data[0])
    fixed.reweigh(data[0])
    assert fixed.weighting == "injection-stability" and fixed.weights_ == pytest.approx(chosen.weights_)
    assert fixed.threshold_ == pytest.approx(chosen.threshold_)
    pd.testing.assert_series_equal(fixed.score(data[1]), chosen.score(data[1]))

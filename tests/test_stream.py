"""Streaming: stream scores equal batch scores; provisional scores, late rows, gaps, restart."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tsdiff import errors
from tsdiff.stream import StreamScorer

from tests.detectors import DETECTORS
from tests.helpers import make_frame

STREAMABLE = [name for name in DETECTORS if name != "random"]
_FITTED: dict[str, object] = {}


def fitted(name):
    if name not in _FITTED:
        _FITTED[name] = DETECTORS[name](random_state=0).fit(make_frame(300, 4, seed=0))
    return _FITTED[name]


def live_frame(n=260, seed=1):
    df = make_frame(n, 4, seed=seed)
    df.index = df.index + pd.Timedelta(minutes=300)
    df.iloc[150:156, 2] += 8.0
    df.iloc[40:43, 1] = np.nan
    return df


def stream_in_chunks(scorer, frame, seed=0, max_chunk=40):
    rng = np.random.default_rng(seed)
    parts, i = [], 0
    while i < len(frame):
        size = int(rng.integers(1, max_chunk + 1))
        parts.append(scorer.update(frame.iloc[i : i + size]))
        i += size
    parts.append(scorer.flush())
    return pd.concat([p for p in parts if len(p)])


@pytest.mark.parametrize("name", STREAMABLE)
def test_stream_scores_equal_batch_scores(name):
    det, frame = fitted(name), live_frame()
    scorer = StreamScorer(det)
    out = stream_in_chunks(scorer, frame)
    assert out["final"].all()
    assert out.index.equals(frame.index)  # every row once, in order
    batch = det.score(frame)
    np.testing.assert_allclose(out["score"].to_numpy(), batch.to_numpy(), rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(out["label"].to_numpy(), det.predict(frame).to_numpy())
    g = det.stream_geometry()
    assert scorer.buffered_rows <= g.history + 2 * g.period + g.lookahead + 40


@pytest.mark.parametrize("name", ["imdiffusion-streaming", "hybrid-streaming"])
def test_streaming_presets_give_final_scores_within_four_rows(name):
    det = fitted(name)
    assert StreamScorer(det).latency <= 4
    scorer = StreamScorer(det)
    frame = live_frame(120)
    out = scorer.update(frame)
    assert out["final"].sum() >= len(frame) - 4


@pytest.mark.parametrize("name", ["imdiffusion-streaming", "hybrid-streaming"])
@pytest.mark.parametrize("provisional", [False, True])
def test_row_by_row_tail_scoring_spreads_each_chain_over_its_block(name, provisional, monkeypatch):
    from tsdiff.diffusion.denoiser import Denoiser

    det, frame = fitted(name), live_frame(180)
    frame.iloc[121, 0] = np.nan  # the block of rows 120-123 misses a cell: its early chain is redone
    diffusion = det.diffusion_ if name.startswith("hybrid") else det
    visit, tail = len(diffusion.config_.steps()[0]), diffusion.config_.tail
    batch = det.score(frame)
    forward, calls = Denoiser.forward, [0]

    def counted(self, *args, **kwargs):
        calls[-1] += 1
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(Denoiser, "forward", counted)
    scorer = StreamScorer(det, provisional=provisional)
    parts = [scorer.update(frame.iloc[:100])]
    calls.clear()
    for i in range(100, len(frame)):
        calls.append(0)
        parts.append(scorer.update(frame.iloc[i : i + 1]))
    calls.append(0)  # the flush (not a row's update)
    parts.append(scorer.flush())
    del calls[-1]
    out = pd.concat([p for p in parts if len(p)])
    final = out[out["final"]]
    assert final.index.equals(frame.index)
    np.testing.assert_allclose(final["score"].to_numpy(), batch.to_numpy(), rtol=1e-5, atol=1e-8)
    if not provisional:
        # a block's chain runs a few steps per row as its rows arrive; only the block whose rows
        # turned out to miss a cell is imputed again, whole, when its last row comes
        per_row = -(-visit // tail)
        redone = 123 - 100
        assert calls[redone] == visit + per_row
        assert max(calls[:redone] + calls[redone + 1 :]) <= per_row
        assert sum(calls) <= (len(frame) - 100) * visit / tail + visit + per_row


@pytest.mark.parametrize("name", ["causal", "imdiffusion", "imdiffusion-streaming"])
def test_final_score_comes_latency_rows_later_and_provisional_at_once(name):
    det, frame = fitted(name), live_frame(200)
    scorer = StreamScorer(det, provisional=True)
    first = scorer.update(frame.iloc[:100])
    assert (~first["final"]).sum() == min(scorer.latency, 100)
    provisional = first[~first["final"]]
    # a provisional score is what a batch over the rows so far gives
    so_far = det.score(frame.iloc[:100])
    np.testing.assert_allclose(provisional["score"], so_far.loc[provisional.index], rtol=1e-5, atol=1e-8)
    one = scorer.update(frame.iloc[100:101])
    final = one[one["final"]]
    assert list(final.index) == [frame.index[100 - scorer.latency]]
    assert list(one[~one["final"]].index) == [frame.index[100]]


def test_late_duplicate_and_unsorted_rows():
    det, frame = fitted("pca"), live_frame(60)
    scorer = StreamScorer(det)
    scorer.update(frame.iloc[:30])
    shuffled = frame.iloc[30:40].sample(frac=1.0, random_state=0)
    out = scorer.update(pd.concat([shuffled, frame.iloc[[5, 35]]]))  # two late/duplicate rows
    assert list(out.index) == list(frame.index[30:40]) and scorer.dropped_ == 2
    strict = StreamScorer(det, on_late="raise")
    strict.update(frame.iloc[:30])
    before = strict.state()
    with pytest.raises(errors.LateRowError) as info:
        strict.update(frame.iloc[[31, 32, 3]])
    assert info.value.row == frame.index[3]
    assert strict.state() == before  # a refused update keeps nothing


def test_gaps_are_filled_on_the_grid_and_flagged():
    det, frame = fitted("causal"), live_frame(120)
    holed = frame.drop(frame.index[50:53])
    scorer = StreamScorer(det, freq="1min")
    out = stream_in_chunks(scorer, holed, max_chunk=7)
    assert out.index.equals(frame.index)
    gaps = out["gap"].to_numpy()
    assert gaps.nonzero()[0].tolist() == [50, 51, 52]
    # a gap row has no data: no score and no label, never the last ones carried forward
    assert out.loc[gaps, ["score", "label"]].isna().all().all()
    assert np.isfinite(out.loc[~gaps, "score"]).all()
    on_grid = StreamScorer(fitted("pca"), freq="1min")  # no latency: a row is scored at once
    on_grid.update(frame.iloc[[0]])
    with pytest.raises(errors.InputError, match="off the stream's 1min grid"):
        on_grid.update(frame.iloc[[1]].set_axis([frame.index[1] + pd.Timedelta("30s")]))
    late_scrape = on_grid.update(frame.iloc[[1]].set_axis([frame.index[1] + pd.Timedelta("2s")]))
    assert list(late_scrape.index) == [frame.index[1]]  # 2 s off: moved onto the grid


def test_dict_rows_and_bad_values():
    det = fitted("pca")
    scorer = StreamScorer(det)
    start = pd.Timestamp("2024-02-01")
    for i in range(3):
        out = scorer.update(
            {"m0": 0.1, "m1": 0.2, "m2": np.nan, "m3": 0.0}, index=start + pd.Timedelta(minutes=i)
        )
        assert len(out) == 1 and out["final"].all()
    with pytest.raises(errors.ColumnMismatchError):
        scorer.update({"m0": 0.1, "zz": 1.0}, index=start + pd.Timedelta(minutes=9))
    with pytest.raises(errors.InfiniteValueError):
        scorer.update({"m0": np.inf, "m1": 0, "m2": 0, "m3": 0}, index=start + pd.Timedelta(minutes=9))
    assert (
        scorer.update({"m0": 0, "m1": 0, "m2": 0, "m3": 0}, index=start + pd.Timedelta(minutes=9)).shape[0]
        == 1
    )


def test_restart_from_state_loses_no_row():
    det, frame = fitted("hybrid"), live_frame(220)
    whole = stream_in_chunks(StreamScorer(det), frame, seed=3)
    first = StreamScorer(det)
    a = first.update(frame.iloc[:120])
    snapshot = json.loads(json.dumps(first.state()))  # survives a trip through a file
    second = StreamScorer.from_state(det, snapshot)
    b = stream_in_chunks(second, frame.iloc[120:], seed=4)
    joined = pd.concat([a, b])
    assert joined.index.equals(whole.index)
    np.testing.assert_allclose(joined["score"], whole["score"], rtol=1e-5, atol=1e-8)
    assert {"score_diffusion", "score_causal"} <= set(joined.columns)


def test_anomalous_rows_carry_root_causes_from_the_causal_model():
    det, frame = fitted("causal"), live_frame()
    out = stream_in_chunks(StreamScorer(det), frame)
    flagged = out[out["label"] == 1]
    assert len(flagged) and all(isinstance(c, list) for c in flagged["root_causes"])
    assert any("m2" in c for c in flagged.loc[frame.index[150] : frame.index[160], "root_causes"])


def test_random_detector_refuses_to_stream():
    with pytest.raises(errors.ParameterError):
        StreamScorer(DETECTORS["random"](random_state=0).fit(make_frame(100, 4)))


# ----------------------------------------------------------------- snapshots a monitor can trust
@pytest.mark.parametrize("name", ["causal", "kmeans"])
def test_kill_and_restore_at_random_points_across_a_dst_change(name, tmp_path):
    import tsdiff

    det = fitted(name)
    frame = live_frame(200)
    # hourly rows in Berlin across the end of summer time (2024-10-27 03:00 -> 02:00)
    frame.index = pd.date_range("2024-10-25 12:00", periods=len(frame), freq="h", tz="Europe/Berlin")
    whole = stream_in_chunks(StreamScorer(det), frame, seed=5, max_chunk=5)
    det.save(tmp_path / "m")
    rng = np.random.default_rng(0)
    cuts = sorted(rng.choice(np.arange(1, len(frame)), size=min(100, len(frame) - 1), replace=False))
    scorer, parts, done = StreamScorer(det), [], 0
    for cut in [*cuts, len(frame)]:
        parts.append(scorer.update(frame.iloc[done:cut]))
        done = cut
        # the process dies here; a new one loads the model and continues from the snapshot
        snapshot = json.loads(json.dumps(scorer.state()))
        scorer = StreamScorer.from_state(tsdiff.load(tmp_path / "m"), snapshot)
        assert snapshot["time_zone"] == "Europe/Berlin"
    parts.append(scorer.flush())
    joined = pd.concat([p for p in parts if len(p)])
    assert joined.index.equals(whole.index) and not joined.index.duplicated().any()
    np.testing.assert_allclose(joined["score"], whole["score"], rtol=1e-6, atol=1e-9)


def test_a_snapshot_of_another_model_or_with_tampered_counters_is_refused():
    det = fitted("pca")
    scorer = StreamScorer(det)
    scorer.update(live_frame(40))
    snapshot = json.loads(json.dumps(scorer.state()))
    other = DETECTORS["pca"](random_state=0).fit(make_frame(300, 4, seed=9))
    with pytest.raises(errors.ParameterError, match="another model"):
        StreamScorer.from_state(other, snapshot)
    reordered = DETECTORS["pca"](random_state=0).fit(make_frame(300, 4, seed=0)[["m1", "m0", "m2", "m3"]])
    with pytest.raises(errors.ParameterError, match="another model"):
        StreamScorer.from_state(reordered, snapshot)
    for key, value in [("received", 41), ("final", 10_000), ("start", -1), ("dropped", "0")]:
        tampered = {**snapshot, key: value}
        with pytest.raises(errors.ParameterError, match=r"inconsistent|not a count"):
            StreamScorer.from_state(det, tampered)
    assert StreamScorer.from_state(det, snapshot).state() == snapshot


def test_a_failed_update_does_not_count_its_late_rows():
    det, frame = fitted("pca"), live_frame(60)
    scorer = StreamScorer(det)
    scorer.update(frame.iloc[:30])
    bad = frame.iloc[[5, 31]].astype(object)
    bad.iloc[1, 0] = "oops"  # the whole update is refused ...
    with pytest.raises(errors.NonNumericColumnError):
        scorer.update(bad)
    assert scorer.dropped_ == 0  # ... so its late row 5 was not dropped either
    scorer.update(frame.iloc[[5, 31]])
    assert scorer.dropped_ == 1


@pytest.mark.parametrize("name", STREAMABLE)
def test_the_fingerprint_survives_save_and_load(name, tmp_path):
    import tsdiff

    det = fitted(name)
    det.save(tmp_path / "m")
    assert StreamScorer(tsdiff.load(tmp_path / "m")).fingerprint == StreamScorer(det).fingerprint


def test_an_adapting_threshold_follows_a_drifting_stream():
    """The threshold refitted on recent scores follows them: a slow rise of the noise
    moves the threshold up instead of paging on every row; a jump is still flagged."""
    import warnings

    from tsdiff import PCADetector
    from tsdiff.errors import DriftWarning

    det = PCADetector().fit(make_frame(800, 4, seed=0))
    test = make_frame(3000, 4, seed=5)
    rng = np.random.default_rng(5)
    test += np.linspace(0.0, 1.0, 3000)[:, None] * rng.standard_normal((3000, 4))  # noise grows
    test.iloc[2500:2505, 1] += 40.0
    fixed, adapting = StreamScorer(det), StreamScorer(det, adapt="window")
    out_fixed = pd.concat([fixed.update(test.iloc[i : i + 250]) for i in range(0, 3000, 250)])
    out_adapt = pd.concat([adapting.update(test.iloc[i : i + 250]) for i in range(0, 3000, 250)])
    assert out_fixed["label"].mean() > 0.3  # the fixed threshold pages on a third of the rows
    assert out_adapt["label"].mean() < 0.05 and adapting.threshold > 2 * det.threshold_
    assert out_adapt["label"].iloc[2500:2505].all()  # the jump still stands out
    assert (out_adapt["threshold"].diff().dropna() != 0).any()
    # batch detection says the data drifted
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det.detect(test)
    assert any(issubclass(w.category, DriftWarning) for w in caught)
    # the adapted threshold survives a snapshot
    again = StreamScorer.from_state(det, adapting.state())
    assert again.threshold == adapting.threshold


def test_an_alert_budget_follows_a_level_shift_and_survives_a_snapshot():
    """adapt="budget": a lasting shift is flagged for a few rows and then learned; a jump on top of
    it still stands out; the budget's window comes back from a snapshot."""
    from tsdiff import PCADetector

    det = PCADetector().fit(make_frame(800, 4, seed=0))
    test = make_frame(3000, 4, seed=6)
    test.iloc[1000:, 2] += 12.0  # a new normal from row 1000
    test.iloc[2500:2505, 1] += 60.0
    fixed, budget = StreamScorer(det), StreamScorer(det, adapt="budget")
    out_fixed = pd.concat([fixed.update(test.iloc[i : i + 250]) for i in range(0, 3000, 250)])
    out_budget = pd.concat([budget.update(test.iloc[i : i + 1000]) for i in range(0, 2000, 1000)])
    again = StreamScorer.from_state(det, budget.state())
    assert again.threshold == budget.threshold
    out_budget = pd.concat([out_budget, again.update(test.iloc[2000:]), again.flush()])
    assert out_fixed["label"].iloc[1200:].mean() > 0.9  # the fixed threshold pages on every row
    assert out_budget["label"].iloc[1000:1003].all()  # the shift is flagged when it comes
    assert out_budget["label"].iloc[1200:2500].mean() < 0.04  # then learned
    assert out_budget["label"].iloc[2500:2505].all()  # the jump still stands out
    # the alerting adapted, but the model is stale: the drift check judges its own threshold
    assert again.incidents.drifting and fixed.incidents.drifting


def test_a_model_taking_over_at_the_end_of_a_stream_loses_no_row():
    """A hand-over (a refitted model): the old scorer finalises its rows, the new one is warmed
    with the old one's buffer; a row it receives just before the stream ends is still scored."""
    from tsdiff.registry import build

    frame = make_frame(520, 4, seed=3)
    det = build("causal", "tiny", smooth=16, smooth_ahead=3).fit(frame.iloc[:400])
    old = StreamScorer(det)
    emitted = [old.update(frame.iloc[400:500]), old.flush()]
    new = StreamScorer(det)
    new.warm(old.buffered_frame())
    assert len(old.buffered_frame()) >= new.min_rows
    emitted += [new.update(frame.iloc[500:501]), new.flush()]
    rows = pd.concat(emitted)
    assert list(rows.index) == list(frame.index[400:501])

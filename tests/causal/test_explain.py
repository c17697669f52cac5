"""Incident explanations: calibrated evidence, causal roles, event merging, and `tsdiff explain`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tsdiff import CausalDetector
from tsdiff.causal.explain import (
    ROLE_COLOURS,
    ROLE_EXPLAINED,
    ROLE_ORIGIN,
    ROLE_UNEXPLAINED,
    TAIL,
    TAIL_Z,
    calibrated_spread,
    explain_rows,
    lag_ancestry,
)
from tsdiff.cli import EXIT_BAD_INPUT, EXIT_OK, main
from tsdiff.datasets import make_synthetic
from tsdiff.errors import ParameterError
from tsdiff.results import event_slices


# ----------------------------------------------------------------- calibration
@pytest.mark.parametrize(
    "draw",
    [
        lambda rng, n: rng.standard_normal(n),
        lambda rng, n: rng.standard_t(3, n),  # heavy tails: the MAD alone under-states them
        lambda rng, n: np.where(rng.random(n) < 0.9, 0.0, rng.exponential(1.0, n)),  # sparse: MAD 0
    ],
)
def test_calibrated_spread_gives_every_metric_the_same_rarity(draw):
    rng = np.random.default_rng(0)
    held, fresh = draw(rng, 20000)[:, None], draw(rng, 200000)[:, None]
    spread = calibrated_spread(held, floor=1e-6)
    share = float(np.mean(np.abs(fresh) / spread > TAIL_Z))
    assert 0.5 * TAIL <= share <= 1.5 * TAIL


def test_calibrated_spread_floor_and_missing_columns():
    values = np.column_stack([np.zeros(100), np.full(100, np.nan)])
    assert calibrated_spread(values, floor=0.05).tolist() == [0.05, 0.05]


@pytest.fixture(scope="module")
def normal_fit():
    data = make_synthetic(n_metrics=6, n_rows=8000, random_state=5, noise=0.3, n_anomalies=0)
    det = CausalDetector(random_state=0).fit(data.train)
    return det, data


def test_violated_share_on_normal_rows_is_near_its_target(normal_fit):
    det, data = normal_fit
    # rows never seen in training, all normal
    evidence = det.score_scaled(det.scaler_.transform(data.test.to_numpy())).evidence
    k = det.n_features_in_
    violated = float(np.mean(evidence[det.lag_ :, :k] > det.violation_level))
    deviating = float(np.mean(evidence[:, k : 2 * k] > det.deviation_level_))
    # the level 3 on a Gaussian-equivalent scale: 0.27 % of cells; the old fixed scale gave 5-9 %
    assert 0.0005 <= violated <= 0.015
    assert deviating <= 0.015


@pytest.mark.parametrize("constant_metrics", ["deviation", "ignore"])
def test_a_metric_constant_in_training_deviates_but_never_violates(constant_metrics):
    rng = np.random.default_rng(1)
    n = 1500
    a = np.sin(np.arange(n) / 15) + 0.1 * rng.standard_normal(n)
    frame = pd.DataFrame({"a": a, "b": 2 * a + 0.1 * rng.standard_normal(n), "flat": np.ones(n)})
    det = CausalDetector(constant_metrics=constant_metrics, random_state=0).fit(frame.iloc[:1000])
    test = frame.iloc[1000:].copy()
    test.iloc[200:230, 2] = 5.0
    flat = det.detect(test).feature_scores["flat"]
    if constant_metrics == "ignore":
        assert (flat == 0).all()
    else:  # its deviation is its score: the jump is flagged
        assert flat.iloc[205:225].min() > 10 and flat.iloc[:150].max() == 0
    explanation = det.rank_causes(test, test.index[200], test.index[229])
    assert explanation.affected[0] == "flat"
    row = explanation.table.set_index("metric").loc["flat"]
    assert row["violation"] == 0 and row["deviation"] > 3 and row["direction"] == "up"
    assert row["role"] == ROLE_UNEXPLAINED


# ----------------------------------------------------------------- roles on a hand-built graph
NAMES = ["a", "b", "c", "d", "e"]
# a -> b at lag 1, b -> c at lag 0; d alone; e is a duplicate of a; c - d same-time, unoriented
EDGES = [(0, 1, 1, True), (1, 2, 0, True), (2, 3, 0, False), (3, 2, 0, False)]


def test_lag_ancestry_follows_oriented_paths_only():
    d = lag_ancestry(EDGES, 5)
    assert d[0, 1] == 1 and d[0, 2] == 1 and d[1, 2] == 0
    assert np.isinf(d[1, 0]) and np.isinf(d[2, 3]) and np.isinf(d[3, 2]) and np.isinf(d[0, 0])


def _evidence(onsets: dict[int, int], violated: set[int], n: int = 60, k: int = 5):
    """Violation and deviation rows: metric j deviates (z 6) from its onset on; the violated ones
    also break their mechanism there."""
    violation, deviation = np.zeros((n, k)), np.zeros((n, k))
    for j, t in onsets.items():
        deviation[t:, j] = 6.0
        if j in violated:
            violation[t : t + 4, j] = 8.0
    return violation, deviation


def _explain(violation, deviation, event=slice(20, 50), duplicate_of=None):
    return explain_rows(
        violation,
        deviation,
        deviation,
        event,
        NAMES,
        lag_ancestry(EDGES, 5),
        duplicate_of or {},
        3.0,
        np.full(5, 3.0),
        lookback=10,
    )


def test_origin_first_then_its_effects_explained_at_the_path_lag():
    violation, deviation = _evidence({0: 20, 1: 21, 2: 21, 4: 20}, violated={0, 2})
    e = _explain(violation, deviation, duplicate_of={4: 0})
    table = e.table.set_index("metric")
    assert e.root_causes[0] == "a" and table.loc["a", "role"] == ROLE_ORIGIN
    assert table.loc["b", ["role", "explained_by", "lag"]].tolist() == [ROLE_EXPLAINED, "a", 1.0]
    # c's mechanism broke too, but a reached it through b within its onset: explained, not an origin
    assert table.loc["c", ["role", "explained_by", "lag"]].tolist() == [ROLE_EXPLAINED, "a", 1.0]
    assert table.loc["e", ["role", "explained_by", "lag"]].tolist() == [ROLE_EXPLAINED, "a", 0.0]
    assert "d" not in table.index and e.affected[-1] == "d"
    assert table.loc["b", "onset"] == 21 and table.loc["a", "onset"] == 20


def test_an_effect_that_starts_too_early_is_not_explained_by_its_ancestor():
    # b moved 5 rows before a: a (lag 1 upstream) cannot have caused it
    violation, deviation = _evidence({0: 25, 1: 20}, violated={0, 1})
    table = _explain(violation, deviation).table.set_index("metric")
    assert table.loc["b", "role"] == ROLE_ORIGIN and table.loc["a", "role"] == ROLE_ORIGIN


def test_a_deviation_with_an_intact_mechanism_and_no_cause_is_unexplained():
    violation, deviation = _evidence({3: 22, 0: 30}, violated={0})
    e = _explain(violation, deviation)
    table = e.table.set_index("metric")
    assert table.loc["d", "role"] == ROLE_UNEXPLAINED and table.loc["a", "role"] == ROLE_ORIGIN
    assert e.root_causes[:2] == ["a", "d"]  # origins (broken mechanisms) before unexplained moves


def test_unoriented_and_cyclic_edges_never_make_two_metrics_explain_each_other():
    edges = [(0, 1, 0, True), (1, 0, 1, True)]  # a -> b now, b -> a a row later
    violation, deviation = _evidence({0: 20, 1: 20}, violated={0, 1}, k=2)
    e = explain_rows(
        violation,
        deviation,
        deviation,
        slice(20, 40),
        ["a", "b"],
        lag_ancestry(edges, 2),
        {},
        3.0,
        np.full(2, 3.0),
        lookback=5,
    )
    roles = dict(zip(e.table["metric"], e.table["role"], strict=True))
    assert roles == {"a": ROLE_ORIGIN, "b": ROLE_EXPLAINED}


def test_explanation_text_dot_and_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from tsdiff.causal.graph import CausalGraph

    graph = CausalGraph(
        pd.DataFrame(
            [("a", "b", 1, 0.8, True), ("b", "c", 0, 0.5, True), ("c", "d", 0, 0.2, False)],
            columns=["cause", "effect", "lag", "strength", "oriented"],
        ),
        NAMES,
    )
    violation, deviation = _evidence({0: 20, 1: 21, 2: 21}, violated={0})
    e = explain_rows(
        violation,
        deviation,
        -deviation,
        slice(20, 50),
        NAMES,
        lag_ancestry(EDGES, 5),
        {},
        3.0,
        np.full(5, 3.0),
        lookback=10,
        graph=graph,
    )
    text = e.to_text()
    assert "root causes: a" in text and "explained by a at lag 1" in text and "down" in text
    dot = e.to_dot()
    assert '"a" -> "b" [label="1 / 0.80"]' in dot and '"d"' not in dot
    assert list(e.graph.metrics) == ["a", "b", "c"]
    ax = e.plot()
    ax.figure.savefig(tmp_path / "event.png")
    assert (tmp_path / "event.png").stat().st_size > 1000
    boxes = {t.get_text(): t for t in ax.texts if t.get_bbox_patch() is not None}
    assert set(boxes) == {"a", "b", "c"}
    assert boxes["a"].get_position()[1] > boxes["b"].get_position()[1] > boxes["c"].get_position()[1]
    assert boxes["a"].get_fontweight() == "bold"  # the origin candidate
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(ROLE_COLOURS)
    few = e.plot(max_metrics=2)
    assert "; 1 more metrics in the table" in few.get_title()
    assert len([t for t in few.texts if t.get_bbox_patch() is not None]) == 2
    assert json.loads(json.dumps(e.to_dict()))["root_causes"][0] == "a"


# ----------------------------------------------------------------- events
def test_event_slices_merge_close_runs_and_drop_short_ones():
    flags = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1])
    assert event_slices(flags, merge_gap=0, min_rows=1) == [
        slice(1, 3),
        slice(5, 6),
        slice(10, 11),
        slice(12, 16),
    ]
    assert event_slices(flags, merge_gap=2, min_rows=1) == [slice(1, 6), slice(10, 16)]
    assert event_slices(flags, merge_gap=0, min_rows=3) == [slice(12, 16)]
    assert event_slices(flags, merge_gap=4, min_rows=1) == [slice(1, 16)]
    with pytest.raises(ParameterError, match="merge_gap"):
        event_slices(flags, merge_gap=-1)
    with pytest.raises(ParameterError, match="min_rows"):
        event_slices(flags, min_rows=0)


@pytest.fixture(scope="module")
def incident():
    data = make_synthetic(n_metrics=6, n_rows=6000, random_state=2, noise=0.3)
    return CausalDetector(random_state=0).fit(data.train), data


def test_detect_merges_events_and_explains_each(incident):
    det, data = incident
    raw = det.detect(data.test, merge_gap=0, min_rows=1)
    merged = det.detect(data.test)
    assert 0 < len(merged.events) <= len(raw.events)
    assert len(merged.explanations) == len(merged.events)
    for ev, ex in zip(merged.events.itertuples(), merged.explanations, strict=True):
        assert ev.root_causes == ex.root_causes and (ev.start, ev.end) == (ex.start, ex.end)
        assert ev.n_flagged <= ev.n_rows and ev.n_rows >= 3
    assert merged.explain(-1) is merged.explanations[-1]
    with pytest.raises(ParameterError, match="event must be"):
        merged.explain(len(merged.events))
    # rank_causes over an event's rows gives that event's explanation
    first = merged.explanations[0]
    again = det.rank_causes(data.test, first.start, first.end)
    assert again.root_causes == first.root_causes and again.affected == first.affected


def test_detectors_without_a_causal_model_have_no_explanations():
    from tsdiff import PCADetector

    data = make_synthetic(n_metrics=4, n_rows=2000, random_state=0)
    result = PCADetector().fit(data.train).detect(data.test)
    assert result.explanations is None
    with pytest.raises(ParameterError, match="no causal model"):
        result.explain(0)
    with pytest.raises(ParameterError, match="no causal model"):
        PCADetector().fit(data.train).rank_causes(data.test)


def test_explanations_survive_save_and_load(incident, tmp_path):
    import tsdiff

    det, data = incident
    det.save(tmp_path / "m")
    back = tsdiff.load(tmp_path / "m")
    a, b = det.detect(data.test), back.detect(data.test)
    assert [e.root_causes for e in a.explanations] == [e.root_causes for e in b.explanations]
    pd.testing.assert_frame_equal(a.explanations[0].table, b.explanations[0].table)


# ----------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, incident):
    det, data = incident
    root = tmp_path_factory.mktemp("explain")
    det.save(root / "model")
    data.test.rename_axis("time").to_csv(root / "test.csv")
    return root


def test_explain_cli_lists_events_then_explains_one(cli_files, capsys):
    model, test = str(cli_files / "model"), str(cli_files / "test.csv")
    assert main(["explain", model, test]) == EXIT_OK
    listing = capsys.readouterr().out
    assert "explain one with --event N" in listing and "root causes:" in listing
    png, dot = cli_files / "event.png", cli_files / "event.dot"
    assert main(["explain", model, test, "--event", "0", "--plot", str(png), "--dot", str(dot)]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("event ") and "role" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and dot.read_text().startswith('digraph "event"')
    assert main(["explain", model, test, "--event", "0", "--json"]) == EXIT_OK
    record = json.loads(capsys.readouterr().out)
    assert record["root_causes"] and len(record["affected"]) == 6


def test_explain_cli_by_time_range(cli_files, incident, capsys):
    _, data = incident
    r = data.root_causes.iloc[0]
    start, end = data.test.index[r.start], data.test.index[r.end - 1]
    args = [
        "explain",
        str(cli_files / "model"),
        str(cli_files / "test.csv"),
        "--start",
        str(start),
        "--end",
        str(end),
    ]
    assert main(args) == EXIT_OK
    assert f"event {start} .. {end}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--event", "999"], "event must be an integer"),
        (["--start", "2024-01-01"], "--start and --end go together"),
        (["--start", "yesterday-ish", "--end", "2024-01-02"], "is not a time"),
        (["--start", "1990-01-01", "--end", "1990-01-02"], "no rows between"),
    ],
)
def test_explain_cli_bad_requests_exit_2_with_one_line(cli_files, capsys, extra, message):
    args = ["explain", str(cli_files / "model"), str(cli_files / "test.csv"), *extra]
    assert main(args) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_explain_cli_refuses_a_model_without_causes(tmp_path, capsys):
    data = make_synthetic(n_metrics=3, n_rows=1000, random_state=0)
    main(["fit", "-o", str(tmp_path / "pca"), "--detector", "pca", _csv(data.train, tmp_path / "train.csv")])
    assert main(["explain", str(tmp_path / "pca"), _csv(data.test, tmp_path / "test.csv")]) == EXIT_BAD_INPUT
    assert "no causal model" in capsys.readouterr().err


def _csv(frame: pd.DataFrame, path) -> str:
    frame.rename_axis("time").to_csv(path)
    return str(path)


def test_dot_escapes_prometheus_names_and_an_empty_stretch_names_no_cause():
    import re

    names = ['x{instance="a",job="b"}', 'y{path="C:\\\\tmp"}', "z", "w", "v"]
    violation, deviation = _evidence({0: 20, 1: 21}, violated={0})
    e = explain_rows(
        violation, deviation, deviation, slice(20, 50), names, lag_ancestry(EDGES, 5), {}, 3.0,
        np.full(5, 3.0), lookback=10,
    )  # fmt: skip
    dot = e.to_dot()
    # every quoted string closes on its line: no quote inside a name ends it early
    quoted = re.compile(r'"(?:[^"\\]|\\.)*"')
    for line in dot.splitlines():
        assert '"' not in quoted.sub("", line), line
    assert '"x{instance=\\"a\\",job=\\"b\\"}"' in dot
    # a stretch with no evidence at all (no data): nothing is named as its cause
    empty = np.full((60, 5), np.nan)
    nothing = explain_rows(
        empty, empty, empty, slice(20, 50), names, lag_ancestry(EDGES, 5), {}, 3.0, np.full(5, 3.0),
        lookback=10,
    )  # fmt: skip
    assert nothing.root_causes == [] and len(nothing.affected) == 5
    assert "digraph" in nothing.to_dot()


def test_rank_causes_of_rows_without_values_is_refused(normal_fit):
    det, data = normal_fit
    frame = data.test.iloc[:120].copy()
    frame.iloc[40:60] = np.nan
    with pytest.raises(ParameterError, match="hold no values"):
        det.rank_causes(frame, frame.index[40], frame.index[59])

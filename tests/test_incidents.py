"""Incidents: opening, merging, cooldown, no-data rows, splitting by blame, drift, and agreement
with batch events (spans and explanations)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tsdiff.incidents import IncidentTracker, alertmanager_alert
from tsdiff.segmentation import EventSegmenter, SegmentRules, segment_rows

TIME_ONLY = {"near_top": 0, "far_top": 0, "bridge": 0}


def _feed(tracker, labels, blames=None, start="2024-01-01"):
    times = pd.date_range(start, periods=len(labels), freq="min")
    changes = []
    for i, (t, label) in enumerate(zip(times, labels, strict=True)):
        score = 0.0 if label is None or label != label else float(label) * 5
        blame = None if blames is None else blames[i]
        changes += [(kind, t, inc.id) for kind, inc in tracker.update(t, score, label, blame)]
    return times, changes


def test_open_merge_cooldown_and_no_data_rows():
    nan = float("nan")
    labels = [0, 1, 0, 1, 1, 0, 0, nan, nan, 0, 1, 0, 0, 0, 0, 1, 0]
    tracker = IncidentTracker(rules=SegmentRules(min_rows=3, merge_gap=2, **TIME_ONLY))
    times, changes = _feed(tracker, labels)
    # rows 1..4 span 4 rows with one quiet row between flags: opens at row 3 (span 3)
    assert changes[0] == ("opened", times[3], 1)
    # two quiet rows, two no-data rows (neutral), one quiet row: the third quiet row resolves it
    assert changes[1] == ("resolved", times[9], 1)
    # row 10 alone spans 1 row: never opens; row 15 alone neither
    assert len(changes) == 2 and tracker.open_incident is None


def test_an_incident_keeps_its_peak_and_ends_at_its_last_flag():
    tracker = IncidentTracker(rules=SegmentRules(min_rows=1, merge_gap=1, **TIME_ONLY))
    t = pd.date_range("2024-01-01", periods=4, freq="min")
    tracker.update(t[0], 2.0, 1)
    tracker.update(t[1], 9.0, 1)
    tracker.update(t[2], 3.0, 1)
    incident = tracker.open_incident
    assert incident.peak_time == t[1] and incident.peak_score == 9.0
    incident.root_causes = ["b", "a"]
    alert = alertmanager_alert(incident, {"model": "m"})
    assert alert["labels"] == {"alertname": "TsdiffAnomaly", "incident": "1", "model": "m"}
    assert alert["startsAt"] == "2024-01-01T00:00:00.000000Z" and "endsAt" not in alert
    assert alert["annotations"]["root_causes"] == "b, a"
    tracker.update(t[3], 0.0, 0)
    resolved = tracker.update(t[3] + pd.Timedelta("1min"), 0.0, 0)
    assert resolved == [("resolved", incident)] and incident.resolved_at == t[3] + pd.Timedelta("1min")
    assert alertmanager_alert(incident)["endsAt"] == "2024-01-01T00:02:00.000000Z"  # its last flag


def test_runs_that_blame_other_metrics_are_separate_incidents():
    a, b = np.array([1.0, 0.1, 0.0]), np.array([0.0, 0.1, 1.0])
    rules = SegmentRules(min_rows=2, merge_gap=10, bridge=1, near_gap=10, near_top=1, probe=2)
    # a run on metric a, 4 quiet rows, a run on metric c: within merge_gap but not the same top metric
    labels = [1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0]
    blames = [a, a, a, None, None, None, None, b, b, b, None]
    assert segment_rows(labels, blames, rules) == [slice(0, 3), slice(7, 10)]
    # the same blame across the gap: one event; a one-row dip (within bridge): one event whatever
    assert segment_rows(labels, [a] * 11, rules) == [slice(0, 10)]
    dip = [1, 1, 1, 0, 1, 1, 1]
    assert segment_rows(dip, [a, a, a, None, b, b, b], rules) == [slice(0, 7)]
    # a probed run shorter than `probe` is decided when it ends, by its own rows
    short = [1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1]
    assert segment_rows(short, [a, a, a, None, None, None, b, None, None, b, b], rules) == [
        slice(0, 3),
        slice(6, 11),
    ]
    # beyond merge_gap: separate events even with the same blame; the rule of time alone merges
    assert segment_rows([1, 1, 0, 0, 0, 1, 1], [a] * 7, SegmentRules(merge_gap=2, min_rows=1)) == [
        slice(0, 2),
        slice(5, 7),
    ]
    assert segment_rows(labels, blames, SegmentRules.time_only(10, 2)) == [slice(0, 10)]
    # the far tier is stricter: after a long gap only the first metrics must agree
    c = np.array([0.9, 1.0, 0.0])  # top 3 shares a with the event; its top 1 (b) does not
    tiers = SegmentRules(min_rows=1, merge_gap=20, bridge=0, near_gap=3, near_top=3, far_top=1, probe=1)
    near, far = [1, 0, 0, 1], [1] + [0] * 6 + [1]
    assert segment_rows(near, [a, None, None, c], tiers) == [slice(0, 4)]
    assert segment_rows(far, [a, *[None] * 6, c], tiers) == [slice(0, 1), slice(7, 8)]
    tracker = IncidentTracker(rules=rules)
    _, changes = _feed(tracker, labels, blames)
    assert [(kind, i) for kind, _, i in changes] == [("opened", 1), ("resolved", 1), ("opened", 2)]


def test_the_segmenter_state_round_trips_mid_probe():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    rules = SegmentRules(min_rows=1, merge_gap=5, bridge=0, near_gap=5, near_top=1, probe=3)
    whole, halves = EventSegmenter(rules), EventSegmenter(rules)
    flags = [1, 1, 0, 1, 1, 1, 0]
    blames = [a, a, None, b, b, b, None]
    closed_whole, closed_halves = [], []
    for i, (flag, blame) in enumerate(zip(flags, blames, strict=True)):
        closed_whole += [(s.start, s.last_flag) for s in whole.update(i, bool(flag), blame)]
        if i == 4:  # two rows into the probed run: save, restore into a fresh segmenter
            state = json.loads(json.dumps(halves.state()))
            halves = EventSegmenter(rules)
            halves.restore(state)
        closed_halves += [(s.start, s.last_flag) for s in halves.update(i, bool(flag), blame)]
    assert closed_whole == closed_halves == [(0, 1)]


def test_drift_is_reported_when_far_more_rows_are_flagged_than_the_risk():
    tracker = IncidentTracker(risk=1e-3, drift_window=200, drift_factor=20)
    _feed(tracker, [0] * 200)
    assert not tracker.drifting and tracker.flagged_share == 0
    _feed(tracker, ([1] + [0] * 9) * 20)  # 10 % of rows flagged: 100 x the risk
    assert tracker.drifting and tracker.flagged_share == pytest.approx(0.1)


def test_state_round_trip_continues_the_same_incident():
    a = IncidentTracker(min_rows=2, merge_gap=3)
    _feed(a, [1, 1, 0])
    b = IncidentTracker(min_rows=2, merge_gap=3)
    b.restore(json.loads(json.dumps(a.state())))
    assert b.open_incident is not None and b.open_incident.to_dict() == a.open_incident.to_dict()
    t = pd.Timestamp("2024-01-01 00:03")
    assert [k for k, _ in a.update(t, 5.0, 1)] == [k for k, _ in b.update(t, 5.0, 1)]


@pytest.mark.parametrize("detector", ["causal", "pca"])
def test_incidents_of_a_stream_are_the_events_of_the_batch(detector):
    """Spans, peaks and rankings (a causal model's explanation) of every incident of a stream,
    row by row, equal those of the batch events over the same rows."""
    from tsdiff import CausalDetector, PCADetector
    from tsdiff.datasets import make_synthetic
    from tsdiff.stream import StreamScorer

    data = make_synthetic(n_metrics=6, n_rows=8000, random_state=2, noise=0.3)
    model = CausalDetector(random_state=0) if detector == "causal" else PCADetector()
    det = model.fit(data.train)
    result = det.detect(data.test)
    scorer = StreamScorer(det)
    incidents = []
    for start in range(0, len(data.test), 397):  # uneven updates
        scorer.update(data.test.iloc[start : start + 397])
        incidents += [inc for kind, inc in scorer.changes if kind == "resolved"]
    scorer.flush()
    incidents += [inc for kind, inc in scorer.changes if kind == "resolved"]
    incidents += [inc for kind, inc in scorer.incidents.close() if kind == "resolved"]
    events = result.events
    assert len(events) > 1
    assert [(i.start, i.end) for i in incidents] == list(zip(events["start"], events["end"], strict=True))
    assert [i.peak_time for i in incidents] == list(events["peak"])
    assert [i.top_metrics for i in incidents] == list(events["top_metrics"])
    assert [i.root_causes for i in incidents] == list(events["root_causes"])
    assert [i.affected for i in incidents] == list(events["affected"])
    k = det.n_features_in_
    assert all(len(r) == k for r in events["affected"])  # complete rankings
    if detector == "causal":
        assert all(len(r) == k for r in events["root_causes"])


def test_stream_incidents_writes_alertmanager_alerts(tmp_path):
    from tsdiff.cli import main

    from tests.helpers import make_frame

    make_frame(300, 3, seed=0).to_csv(tmp_path / "train.csv")
    main(["fit", str(tmp_path / "train.csv"), "-o", str(tmp_path / "m"), "--detector", "pca"])
    test = make_frame(400, 3, seed=1)
    test.iloc[100:110, 1] += 10.0
    proc = subprocess.run(
        [sys.executable, "-m", "tsdiff.cli", "stream", str(tmp_path / "m"), "--incidents"],
        input=test.to_csv(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    alerts = [json.loads(x) for x in proc.stdout.splitlines()]
    assert alerts and all(a["labels"]["alertname"] == "TsdiffAnomaly" for a in alerts)
    opened = {a["labels"]["incident"]: a for a in alerts if "endsAt" not in a}
    resolved = [a for a in alerts if "endsAt" in a]
    assert opened and all(a["labels"]["incident"] in opened for a in resolved)
    times = pd.to_datetime([a["startsAt"] for a in opened.values()])
    assert (times <= pd.Timestamp("2024-01-01T01:40Z")).any()  # the jump at row 100 (01:40) is in one
    assert np.all([a["startsAt"].endswith("Z") for a in alerts])
    assert any(a["annotations"]["root_causes"].startswith("m1") for a in alerts)  # names the metric


@pytest.mark.parametrize(
    ("value", "step", "rows"),
    [(12, None, 12), ("12", None, 12), ("30m", 15.0, 120), ("10s", 15.0, 1), (pd.Timedelta("1h"), 60.0, 60)],
)
def test_a_gap_is_rows_or_a_duration(value, step, rows):
    from tsdiff.segmentation import SegmentRules, rows_in

    assert rows_in(value, step, "merge_gap") == rows
    rules = SegmentRules().with_merge_gap(value, step)
    assert rules.merge_gap == rows and rules.bridge <= rows and rules.near_gap <= rows


@pytest.mark.parametrize(
    ("value", "step", "message"), [("30m", None, "--freq"), ("soon", 60.0, "a duration such as")]
)
def test_a_gap_that_is_no_rows_is_refused(value, step, message):
    from tsdiff.errors import ParameterError
    from tsdiff.segmentation import rows_in

    with pytest.raises(ParameterError, match=message):
        rows_in(value, step, "merge_gap")

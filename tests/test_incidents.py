"""Incidents: opening, merging, cooldown, no-data rows, drift, and agreement with batch events."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tsdiff.incidents import IncidentTracker, alertmanager_alert


def _feed(tracker, labels, start="2024-01-01"):
    times = pd.date_range(start, periods=len(labels), freq="min")
    changes = []
    for t, label in zip(times, labels, strict=True):
        score = 0.0 if label is None or label != label else float(label) * 5
        changes += [(kind, t, inc.id) for kind, inc in tracker.update(t, score, label, ["m1"])]
    return times, changes


def test_open_merge_cooldown_and_no_data_rows():
    nan = float("nan")
    labels = [0, 1, 0, 1, 1, 0, 0, nan, nan, 0, 1, 0, 0, 0, 0, 1, 0]
    tracker = IncidentTracker(min_rows=3, merge_gap=2)
    times, changes = _feed(tracker, labels)
    # rows 1..4 span 4 rows with one quiet row between flags: opens at row 3 (span 3)
    assert changes[0] == ("opened", times[3], 1)
    # two quiet rows, two no-data rows (neutral), one quiet row: the third quiet row resolves it
    assert changes[1] == ("resolved", times[9], 1)
    # row 10 alone spans 1 row: never opens; row 15 alone neither
    assert len(changes) == 2 and tracker.open_incident is None


def test_an_incident_keeps_its_peak_and_the_root_causes_there():
    tracker = IncidentTracker(min_rows=1, merge_gap=1)
    t = pd.date_range("2024-01-01", periods=4, freq="min")
    tracker.update(t[0], 2.0, 1, ["a"])
    tracker.update(t[1], 9.0, 1, ["b", "a"])
    tracker.update(t[2], 3.0, 1, ["c"])
    incident = tracker.open_incident
    assert incident.peak_time == t[1] and incident.peak_score == 9.0 and incident.root_causes == ["b", "a"]
    alert = alertmanager_alert(incident, {"model": "m"})
    assert alert["labels"] == {"alertname": "TsdiffAnomaly", "incident": "1", "model": "m"}
    assert alert["startsAt"] == "2024-01-01T00:00:00.000000Z" and "endsAt" not in alert
    assert alert["annotations"]["root_causes"] == "b, a"
    tracker.update(t[3], 0.0, 0)
    tracker.update(t[3] + pd.Timedelta("1min"), 0.0, 0)
    assert alertmanager_alert(incident)["endsAt"] == "2024-01-01T00:04:00.000000Z"


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


def test_incidents_of_a_stream_are_the_events_of_the_batch():
    from tsdiff import CausalDetector
    from tsdiff.datasets import make_synthetic
    from tsdiff.results import EVENT_MERGE_GAP, EVENT_MIN_ROWS

    data = make_synthetic(n_metrics=6, n_rows=8000, random_state=2, noise=0.3)
    det = CausalDetector(random_state=0).fit(data.train)
    result = det.detect(data.test)
    tracker = IncidentTracker(min_rows=EVENT_MIN_ROWS, merge_gap=EVENT_MERGE_GAP)
    incidents = []
    for t, score, label in zip(result.scores.index, result.scores, result.labels, strict=True):
        incidents += [inc for kind, inc in tracker.update(t, score, label) if kind == "opened"]
    spans = [(inc.start, inc.last_flag) for inc in incidents]
    assert len(spans) > 0 and spans == list(zip(result.events["start"], result.events["end"], strict=True))


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

"""Incidents posted to Alertmanager: the array its API takes, open alerts re-sent, failures
survived; and ``tsdiff stream --alertmanager`` paging through Debian's prometheus-alertmanager."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import pandas as pd
import pytest

from tsdiff.alerting import AlertmanagerPoster
from tsdiff.errors import ParameterError
from tsdiff.incidents import Incident

from tests.helpers import make_frame
from tests.prometheus_server import Alertmanager, Webhook, free_port, needs_alertmanager


def _incident(end=None) -> Incident:
    start = pd.Timestamp("2024-01-01 10:00", tz="UTC")
    return Incident(1, start, start, start, 9.5, top_metrics=["cpu", "mem"], end=end)


def _wait(condition, what: str, deadline: float = 30) -> None:
    until = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < until, f"waited {deadline} s for {what}"
        time.sleep(0.02)


def test_open_alerts_are_re_sent_until_resolved():
    hook = Webhook()
    try:
        with AlertmanagerPoster(hook.url.removesuffix("/hook"), {"instance": "web-1"}, resend=0.1) as poster:
            poster.update([("opened", _incident())])
            _wait(lambda: len(hook.received) >= 3, "two re-sends")
            assert all(isinstance(body, list) and len(body) == 1 for body in hook.received)  # an array
            alert = hook.received[0][0]
            assert alert["labels"] == {"alertname": "TsdiffAnomaly", "incident": "1", "instance": "web-1"}
            assert "endsAt" not in alert and alert["annotations"]["root_causes"] == "cpu, mem"
            resolved = _incident(end=pd.Timestamp("2024-01-01 10:05", tz="UTC"))
            poster.update([("resolved", resolved)])
            seen = len(hook.received)
            assert hook.received[-1][0]["endsAt"] == "2024-01-01T10:05:00.000000Z" and not poster.active
            time.sleep(0.3)
            assert len(hook.received) == seen  # nothing open: nothing re-sent
    finally:
        hook.stop()


def test_an_unreachable_alertmanager_is_logged_and_retried(caplog):
    poster = AlertmanagerPoster(f"http://127.0.0.1:{free_port()}", resend=0, timeout=2)
    with caplog.at_level(logging.WARNING, logger="tsdiff.alerting"):
        poster.update([("opened", _incident())])
        poster.update([("resolved", _incident(end=pd.Timestamp("2024-01-01 10:05", tz="UTC")))])
    assert poster.failures == 2 and len(poster.pending) == 1  # the resolution waits for a delivery
    assert "could not post 1 alert(s)" in caplog.text
    hook = Webhook()
    try:
        poster.endpoint = hook.url
        poster.close()  # the last attempt delivers it
        assert poster.pending == [] and hook.received[-1][0]["endsAt"]
    finally:
        hook.stop()
    with pytest.raises(ParameterError, match="http://"):
        AlertmanagerPoster("alertmanager:9093")


def test_stream_pages_through_alertmanager(tmp_path):
    needs_alertmanager()
    make_frame(300, 3, seed=0).to_csv(tmp_path / "train.csv")
    fit = [sys.executable, "-m", "tsdiff.cli", "-q", "fit", str(tmp_path / "train.csv"),
           "-o", str(tmp_path / "m"), "--detector", "pca"]  # fmt: skip
    assert subprocess.run(fit, capture_output=True, timeout=120).returncode == 0
    test = make_frame(200, 3, seed=1)
    test.iloc[40:50, 1] += 10.0
    lines = test.to_csv().splitlines(keepends=True)
    hook = Webhook()
    manager = Alertmanager(tmp_path / "alertmanager", hook.url)
    stream = subprocess.Popen(
        [sys.executable, "-m", "tsdiff.cli", "stream", str(tmp_path / "m"), "--incidents",
         "--merge-gap", "10", "--alertmanager", manager.url, "--label", "instance=web-1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        stream.stdin.writelines(lines[:60])  # the header and the anomaly's rows
        stream.stdin.flush()
        opened = json.loads(stream.stdout.readline())  # the incident, as posted
        assert "endsAt" not in opened

        def firing() -> list:
            return [a for body in hook.received for a in body["alerts"] if a["status"] == "firing"]

        _wait(firing, "the firing page")
        page = firing()[0]
        assert page["labels"]["instance"] == "web-1" and page["annotations"]["root_causes"].startswith("m1")
        stream.stdin.writelines(lines[60:])  # quiet rows: the incident resolves
        stream.stdin.close()
        assert stream.wait(timeout=60) == 0, stream.stderr.read()

        def resolved() -> list:
            return [a for body in hook.received for a in body["alerts"] if a["status"] == "resolved"]

        _wait(resolved, "the resolved notification")
        assert resolved()[0]["endsAt"].startswith("2024-01-01T00:49:00")  # its last flagged row
    finally:
        if stream.poll() is None:
            stream.kill()
        manager.stop()
        hook.stop()

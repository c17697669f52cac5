"""``tsdiff watch`` under the faults that need a real server: a series whose labels change (and a
named query that returns the old and the new series while they overlap), rows read only up to the
server's newest sample, a query that matches nothing, and a server that goes down and comes back
in the middle of a replay."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pandas as pd
import pytest

from tsdiff import errors
from tsdiff.baselines import PCADetector
from tsdiff.sources.prometheus import PrometheusSource
from tsdiff.watch import Watcher

from tests.prometheus_server import Exporter, PrometheusServer
from tests.sources.conftest import ROWS, START


class FlipExporter(Exporter):
    """``flip_x`` (label ``version``) and ``flip_y`` from the wall clock; :attr:`versions` are the
    versions of ``flip_x`` it serves now (a relabelled target: ``["1"]``, then both, then ``["2"]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.versions = ["1"]

    def body(self) -> bytes:
        t = time.time()
        x, y = float(np.sin(t / 3.0)), float(np.cos(t / 3.0))
        lines = [f'flip_x{{version="{v}"}} {x!r}' for v in self.versions] + [f"flip_y {y!r}"]
        return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def flip(prometheus):
    exporter = FlipExporter().start()
    prometheus.add_jobs({"flip": (exporter.target, 0.25)})
    try:
        yield exporter
    finally:
        prometheus.remove_jobs(["flip"])
        exporter.stop()


def _poll_until(prometheus, watchers, seconds: float) -> None:
    """Poll every watcher for ``seconds``."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for w in watchers:
            w.poll()
        time.sleep(0.2)


def test_a_label_change_is_reported_and_a_named_query_keeps_its_column(prometheus, flip, tmp_path):
    def samples() -> int:
        found = prometheus.query("count_over_time(flip_y[1m])")
        return int(float(found[0]["value"][1])) if found else 0

    prometheus.wait_for(lambda: samples() >= 24, "6 s of flip data", deadline=60)
    named = PrometheusSource(prometheus.url, {"x": "flip_x", "y": "flip_y"}, step="0.5s")
    labelled = PrometheusSource(prometheus.url, selector='{job="flip"}', step="0.5s")
    now = pd.Timestamp.now(tz="UTC")
    models, watchers = {}, []
    for name, source in (("named", named), ("labelled", labelled)):
        train = source.read(now - pd.Timedelta(seconds=6), now - pd.Timedelta(seconds=1))
        models[name] = PCADetector(n_components=1).fit(train)
        output = tmp_path / f"{name}.jsonl"
        watchers.append(Watcher(models[name], source, output=output, start=now))
    try:
        _poll_until(prometheus, watchers, 2.0)
        flip.versions = ["1", "2"]  # the relabelled target overlaps the old one
        _poll_until(prometheus, watchers, 3.0)
        assert watchers[0].missing == []
        flip.versions = ["2"]  # the old series ends
        _poll_until(prometheus, watchers, 3.0)
        old = next(c for c in models["labelled"].feature_names_in_ if "flip_x" in c)
        assert watchers[1].missing == [old]  # reported...
        exported = {
            (s.name, s.labels.get("column")): s.value for m in watchers[1].collect() for s in m.samples
        }
        # named without the labels every column shares (the target's instance and job)
        assert watchers[1].labels["job"] == "flip"
        assert exported[("tsdiff_series_missing", 'flip_x{version="1"}')] == 1
        assert watchers[0].missing == []  # ...while the named query follows the new series
        logged = [json.loads(x) for x in (tmp_path / "named.jsonl").read_text().splitlines()]
        assert len(logged) >= 10 and all(r["score"] is not None for r in logged)
        # the named column never had a hole: every row of x has the value the exporter served
        frame = named.read(logged[0]["time"], logged[-1]["time"], columns=["x", "y"])
        assert frame["x"].notna().all() and frame["y"].notna().all()
    finally:
        for w in watchers:
            w.close()


def test_rows_are_read_up_to_the_server_s_newest_sample_and_never_change(prometheus, tmp_path):
    def samples() -> int:
        found = prometheus.query("count_over_time(live_a[1m])")
        return int(float(found[0]["value"][1])) if found else 0

    prometheus.wait_for(lambda: samples() >= 30, "30 s of live data", deadline=90)
    source = PrometheusSource(prometheus.url, {"a": "live_a", "b": "live_b", "c": "live_c"}, step="1s")
    start = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=8)
    det = PCADetector().fit(source.read(start - pd.Timedelta(seconds=20), start - pd.Timedelta(seconds=1)))
    with Watcher(det, source, output=tmp_path / "rows.jsonl", start=start) as watcher:
        for _ in range(8):
            watcher.poll()
            newest = min(float(r["value"][1]) for r in prometheus.query("timestamp(live_a)"))
            assert watcher.next_ns - watcher.step_ns <= newest * 1e9  # nothing past the newest sample
            time.sleep(0.4)
    logged = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    frame = source.read(logged[0]["time"], logged[-1]["time"])  # the same rows, read afterwards
    np.testing.assert_allclose([r["score"] for r in logged], det.score(frame).to_numpy(), rtol=1e-9)


def test_queries_that_match_nothing_or_have_no_labels(prometheus):
    end = START + pd.Timedelta(minutes=9)
    nothing = PrometheusSource(prometheus.url, ['smd_m1{machine="1-2"}', "no_such_metric"], step="60s")
    with pytest.raises(errors.SourceError, match="query 'no_such_metric': no series between"):
        nothing.read(START, end)
    assert list(nothing.read(START, end, columns=['smd_m1{machine="1-2"}']).columns) == [
        'smd_m1{machine="1-2"}'
    ]  # a watcher: the column is missing, not an error
    scalar = PrometheusSource(prometheus.url, ["vector(1)", "time()"], step="60s").read(START, end)
    assert list(scalar.columns) == ["vector(1)", "time()"]  # named by the query, not "{}"


def test_an_outage_in_the_middle_of_a_replay_loses_and_repeats_no_row(smd_slice, tmp_path):
    server = PrometheusServer(tmp_path / "server", smd_slice)
    try:
        source = PrometheusSource(server.url, selector='{machine="1-2"}', step="60s")
        det = PCADetector().fit(source.read(START, START + pd.Timedelta(minutes=399)))
        first, last = START + pd.Timedelta(minutes=400), START + pd.Timedelta(minutes=ROWS - 1)
        files = {"state_path": tmp_path / "s.json", "output": tmp_path / "rows.jsonl"}
        watcher = Watcher(det, source, start=first, batch=5, **files)
        stop = threading.Event()
        runner = threading.Thread(target=watcher.run, args=(stop,), kwargs={"until": last, "interval": 0.05})
        runner.start()
        try:
            server.wait_for(lambda: watcher.rows_scored >= 40, "40 rows scored")
            server.stop()  # the outage
            deadline = time.monotonic() + 30
            while watcher.source_errors < 2:
                assert time.monotonic() < deadline, "the outage was not noticed"
                time.sleep(0.05)
            assert watcher.source_up == 0
            server.start()  # back on the same port
            runner.join(timeout=120)
            assert not runner.is_alive()
        finally:
            stop.set()
            runner.join(timeout=30)
            watcher.close()
    finally:
        server.stop()
    logged = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    expected = smd_slice.iloc[400:].rename(columns=lambda c: f'smd_{c}{{machine="1-2"}}')
    expected = expected[det.feature_names_in_]
    assert [pd.Timestamp(r["time"]) for r in logged] == list(expected.index)  # each row once
    np.testing.assert_allclose([r["score"] for r in logged], det.score(expected).to_numpy(), rtol=1e-9)

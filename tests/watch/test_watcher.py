"""The watcher's guarantees under faults, against a stub server (the live faults against a real
Prometheus are in tests/sources): every row logged exactly once, none invented, none lost; a second
watcher refused; a restart never deletes a line; rows without data are gaps."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from tsdiff.baselines import PCADetector
from tsdiff.errors import ParameterError, SourceError
from tsdiff.watch import Watcher

from tests.helpers import make_frame

COLUMNS = ["a", "b", "c"]


class StubServer:
    """The rows of a frame as a Prometheus source serves them: ``newest`` is the server's newest
    complete row (its clock), ``down`` makes every call fail, ``drop`` leaves columns out."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.step = frame, 60.0
        self.newest = frame.index[-1]
        self.down = False
        self.drop: list[str] = []

    def complete_until(self, delay=None) -> pd.Timestamp:
        if self.down:
            raise SourceError("cannot reach the stub", query="up")
        return self.newest

    def read(self, start, end, columns=None) -> pd.DataFrame:
        if self.down:
            raise SourceError("cannot reach the stub", query="up")
        grid = pd.date_range(start, end, freq="min")
        return self.frame.reindex(grid).drop(columns=self.drop)


@pytest.fixture(scope="module")
def model():
    return PCADetector().fit(make_frame(300, 3).set_axis(COLUMNS, axis=1))


@pytest.fixture
def server():
    frame = make_frame(120, 3, seed=1).set_axis(COLUMNS, axis=1)
    frame.index = pd.date_range("2024-06-01", periods=120, freq="min", tz="UTC")
    return StubServer(frame)


def _logged(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _watcher(model, server, tmp_path, **kwargs) -> Watcher:
    args = {"state_path": tmp_path / "state.json", "output": tmp_path / "rows.jsonl", "batch": 10}
    return Watcher(model, server, **{"start": server.frame.index[0], **args, **kwargs})


def test_a_restart_never_deletes_lines_it_did_not_write(model, server, tmp_path):
    with _watcher(model, server, tmp_path, output=None, batch=30) as first:  # a state, no log
        first.poll(until=server.frame.index[29])
    foreign = [json.dumps({"line": i}) for i in range(100)]
    (tmp_path / "rows.jsonl").write_text("\n".join(foreign) + "\n")
    with _watcher(model, server, tmp_path, batch=30) as second:  # pointed at someone's 100 lines
        second.poll(until=server.frame.index[59])
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert lines[:100] == foreign and len(lines) == 130  # kept, and the next 30 rows appended


def test_a_second_watcher_on_the_same_state_or_log_is_refused(model, server, tmp_path):
    with _watcher(model, server, tmp_path) as first:
        with pytest.raises(ParameterError, match=r"state .* is in use by another tsdiff watch"):
            _watcher(model, server, tmp_path)
        with pytest.raises(ParameterError, match=r"output .* is in use by another tsdiff watch"):
            _watcher(model, server, tmp_path, state_path=tmp_path / "other.json")
        first.poll(until=server.frame.index[9])
    with _watcher(model, server, tmp_path) as again:  # released: the next one takes over
        again.poll(until=server.frame.index[19])
    assert len(_logged(tmp_path / "rows.jsonl")) == 20


@pytest.mark.parametrize("failing_save", [1, 2])
def test_a_failed_state_save_logs_no_row_twice(model, server, tmp_path, monkeypatch, failing_save):
    import tsdiff.watch.watcher as module

    real, saves = module.write_atomic, []

    def flaky(path, text, durable=True):
        saves.append(path)
        if len(saves) == failing_save:
            raise OSError(28, "No space left on device")
        real(path, text, durable)

    monkeypatch.setattr(module, "write_atomic", flaky)
    watcher = _watcher(model, server, tmp_path)
    with pytest.raises(OSError):
        for k in range(6):
            watcher.poll(until=server.frame.index[10 * k + 9])
    watcher.close()
    monkeypatch.setattr(module, "write_atomic", real)
    with _watcher(model, server, tmp_path) as restarted:  # from the last saved state, or none
        while restarted.poll(until=server.frame.index[59]):
            pass
    times = [r["time"] for r in _logged(tmp_path / "rows.jsonl")]
    assert times == [t.isoformat() for t in server.frame.index[:60]]  # each row once, in order
    expected = model.score(server.frame.iloc[:60])
    np.testing.assert_allclose([r["score"] for r in _logged(tmp_path / "rows.jsonl")], expected, rtol=1e-9)


def test_a_line_cut_by_a_crash_is_completed_not_duplicated(model, server, tmp_path):
    with _watcher(model, server, tmp_path) as first:
        first.poll(until=server.frame.index[9])
    with open(tmp_path / "rows.jsonl", "a") as log:  # a crash in the middle of the next write
        log.write('{"time": "2024-06-01T00:10:00+00:00", "sco')
    with _watcher(model, server, tmp_path) as restarted:
        restarted.poll(until=server.frame.index[19])
    times = [r["time"] for r in _logged(tmp_path / "rows.jsonl")]
    assert times == [t.isoformat() for t in server.frame.index[:20]]


def test_rows_are_read_only_up_to_the_server_s_newest(model, server, tmp_path):
    server.newest = server.frame.index[14]  # the watcher's clock is far ahead: it does not matter
    with _watcher(model, server, tmp_path) as watcher:
        assert watcher.poll() == 10 and watcher.poll() == 5 and watcher.poll() == 0
        server.newest = server.frame.index[24]
        assert watcher.poll() == 10
    assert len(_logged(tmp_path / "rows.jsonl")) == 25


def test_rows_without_data_are_gaps_that_never_resolve_an_incident(model, server, tmp_path):
    frame = server.frame
    frame.iloc[20:26, 1] += 40.0  # an incident...
    frame.iloc[26:60] = np.nan  # ...then the target dies: no data at all
    with _watcher(model, server, tmp_path, batch=60) as watcher:
        watcher.poll(until=frame.index[59])  # caught up in one poll
        assert watcher.incidents.open_incident is not None  # a dead target is not a recovery
        assert watcher.rows_scored == 26 and watcher.rows_without_data == 34
        assert watcher.last["time"] == frame.index[25].isoformat() and watcher.last_was_gap
        samples = {s.name: s.value for m in watcher.collect() for s in m.samples if not s.labels}
    assert samples["tsdiff_no_data"] == 1 and samples["tsdiff_rows_without_data_total"] == 34
    gaps = [r for r in _logged(tmp_path / "rows.jsonl") if r["gap"]]
    assert len(gaps) == 34 and all(r["score"] is None and r["label"] is None for r in gaps)


def test_a_missing_series_is_reported_and_the_others_still_score(model, server, tmp_path, caplog):
    with _watcher(model, server, tmp_path) as watcher:
        watcher.poll(until=server.frame.index[9])
        server.drop = ["b"]
        with caplog.at_level("WARNING", logger="tsdiff.watch.watcher"):
            watcher.poll(until=server.frame.index[19])
        assert "no series for the model's column(s) ['b']" in caplog.text
        samples = {(s.name, tuple(s.labels.items())): s.value for m in watcher.collect() for s in m.samples}
        assert samples[("tsdiff_series_missing", (("column", "b"),))] == 1
        assert all(r["score"] is not None for r in _logged(tmp_path / "rows.jsonl"))
        server.drop = []
        watcher.poll(until=server.frame.index[29])
        assert not any(m.samples for m in watcher.collect() if m.name == "tsdiff_series_missing")


def test_an_outage_is_retried_and_no_row_is_skipped(model, server, tmp_path):
    import threading

    server.down = True
    with _watcher(model, server, tmp_path) as watcher:
        stop = threading.Event()
        runner = threading.Thread(target=watcher.run, args=(stop,), kwargs={"until": server.frame.index[39]})
        runner.start()
        try:
            deadline = pd.Timestamp.now() + pd.Timedelta(seconds=30)
            while watcher.source_errors < 1:
                assert pd.Timestamp.now() < deadline
                stop.wait(0.02)
            assert watcher.source_up == 0 and watcher.rows_scored == 0
            server.down = False  # back: the next retry (after 1 s) reads from where it stopped
            runner.join(timeout=30)
        finally:
            stop.set()
            runner.join(timeout=30)
        assert watcher.source_up == 1
    assert [r["time"] for r in _logged(tmp_path / "rows.jsonl")] == [
        t.isoformat() for t in server.frame.index[:40]
    ]


def test_a_relative_start_is_the_server_s_now_and_survives_a_restart(model, server, tmp_path):
    server.server_time = lambda: server.frame.index[10] + pd.Timedelta(seconds=20)
    server.newest = server.frame.index[9]  # the rows at "now" are not complete yet
    with _watcher(model, server, tmp_path, start="now") as watcher:
        assert watcher.poll() == 0 and watcher.next_ns == server.frame.index[10].value
    server.server_time = lambda: server.frame.index[50]  # restarted much later
    server.newest = server.frame.index[29]
    with _watcher(model, server, tmp_path, start="now") as restarted:
        while restarted.poll():
            pass
    assert [r["time"] for r in _logged(tmp_path / "rows.jsonl")] == [
        t.isoformat() for t in server.frame.index[10:30]
    ]


def test_a_drifting_model_is_refitted_and_swapped_in_without_losing_a_row(model, tmp_path):
    rng = np.random.default_rng(3)
    frame = make_frame(900, 3, seed=4).set_axis(COLUMNS, axis=1)
    frame.index = pd.date_range("2024-06-01", periods=900, freq="min", tz="UTC")
    frame.iloc[300:] += np.array([6.0, -4.0, 5.0]) + 0.3 * rng.standard_normal((600, 3))  # a new regime
    server = StubServer(frame)
    args = {"refit_after": "20m", "refit_window": "150m", "batch": 20}
    with _watcher(model, server, tmp_path, **args) as watcher:
        while watcher.poll(until=frame.index[-1]):
            if watcher.refitter.running:  # deterministic: the next poll swaps the new model in
                watcher.refitter.wait(timeout=60)
        watcher.finish()
        assert watcher.refitter.refits >= 1 and watcher.refitted
        assert watcher.detector is not model and (tmp_path / "state.json.model" / "config.json").exists()
        samples = {s.name: s.value for m in watcher.collect() for s in m.samples if not s.labels}
        assert samples["tsdiff_refits_total"] == watcher.refitter.refits
        assert watcher.incidents.incidents_opened >= 2  # incident ids go on across the swap
    logged = _logged(tmp_path / "rows.jsonl")
    assert [r["time"] for r in logged] == [t.isoformat() for t in frame.index]  # every row once
    labels = np.array([r["label"] for r in logged])
    assert labels[300:310].all() and labels[-300:].mean() < 0.05  # paged at once, then refitted
    with _watcher(model, server, tmp_path, **args) as restarted:  # goes on with the refitted model
        assert restarted.refitted and restarted.detector is not model
        assert type(restarted.detector) is type(model)


def test_a_scheduled_refit_swaps_a_new_model_in_without_drift(model, tmp_path):
    frame = make_frame(400, 3, seed=4).set_axis(COLUMNS, axis=1)  # no drift at all
    frame.index = pd.date_range("2024-06-01", periods=400, freq="min", tz="UTC")
    args = {"refit_every": "2h", "refit_window": "100m", "batch": 20}
    with _watcher(model, StubServer(frame), tmp_path, **args) as watcher:
        while watcher.poll(until=frame.index[-1]):
            if watcher.refitter.running:
                watcher.refitter.wait(timeout=60)
        assert watcher.refitter.refits in (2, 3) and watcher.refitted  # every 120 rows: at 120, 240, 360
        assert watcher.refitter.after is None  # the schedule alone
    logged = _logged(tmp_path / "rows.jsonl")
    assert [r["time"] for r in logged] == [t.isoformat() for t in frame.index[: len(logged)]]


def test_watch_saves_and_restores_an_adapting_threshold(model, server, tmp_path):
    with _watcher(model, server, tmp_path, adapt="dspot") as first:
        first.poll(until=server.frame.index[29])
        moved = first.scorer.threshold
    with _watcher(model, server, tmp_path, adapt="dspot") as again:
        assert again.scorer.threshold == moved and again.scorer.adapt == "dspot"
        samples = {s.name: s.value for m in again.collect() for s in m.samples if not s.labels}
        assert samples["tsdiff_threshold"] == moved


def test_a_new_watcher_warms_its_scorer_with_the_rows_before_its_first(server, tmp_path):
    # a model whose window needs 19 rows: started cold, its first rows wait for the window to fill;
    # warmed with the rows the server holds before the first, the first row is final 7 rows later
    from tsdiff.causal import CausalDetector
    from tsdiff.stream import StreamScorer

    causal = CausalDetector(max_lag=2, max_rows=500, random_state=0)
    causal.fit(make_frame(400, 3, seed=2).set_axis(COLUMNS, axis=1))
    scorer = StreamScorer(causal)
    assert scorer.min_rows > scorer.latency + 1 and scorer.warm_rows() >= scorer.min_rows
    first = server.frame.index[60]
    until = server.frame.index[60 + scorer.latency]
    out = {}
    for warm in (True, False):
        out[warm] = tmp_path / f"{warm}.jsonl"
        with Watcher(causal, server, output=out[warm], start=first, warm_start=warm) as watcher:
            watcher.poll(until=until)
    warmed = _logged(out[True])
    cold = _logged(out[False]) if out[False].exists() else []  # nothing final: nothing logged
    assert [r["time"] for r in warmed] == [first.isoformat()] and cold == []
    # the warmed score is the batch score of a series that began earlier
    rows = server.frame.iloc[60 - scorer.warm_rows() : 60 + 1 + scorer.latency]
    assert warmed[0]["score"] == pytest.approx(causal.score(rows).iloc[scorer.warm_rows()], rel=1e-9)


def test_the_merge_gap_is_a_duration_in_rows_of_the_source_step(model, server, tmp_path):
    frame = server.frame
    frame.iloc[20:26, 1] += 40.0
    with _watcher(model, server, tmp_path, batch=60, merge_gap="15min") as watcher:
        assert watcher.scorer.incidents.rules.merge_gap == 15  # one-minute rows
        watcher.poll(until=frame.index[45])  # over 15 quiet minutes after the last flag: resolved
        assert watcher.incidents.open_incident is None and watcher.incidents.incidents_opened == 1
    with _watcher(model, server, tmp_path, batch=60, state_path=tmp_path / "default.json") as watcher:
        watcher.poll(until=frame.index[45])
        assert watcher.incidents.open_incident is not None  # 120 quiet rows by default
    with pytest.raises(ParameterError, match="merge_gap must be a number of rows or a duration"):
        _watcher(model, server, tmp_path, merge_gap="soon", state_path=tmp_path / "other.json")


def test_the_grafana_dashboard_reads_only_exported_series_in_valid_promql(model, server, tmp_path):
    """The example dashboard (examples/grafana) as Grafana would load it: every panel placed and
    typed, every query valid PromQL (``promtool check rules``) over series the watcher exports."""
    import re
    import shutil
    from pathlib import Path

    from prometheus_client import CollectorRegistry, generate_latest

    from tests.prometheus_server import needs_prometheus

    root = Path(__file__).resolve().parents[2] / "examples" / "grafana"
    dashboard = json.loads((root / "tsdiff-dashboard.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels) and dashboard["uid"]
    queries = [dashboard["annotations"]["list"][0]["expr"]]
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"][
            "w"
        ] <= 24
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
            queries += [t["expr"] for t in panel["targets"]]
    frame = server.frame
    frame.iloc[20:26, 1] += 40.0  # an open incident, and a series gone: every family has a value
    server.drop = [COLUMNS[2]]
    with _watcher(model, server, tmp_path, batch=60) as watcher:
        watcher.poll(until=frame.index[30])
        registry = CollectorRegistry(auto_describe=False)
        registry.register(watcher)
        exposed = set(re.findall(r"(?m)^(tsdiff_\w+?)(?:\{| )", generate_latest(registry).decode()))
    used = {name for q in queries for name in re.findall(r"\btsdiff_\w+", q)}
    assert used and used <= exposed, used - exposed
    # every query parses: as recording rules, with the dashboard's variables filled in
    needs_prometheus()
    filled = [q.replace("$instance", ".*") for q in queries]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(filled)
    ]}]}  # fmt: skip
    (tmp_path / "rules.yml").write_text(json.dumps(rules))  # JSON is YAML
    check = subprocess.run([shutil.which("promtool"), "check", "rules", str(tmp_path / "rules.yml")],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    provider = (root / "provisioning" / "dashboards" / "tsdiff.yml").read_text()
    assert "type: file" in provider and "/var/lib/grafana/dashboards/tsdiff" in provider

"""A fleet from one real Prometheus: fitted host by host from the server (split by the ``instance``
label), then watched live: every host's final scores are the batch scores of that host's rows, a
host that disappears goes stale, a new one is reported, and a restart loses and repeats no row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdiff.errors import ParameterError

from tests.detectors import DETECTORS
from tests.helpers import make_frame
from tests.prometheus_server import PrometheusServer, needs_prometheus

START = pd.Timestamp("2024-06-01T00:00:00Z")
FIT_ROWS, ROWS = 400, 700
HOSTS = ["web-1", "web-2", "db-1"]


def _host_frame(seed: int, rows: int = ROWS) -> pd.DataFrame:
    frame = make_frame(rows, 4, seed=seed)
    frame.index = pd.date_range(START, periods=rows, freq="min")
    return frame


@pytest.fixture(scope="module")
def fleet_server(tmp_path_factory):
    """A server holding three hosts (db-1 stops at row 550) and a fourth, new one from row 450."""
    needs_prometheus()
    frames = {host: _host_frame(seed) for seed, host in enumerate(HOSTS)}
    frames["db-1"].iloc[550:] = np.nan  # the host went away
    frames["web-1"].iloc[600:606, 2] += 9.0  # an anomaly on one host only
    frames["web-9"] = _host_frame(9).iloc[450:]  # a new host
    lines: dict[str, list[str]] = {}
    for host, frame in frames.items():
        for column in frame.columns:
            name = f"fleet_{column}"
            lines.setdefault(name, [])
            for stamp, value in frame[column].items():
                if np.isfinite(value):
                    labels = f'instance="{host}",job="node"'
                    lines[name].append(f"{name}{{{labels}}} {value!r} {stamp.value // 10**9}")
    text = "".join(f"# TYPE {name} gauge\n" + "\n".join(rows) + "\n" for name, rows in lines.items())
    server = PrometheusServer(tmp_path_factory.mktemp("fleet"), text=text + "# EOF\n")
    yield server, frames
    server.stop()


def _fleet(server, detector, folder):
    from tsdiff.fleet.live import fit_fleet_from_prometheus
    from tsdiff.sources.prometheus import PrometheusSource

    source = PrometheusSource(server.url, selector='{job="node"}', step="60s")
    end = START + pd.Timedelta(minutes=FIT_ROWS - 1)
    return fit_fleet_from_prometheus(
        source, "instance", START, end, detector, folder, n_workers=1, processes=False, verbose=False
    )


def _expected(frames, host, model, first, rows):
    """The batch scores of a host's rows ``first`` .. ``first + rows``, the rows before them that
    the watcher warmed the host's scorer with included."""
    from tsdiff.stream import StreamScorer

    warm = min(first, StreamScorer(model).warm_rows())
    part = frames[host].iloc[first - warm : first + rows].copy()
    part.columns = [f'fleet_{c}{{job="node"}}' for c in part.columns]
    return model.score(part[[str(c) for c in model.feature_names_in_]]).iloc[warm:]


@pytest.mark.parametrize("name", ["pca", "causal", "kmeans", "imdiffusion-streaming"])
def test_every_host_scores_as_in_a_batch_of_its_own_rows(fleet_server, tmp_path, name):
    from tsdiff.fleet.watch import FleetWatcher

    server, frames = fleet_server
    fitted = _fleet(server, DETECTORS[name](random_state=0), tmp_path / "fleet")
    assert sorted(fitted.ok) == sorted(HOSTS)  # web-9 has no rows in the fitted range
    first = START + pd.Timedelta(minutes=FIT_ROWS)
    until = START + pd.Timedelta(minutes=549)  # before db-1 goes away
    with FleetWatcher(tmp_path / "fleet", output=tmp_path / "rows.jsonl", start=first, batch=40) as watcher:
        while watcher.poll(until=until):
            pass
        watcher.finish()
        logged = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
        for host in HOSTS:
            mine = [r for r in logged if r["entity"] == host]
            expected = _expected(frames, host, watcher.models[host], FIT_ROWS, 150)
            assert [pd.Timestamp(r["time"]) for r in mine] == list(expected.index)
            np.testing.assert_allclose([r["score"] for r in mine], expected.to_numpy(), rtol=1e-7, atol=1e-9)
        assert watcher.counts()["unmodelled"] == 1 and watcher.status["web-9"] == "unmodelled"


def test_a_host_that_goes_away_is_stale_and_a_restart_repeats_no_row(fleet_server, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from tsdiff.fleet.watch import FleetWatcher
    from tsdiff.registry import build

    server, _ = fleet_server
    _fleet(server, build("pca", "tiny"), tmp_path / "fleet")
    first = START + pd.Timedelta(minutes=FIT_ROWS)
    last = START + pd.Timedelta(minutes=ROWS - 1)
    files = {"state_path": tmp_path / "state.json", "output": tmp_path / "rows.jsonl"}
    with FleetWatcher(tmp_path / "fleet", start=first, batch=50, **files) as watcher:
        for _ in range(3):  # 150 rows, then a "kill": the next watcher goes on from the state
            watcher.poll(until=last)
    with FleetWatcher(tmp_path / "fleet", start=first, batch=50, **files) as watcher:
        while watcher.poll(until=last):
            pass
        watcher.finish()
        assert watcher.status["db-1"] == "stale" and watcher.status["web-1"] == "scored"
        text = "\n".join(f"{s.name} {s.labels} {s.value}" for f in watcher.collect() for s in f.samples)
        families = list(text_string_to_metric_families(_exposition(watcher)))
    logged = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    keys = [(r["entity"], r["time"]) for r in logged]
    assert len(keys) == len(set(keys)) == 3 * (ROWS - FIT_ROWS)  # every row of every host once
    db = [r for r in logged if r["entity"] == "db-1"]
    # gone at row 550: once Prometheus' 5-minute lookback no longer repeats its last sample (a
    # backfilled series has no staleness marker), its rows are gaps, never "normal"
    assert all(r["gap"] and r["score"] is None for r in db[156:]) and not any(r["gap"] for r in db[:150])
    web = [r for r in logged if r["entity"] == "web-1"]
    labels = np.array([r["label"] for r in web])
    assert labels[200:206].mean() > labels[:150].mean() + 0.5  # the anomaly stands out on its host
    assert "tsdiff_fleet_entities {'state': 'stale'} 1" in text
    names = {f.name for f in families}
    assert {"tsdiff_anomaly_score", "tsdiff_fleet_entities", "tsdiff_fleet_poll_duration_seconds"} <= names


def test_each_host_adapts_its_own_threshold_and_a_restart_keeps_it(fleet_server, tmp_path):
    """``adapt="budget"``: every host's threshold starts from its own (here a pooled one) and
    follows its own rows; the anomaly still stands out on its host; a restart resumes each host's
    adapted threshold from the state."""
    from tsdiff.fleet.watch import FleetWatcher
    from tsdiff.registry import build

    server, _ = fleet_server
    _fleet(server, build("pca", "tiny"), tmp_path / "fleet")
    first = START + pd.Timedelta(minutes=FIT_ROWS)
    files = {"state_path": tmp_path / "state.json", "output": tmp_path / "rows.jsonl"}
    with FleetWatcher(tmp_path / "fleet", start=first, batch=100, adapt="budget", **files) as watcher:
        watcher.poll(until=START + pd.Timedelta(minutes=ROWS - 1))
        for host in HOSTS:
            scorer = watcher.shards.scorers[host]
            assert scorer.adaptive.info_["floor"] == watcher.models[host].threshold_
            assert scorer.threshold >= watcher.models[host].threshold_
        kept = {host: watcher.shards.scorers[host].threshold for host in HOSTS}
    with FleetWatcher(tmp_path / "fleet", start=first, batch=100, adapt="budget", **files) as watcher:
        assert {host: watcher.shards.scorers[host].threshold for host in HOSTS} == kept
        while watcher.poll(until=START + pd.Timedelta(minutes=ROWS - 1)):
            pass
        watcher.finish()
    logged = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    keys = [(r["entity"], r["time"]) for r in logged]
    assert len(keys) == len(set(keys)) == 3 * (ROWS - FIT_ROWS)
    web = np.array([r["label"] for r in logged if r["entity"] == "web-1"])
    assert web[200:206].any() and web[:150].mean() < 0.05  # the anomaly, and few alarms before it


def _exposition(watcher) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(watcher)
    return generate_latest(registry).decode()


def test_scheduled_refits_take_over_host_by_host_and_a_restart_keeps_them(fleet_server, tmp_path):
    from tsdiff.fleet.watch import FleetWatcher
    from tsdiff.registry import build

    server, _ = fleet_server
    _fleet(server, build("causal", "tiny", random_state=0), tmp_path / "fleet")
    first = START + pd.Timedelta(minutes=FIT_ROWS)
    last = START + pd.Timedelta(minutes=ROWS - 1)
    files = {"state_path": tmp_path / "state.json", "output": tmp_path / "rows.jsonl"}
    options = {"start": first, "batch": 20, "refit_every": "1h", "refit_window": "5h", "merge_gap": "10m"}
    with FleetWatcher(tmp_path / "fleet", **files, **options) as watcher:
        assert watcher.shards.scorers["web-1"].incidents.rules.merge_gap == 10  # 10 minutes of 60 s rows
        for _ in range(8):  # 160 rows: refit rounds start after rows 60 and 120
            watcher.poll(until=last)
            watcher.refits.wait(timeout=120)
        assert (watcher.refits.rounds, watcher.refits.refits, watcher.refits.failures) == (2, 6, 0)
        refitted = dict(watcher.refits.paths)
        assert sorted(refitted) == sorted(HOSTS) and all(p.endswith(".2") for p in refitted.values())
        assert all(watcher.models[h].feature_names_in_ is not None for h in HOSTS)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["models"] == refitted
    folder = tmp_path / "state.json.models"
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(p).name for p in refitted.values())
    # a restart goes on with the refitted models (a scorer's state refuses any other model)
    with FleetWatcher(tmp_path / "fleet", **files, **options) as watcher:
        assert watcher.refits.paths == refitted
        while watcher.poll(until=last):
            watcher.refits.wait(timeout=120)
        watcher.finish()
        assert watcher.refits.rounds >= 4
        text = _exposition(watcher)
    logged = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    keys = [(r["entity"], r["time"]) for r in logged]
    assert len(keys) == len(set(keys)) == 3 * (ROWS - FIT_ROWS)  # no row lost or twice across swaps
    web = [r for r in logged if r["entity"] == "web-1"]
    labels = np.array([r["label"] for r in web])
    assert labels[200:206].mean() > labels[:150].mean() + 0.5  # refitted models still see the anomaly
    assert "tsdiff_refits_total" in text


def test_a_round_cut_short_by_a_kill_is_resumed_for_the_hosts_it_had_not_refitted(fleet_server, tmp_path):
    from tsdiff.fleet.watch import FleetWatcher
    from tsdiff.registry import build

    server, _ = fleet_server
    _fleet(server, build("causal", "tiny", random_state=0), tmp_path / "fleet")
    last = START + pd.Timedelta(minutes=ROWS - 1)
    files = {"state_path": tmp_path / "state.json", "output": tmp_path / "rows.jsonl"}
    options = {
        "start": START + pd.Timedelta(minutes=FIT_ROWS),
        "batch": 20,
        "refit_every": "1h",
        "refit_window": "5h",
    }
    with FleetWatcher(tmp_path / "fleet", **files, **options) as watcher:
        for _ in range(3):  # 60 rows: the first round starts
            watcher.poll(until=last)
        watcher.refits.wait(timeout=120)
        watcher.refits.ready.pop("db-1")  # as if the watcher were killed before db-1's refit ended
        watcher.poll(until=last)  # web-1 and web-2 take their refitted models; the state says db-1 is left
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["refit_pending"]["hosts"] == ["db-1"] and saved["refit_pending"]["round"] == 1
    with FleetWatcher(tmp_path / "fleet", **files, **options) as watcher:
        watcher.poll(until=last)  # resumes round 1 for db-1, on the rows the round was to read
        watcher.refits.wait(timeout=120)
        watcher.poll(until=last)
        assert watcher.refits.rounds == 1
        assert sorted(watcher.refits.paths) == sorted(HOSTS)
        assert all(p.endswith(".1") for p in watcher.refits.paths.values())
    assert json.loads((tmp_path / "state.json").read_text())["refit_pending"] is None
    logged = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    keys = [(r["entity"], r["time"]) for r in logged]
    assert len(keys) == len(set(keys))  # no row twice across the swaps and the restart


def test_refitted_models_take_over_on_the_dask_workers_that_hold_their_hosts(fleet_server, tmp_path):
    from tsdiff.fleet.cluster import fleet_client
    from tsdiff.fleet.watch import FleetWatcher
    from tsdiff.registry import build

    server, _ = fleet_server
    _fleet(server, build("causal", "tiny", random_state=0), tmp_path / "fleet")
    first = START + pd.Timedelta(minutes=FIT_ROWS)
    last = START + pd.Timedelta(minutes=ROWS - 1)
    files = {"state_path": tmp_path / "state.json", "output": tmp_path / "rows.jsonl"}
    with fleet_client(n_workers=2, processes=False) as client:
        with FleetWatcher(
            tmp_path / "fleet",
            start=first,
            batch=25,
            client=client,
            refit_every="1h",
            refit_window="5h",
            **files,
        ) as watcher:
            while watcher.poll(until=last):
                watcher.refits.wait(timeout=120)
            watcher.finish()
            assert watcher.refits.refits >= 9 and watcher.refits.failures == 0
    logged = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    keys = [(r["entity"], r["time"]) for r in logged]
    assert len(keys) == len(set(keys)) == 3 * (ROWS - FIT_ROWS)


def test_a_new_host_is_fitted_once_it_has_enough_history(fleet_server, tmp_path):
    """web-9 appears at row 450: fitted once it has 90 minutes of rows, then warmed with the rows
    before its first scored one, so its scores are those of a batch over them from the start."""
    import tsdiff
    from tsdiff.fleet.pooling import host_threshold
    from tsdiff.fleet.storage import entity_path, read_index
    from tsdiff.fleet.watch import FleetWatcher
    from tsdiff.registry import build

    server, frames = fleet_server
    _fleet(server, build("pca", "tiny"), tmp_path / "fleet")
    first = START + pd.Timedelta(minutes=FIT_ROWS)
    log = tmp_path / "rows.jsonl"
    with FleetWatcher(tmp_path / "fleet", output=log, start=first, batch=60, fit_new_after="90m") as watcher:
        for _ in range(5):
            watcher.poll(until=START + pd.Timedelta(minutes=ROWS - 1))
            for thread in list(watcher.fitting.values()):
                thread.join(timeout=60)
        watcher.finish()
        assert "web-9" in watcher.models and watcher.status["web-9"] == "scored"
        model = watcher.models["web-9"]
    mine = [json.loads(x) for x in log.read_text().splitlines() if '"web-9"' in x]
    start_row = (pd.Timestamp(mine[0]["time"]) - frames["web-9"].index[0]) // pd.Timedelta(minutes=1)
    expected = _expected(frames, "web-9", model, start_row, len(mine))
    assert [pd.Timestamp(r["time"]) for r in mine] == list(expected.index)
    np.testing.assert_allclose([r["score"] for r in mine], expected.to_numpy(), rtol=1e-7, atol=1e-9)
    index = read_index(tmp_path / "fleet")
    # the fleet's hosts had too few held-out rows for a tail fit, so they share a pooled threshold;
    # the new host takes the same pool, scaled to its own scores
    entry, pool = index["entities"]["web-9"], index["threshold_pool"]
    assert entry["threshold_method"] == "pooled" and pool["takers"] == len(HOSTS)
    model = tsdiff.load(entity_path(tmp_path / "fleet", "web-9"))
    assert model.threshold_ == entry["threshold"] == host_threshold(model.calibration_scores_, pool)


def test_a_host_fitted_later_is_warmed_like_the_others(fleet_server, tmp_path):
    """A windowed model (causal, 16 rows) for the new host: without the warm start its first rows
    would wait for the window to fill; warmed, they are final at once and equal the batch scores
    of its rows."""
    from tsdiff.fleet.watch import FleetWatcher
    from tsdiff.stream import StreamScorer

    server, frames = fleet_server
    _fleet(server, DETECTORS["causal"](random_state=0), tmp_path / "fleet")
    first = START + pd.Timedelta(minutes=FIT_ROWS)
    log = tmp_path / "rows.jsonl"
    with FleetWatcher(tmp_path / "fleet", output=log, start=first, batch=60, fit_new_after="90m") as watcher:
        while watcher.poll(until=START + pd.Timedelta(minutes=ROWS - 1)):
            for thread in list(watcher.fitting.values()):
                thread.join(timeout=60)
        watcher.finish()
        model = watcher.models["web-9"]
    assert StreamScorer(model).warm_rows() > 1
    mine = [json.loads(x) for x in log.read_text().splitlines() if '"web-9"' in x]
    start_row = (pd.Timestamp(mine[0]["time"]) - frames["web-9"].index[0]) // pd.Timedelta(minutes=1)
    assert start_row >= StreamScorer(model).warm_rows()  # the history covers the warm rows
    expected = _expected(frames, "web-9", model, start_row, len(mine))
    assert [pd.Timestamp(r["time"]) for r in mine] == list(expected.index)
    np.testing.assert_allclose([r["score"] for r in mine], expected.to_numpy(), rtol=1e-7, atol=1e-9)


def test_fleet_fit_and_watch_from_the_command_line(fleet_server, tmp_path):
    import subprocess
    import sys

    from tsdiff.fleet.storage import read_index

    server, _ = fleet_server
    cli = [sys.executable, "-m", "tsdiff.cli", "-q", "fleet"]
    end = (START + pd.Timedelta(minutes=FIT_ROWS - 1)).isoformat()
    fit = subprocess.run(
        [*cli, "fit", "--prometheus", server.url, "--selector", '{job="node"}', "--entity-label", "instance",
         "--start", START.isoformat(), "--end", end, "--detector", "pca", "--preset", "tiny",
         "--workers", "1", "-o", str(tmp_path / "fleet")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    index = read_index(tmp_path / "fleet")
    assert sorted(index["entities"]) == sorted(HOSTS) and index["source"]["entity_label"] == "instance"
    first, until = START + pd.Timedelta(minutes=FIT_ROWS), START + pd.Timedelta(minutes=FIT_ROWS + 59)
    watch = subprocess.run(
        [*cli, "watch", str(tmp_path / "fleet"), "--listen", "127.0.0.1:0", "--start", first.isoformat(),
         "--until", until.isoformat(), "--interval", "0.05", "--output", str(tmp_path / "rows.jsonl")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert watch.returncode == 0, watch.stderr
    logged = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert sorted({r["entity"] for r in logged}) == sorted(HOSTS) and len(logged) == 3 * 60
    sharded = subprocess.run(  # the same rows, scored on a Dask worker process
        [*cli, "watch", str(tmp_path / "fleet"), "--listen", "127.0.0.1:0", "--start", first.isoformat(),
         "--until", until.isoformat(), "--interval", "0.05", "--output", str(tmp_path / "sharded.jsonl"),
         "--state", str(tmp_path / "sharded.json"), "--workers", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert sharded.returncode == 0, sharded.stderr
    again = [json.loads(x) for x in (tmp_path / "sharded.jsonl").read_text().splitlines()]
    key = lambda r: (r["entity"], r["time"])  # noqa: E731
    assert sorted(again, key=key) == sorted(logged, key=key)
    missing = subprocess.run([*cli, "fit", "--prometheus", server.url, "--selector", "{job='node'}",
                              "-o", str(tmp_path / "x")], capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 2 and "--entity-label" in missing.stderr
    short = subprocess.run(
        [*cli, "watch", str(tmp_path / "fleet"), "--listen", "127.0.0.1:0", "--merge-gap", "10m",
         "--refit-every", "1h", "--refit-window", "30s"], capture_output=True, text=True,
    )  # fmt: skip
    assert short.returncode == 2 and "refit window of 30 s is shorter than one step" in short.stderr


def test_hosts_sharded_over_dask_workers_score_as_in_one_process(fleet_server, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from tsdiff.fleet.cluster import fleet_client
    from tsdiff.fleet.watch import FleetWatcher
    from tsdiff.registry import build

    server, _ = fleet_server
    _fleet(server, build("causal", "tiny", random_state=0), tmp_path / "fleet")
    first = START + pd.Timedelta(minutes=FIT_ROWS)
    last = START + pd.Timedelta(minutes=ROWS - 1)
    with FleetWatcher(tmp_path / "fleet", output=tmp_path / "one.jsonl", start=first, batch=50) as watcher:
        while watcher.poll(until=last):
            pass
        watcher.finish()
    files = {"state_path": tmp_path / "state.json", "output": tmp_path / "sharded.jsonl"}
    with fleet_client(n_workers=2, processes=False) as client:
        with FleetWatcher(tmp_path / "fleet", start=first, batch=50, client=client, **files) as watcher:
            assert watcher.shards.n == 2
            for _ in range(2):  # then a restart: the next watcher resumes every shard from the state
                watcher.poll(until=last)
        with FleetWatcher(tmp_path / "fleet", start=first, batch=50, client=client, **files) as watcher:
            while watcher.poll(until=last):
                pass
            watcher.finish()
            exposed = list(text_string_to_metric_families(_exposition(watcher)))
            with pytest.raises(ParameterError, match="Dask workers"):
                _ = watcher.models

    def rows(name):
        logged = [json.loads(x) for x in (tmp_path / name).read_text().splitlines()]
        return sorted((r["entity"], r["time"], r["score"]) for r in logged)

    assert rows("sharded.jsonl") == rows("one.jsonl")
    assert len(rows("one.jsonl")) == 3 * (ROWS - FIT_ROWS)
    samples = {(f.name, tuple(s.labels.values())): s.value for f in exposed for s in f.samples}
    assert {labels[0] for name, labels in samples if name == "tsdiff_anomaly_score"} == set(HOSTS)
    assert samples[("tsdiff_fleet_entities", ("stale",))] == 1  # db-1 went away


def test_a_series_that_appeared_at_the_end_of_the_range_is_left_out_of_a_fit(fleet_server, tmp_path, capsys):
    # the fleet's server seen as one host's: web-9's series begin at row 450 (a new pod)
    import tsdiff
    from tsdiff.cli import EXIT_OK, main

    server, _ = fleet_server
    end = (START + pd.Timedelta(minutes=455)).isoformat()
    args = ["fit", "--prometheus", server.url, "--selector", '{job="node"}', "--start", START.isoformat()]
    assert main([*args, "--end", end, "--detector", "pca", "-o", str(tmp_path / "m")]) == EXIT_OK
    assert "left out 4 series with fewer than 10 values" in capsys.readouterr().err
    columns = tsdiff.load(tmp_path / "m").feature_names_in_
    assert len(columns) == 12 and not any("web-9" in c for c in columns)

"""Reading metrics from a real Prometheus server (Debian's ``prometheus`` package).

A slice of the bundled SMD machine is backfilled with ``promtool tsdb create-blocks-from
openmetrics``; a ``prometheus`` process serves it on 127.0.0.1. Outside CI the tests skip, with the
reason, when the binaries are missing; in CI (``$CI`` set) a missing binary is a failure.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest

from tsdiff import errors
from tsdiff.sources import prometheus as prom
from tsdiff.sources.prometheus import PrometheusSource, parse_duration, parse_time, series_name

from tests.prometheus_server import BINARIES, free_port, needs_prometheus
from tests.sources.conftest import ROWS, START


# ----------------------------------------------------------------- parsing, no server
def test_durations_and_times():
    assert parse_duration("90s") == 90 and parse_duration("1h30m") == 5400 and parse_duration("500ms") == 0.5
    assert parse_duration(15) == 15
    for bad in ("banana", "-5s", "0s", "5 s"):
        with pytest.raises(errors.ParameterError):
            parse_duration(bad)
    now = 1_717_200_000.0
    assert parse_time("now", now) == pd.Timestamp(now, unit="s", tz="UTC")
    assert parse_time("now-2h", now) == pd.Timestamp(now - 7200, unit="s", tz="UTC")
    assert parse_time("now-140s", now) == pd.Timestamp(now - 140, unit="s", tz="UTC")
    assert parse_time("1717200000") == pd.Timestamp(1717200000, unit="s", tz="UTC")
    assert parse_time("2024-06-01T02:00:00+02:00") == START
    for bad in ("yesterday", "2024-06-01 00:00"):  # no zone: refused rather than guessed
        with pytest.raises(errors.ParameterError):
            parse_time(bad)


def test_series_names_are_stable_label_strings():
    labels = {"__name__": "node_load1", "job": "node", "instance": 'a"b'}
    assert series_name(labels) == 'node_load1{instance="a\\"b",job="node"}'
    assert series_name({"job": "x"}, "load") == 'load{job="x"}'
    assert series_name({"__name__": "up"}) == "up"


def test_unreachable_server_is_a_typed_error_naming_the_query():
    port = free_port()  # nothing listens here once closed
    source = PrometheusSource(f"http://127.0.0.1:{port}", ["up"], step="60s", timeout=2)
    with pytest.raises(errors.SourceError, match="query 'up': cannot reach"):
        source.read("now-5m", "now")
    with pytest.raises(errors.ParameterError):
        PrometheusSource("ftp://x", ["up"])
    with pytest.raises(errors.ParameterError):
        PrometheusSource("http://127.0.0.1:9", [])


# ----------------------------------------------------------------- a real server
def _expected(smd_slice: pd.DataFrame) -> pd.DataFrame:
    out = smd_slice.copy()
    out.columns = [f'smd_{c}{{machine="1-2"}}' for c in out.columns]
    out.index = out.index.as_unit("ns")  # the grid is in nanoseconds
    return out


def test_a_selector_reads_back_the_backfilled_frame(server, smd_slice):
    source = PrometheusSource(server, selector='{machine="1-2"}', step="60s")
    end = START + pd.Timedelta(minutes=ROWS - 1)
    frame = source.read(START.isoformat(), end.isoformat())
    expected = _expected(smd_slice)
    assert list(frame.columns) == sorted(expected.columns)
    pd.testing.assert_frame_equal(frame[expected.columns], expected, check_names=False, check_freq=False)


def test_long_ranges_are_read_in_chunks(server, smd_slice, monkeypatch):
    monkeypatch.setattr(prom, "MAX_POINTS", 77)
    source = PrometheusSource(server, {"load": 'smd_m1{machine="1-2"}'}, step="60s")
    frame = source.read(START, START + pd.Timedelta(minutes=ROWS - 1))
    assert list(frame.columns) == ["load"]
    np.testing.assert_array_equal(frame["load"].to_numpy(), smd_slice["m1"].to_numpy())


def test_missing_samples_are_nan_on_the_grid(server, smd_slice):
    source = PrometheusSource(server, ['smd_m2{machine="1-2"}'], step="60s")
    # an hour before the data and a coarser grid: rows without samples are NaN, never invented
    frame = source.read(START - pd.Timedelta(hours=1), START + pd.Timedelta(minutes=59))
    values = frame.iloc[:, 0]
    assert values.iloc[:60].isna().all() and values.iloc[60:].notna().all()


def test_promql_errors_are_typed_and_name_the_query(server):
    source = PrometheusSource(server, ["rate(smd_m1[5m]"], step="60s")
    with pytest.raises(errors.SourceError, match=r"query 'rate\(smd_m1\[5m\]': .*bad_data"):
        source.read(START, START + pd.Timedelta(minutes=10))


def test_fit_from_prometheus_equals_fit_from_the_csv(server, smd_slice, tmp_path):
    import tsdiff
    from tsdiff.cli import EXIT_OK, main

    expected = _expected(smd_slice)
    expected.index = expected.index.tz_convert(None)
    expected.rename_axis("timestamp").to_csv(tmp_path / "slice.csv")
    end = (START + pd.Timedelta(minutes=ROWS - 1)).isoformat()
    args = ["fit", "--prometheus", server, "--selector", '{machine="1-2"}', "--start", START.isoformat()]
    args += ["--end", end, "--step", "60s", "--detector", "pca", "-o", str(tmp_path / "p")]
    assert main(args) == EXIT_OK
    csv_args = ["fit", str(tmp_path / "slice.csv"), "--detector", "pca", "-o", str(tmp_path / "c")]
    assert main(csv_args) == EXIT_OK
    from_prometheus, from_csv = tsdiff.load(tmp_path / "p"), tsdiff.load(tmp_path / "c")
    assert from_prometheus.source_["url"] == server and from_prometheus.source_["step"] == 60
    test = pd.read_csv(tmp_path / "slice.csv", index_col=0, parse_dates=True)
    test = test[from_csv.feature_names_in_]
    np.testing.assert_allclose(from_prometheus.score(test), from_csv.score(test), rtol=1e-12)
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    assert config["source"]["queries"] == [[None, '{machine="1-2"}']]


# ----------------------------------------------------------------- tsdiff watch
def _fit_from_prometheus(server, folder, rows=400):
    from tsdiff.cli import EXIT_OK, main

    end = (START + pd.Timedelta(minutes=rows - 1)).isoformat()
    args = ["fit", "--prometheus", server, "--selector", '{machine="1-2"}', "--start", START.isoformat()]
    assert main([*args, "--end", end, "--detector", "pca", "-o", str(folder / "model")]) == EXIT_OK
    import tsdiff

    return tsdiff.load(folder / "model")


def test_watch_serves_the_last_final_score_at_metrics(server, smd_slice, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from tsdiff.sources.prometheus import PrometheusSource
    from tsdiff.watch import Watcher, serve

    det = _fit_from_prometheus(server, tmp_path)
    source = PrometheusSource.from_dict(det.source_)
    first = START + pd.Timedelta(minutes=400)
    watcher = Watcher(det, source, state_path=tmp_path / "state.json", start=first)
    assert watcher.poll(until=START + pd.Timedelta(minutes=459)) == 60
    httpd = serve(watcher, "127.0.0.1", 0)
    port = httpd.server_address[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        assert answer.status == 200
    httpd.shutdown()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    host = {"machine": "1-2"}  # what every model column shares: the monitored host, on every series
    assert all(host.items() <= s.labels.items() for s in samples)
    values = {s.name: s.value for s in samples if s.labels == host}
    contributions = {s.labels["metric"]: s.value for s in samples if s.name == "tsdiff_metric_contribution"}
    assert contributions and all(m.startswith("smd_") and "{" not in m for m in contributions)
    assert all(0 <= v <= 1 for v in contributions.values()) and sum(contributions.values()) <= 1 + 1e-9
    rows = _expected(smd_slice).iloc[400:460]
    rows.columns = list(det.feature_names_in_)
    batch = det.score(rows)
    assert values["tsdiff_anomaly_score"] == pytest.approx(batch.iloc[-1], abs=1e-9)
    assert values["tsdiff_score_ratio"] == pytest.approx(batch.iloc[-1] / det.threshold_, abs=1e-9)
    assert values["tsdiff_last_scored_timestamp_seconds"] == rows.index[-1].value / 1e9
    assert values["tsdiff_rows_scored_total"] == 60 and values["tsdiff_source_up"] == 1
    info = next(
        s for f in text_string_to_metric_families(text) for s in f.samples if s.name == "tsdiff_model_info"
    )
    assert info.labels["detector"] == "PCADetector"
    assert pd.Timestamp(info.labels["fitted_from"]) == START
    assert pd.Timestamp(info.labels["fitted_to"]) == START + pd.Timedelta(minutes=399)


def test_watch_killed_mid_replay_resumes_without_losing_or_repeating_a_row(server, smd_slice, tmp_path):
    import signal
    import sys

    det = _fit_from_prometheus(server, tmp_path)
    first, last = START + pd.Timedelta(minutes=400), START + pd.Timedelta(minutes=ROWS - 1)
    args = [sys.executable, "-m", "tsdiff.cli", "watch", str(tmp_path / "model"), "--listen", "127.0.0.1:0"]
    args += ["--start", first.isoformat(), "--until", last.isoformat(), "--batch", "10", "--interval", "0.3"]
    args += ["--output", str(tmp_path / "rows.jsonl"), "--state", str(tmp_path / "state.json")]
    log = open(tmp_path / "watch.log", "w")
    proc = subprocess.Popen(args, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while (
            not (tmp_path / "state.json").exists()
            or json.loads((tmp_path / "state.json").read_text())["rows_scored"] < 50
        ):
            assert proc.poll() is None, (tmp_path / "watch.log").read_text()
            assert time.monotonic() < deadline, "no 50 rows scored within 60 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up
    finally:
        proc.kill()
        proc.wait(timeout=30)
        log.close()
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    times = [pd.Timestamp(x["time"]) for x in lines]
    expected = _expected(smd_slice).iloc[400:]
    assert times == list(expected.index)  # every row once, in order
    expected.columns = list(det.feature_names_in_)
    np.testing.assert_allclose([x["score"] for x in lines], det.score(expected).to_numpy(), rtol=1e-9)


def _streamable() -> dict[str, object]:
    """A fresh tiny model of every streamable detector (the registry's, and the diffusion and
    hybrid models in their low-latency tail-mask configuration), by name."""
    from tests.detectors import DETECTORS

    names = [n for n in DETECTORS if n != "random" and not n.startswith("imdiffusion-")]
    names += ["imdiffusion-streaming", "hybrid-streaming"]
    out = {}
    for name in names:
        try:
            out[name] = DETECTORS[name](random_state=0)
        except pytest.skip.Exception:  # an extra that is not installed
            continue
    return out


def test_prometheus_stores_the_batch_scores_of_every_streamable_detector(prometheus, smd_slice):
    """The loop on backfilled data: every streamable detector is fitted from the server, replays
    the next rows with ``Watcher`` (one row per poll), and the same server scrapes its ``/metrics``;
    the samples Prometheus stored, read through its query API, are the batch scores of those rows.
    The scores carry their rows' 2024 times, so the server accepts samples that far back
    (``out_of_order_time_window``).

    Prometheus keeps one sample per series per scrape, so the test runs the watchers in lock-step
    with the scrapes: after each round of polls it waits (with a deadline) until the server has
    scraped every watcher that made a row final, before the next poll replaces that row. Nothing
    is left to timing: every row that was a poll's last final row must be stored, and no other.
    """
    from tsdiff.stream import StreamScorer
    from tsdiff.watch import Watcher, serve

    models = _streamable()
    source = PrometheusSource(prometheus.url, selector='{machine="1-2"}', step="60s")
    train = source.read(START, START + pd.Timedelta(minutes=399))
    first = START + pd.Timedelta(minutes=400)
    replays, servers = {}, []
    try:
        for name, det in models.items():
            det.fit(train)
            det.source_ = {
                **source.to_dict(),
                "fitted_from": str(train.index[0]),
                "fitted_to": str(train.index[-1]),
            }
            watcher = Watcher(det, PrometheusSource.from_dict(det.source_), start=first, batch=1)
            scorer = StreamScorer(det)
            # enough rows that 20 polls after the first window each make one row final
            rows = scorer.min_rows + scorer.latency + 20
            servers.append(serve(watcher, "127.0.0.1", 0))
            replays[f"replay-{name}"] = (watcher, det, rows)
        ports = [httpd.server_address[1] for httpd in servers]
        prometheus.add_jobs({job: (f"127.0.0.1:{p}", 0.1) for job, p in zip(replays, ports, strict=True)})
        published: dict[str, list[float]] = {job: [] for job in replays}  # each poll's last final row
        pending = set(replays)
        while pending:
            changed = {}
            for job in sorted(pending):
                watcher, det, rows = replays[job]
                until = first + pd.Timedelta(minutes=rows - 1)
                before = watcher.rows_scored
                if watcher.next_ns > until.value:
                    watcher.finish()  # the rows still waiting for later ones, at once
                    pending.discard(job)
                else:
                    watcher.poll(until=until)
                if watcher.rows_scored > before:
                    changed[job] = watcher.last["seconds"]
                    published[job].append(watcher.last["seconds"])

            def scraped(changed=changed) -> bool:
                seen = prometheus.query("tsdiff_last_scored_timestamp_seconds")
                latest = {series["metric"]["job"]: float(series["value"][1]) for series in seen}
                return all(latest.get(job) == stamp for job, stamp in changed.items())

            prometheus.wait_for(scraped, f"a scrape of the rows {changed}", deadline=30)
        frame = _expected(smd_slice)
        for job, (_, det, rows) in replays.items():
            selector = f'tsdiff_anomaly_score{{job="{job}"}}'
            stored = prometheus.samples(selector, at=(first + pd.Timedelta(hours=12)).timestamp())
            # the watcher warmed its scorer with the rows before its first one (warm_start)
            warm = min(400, StreamScorer(det).warm_rows())
            live = frame.iloc[400 - warm : 400 + rows].set_axis(list(det.feature_names_in_), axis=1)
            batch = det.score(live).iloc[warm:]
            batch = batch.set_axis([stamp.value / 1e9 for stamp in live.index[warm:]])
            assert sorted(stored) == published[job], job  # every published row once, no other
            diff = max(abs(v - batch[t]) for t, v in stored.items())
            assert diff < 1e-6, (job, diff)
            assert len(stored) >= 20, (job, len(stored))  # one row per poll after the first window
    finally:
        for httpd in servers:
            httpd.shutdown()
            httpd.server_close()
        prometheus.remove_jobs(list(replays))


def test_the_example_config_and_alerting_rules_pass_promtool():
    from pathlib import Path

    needs_prometheus()
    folder = Path(__file__).resolve().parents[2] / "examples" / "prometheus"
    rules = subprocess.run(
        [BINARIES[1], "check", "rules", str(folder / "alerts.yml")], capture_output=True, text=True
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "5 rules found" in rules.stdout + rules.stderr
    config = subprocess.run(
        [BINARIES[1], "check", "config", str(folder / "prometheus.yml")], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_a_server_outage_is_retried_and_reported_never_raised(tmp_path):
    import threading

    from tsdiff.baselines import PCADetector
    from tsdiff.watch import Watcher

    from tests.helpers import make_frame

    det = PCADetector().fit(make_frame(200, 3).set_axis(["a", "b", "c"], axis=1))
    source = PrometheusSource(
        f"http://127.0.0.1:{free_port()}", {"a": "a", "b": "b", "c": "c"}, step="1s", timeout=1
    )
    watcher = Watcher(det, source, state_path=tmp_path / "state.json", start="now-10s")
    stop = threading.Event()
    runner = threading.Thread(target=watcher.run, args=(stop,))
    runner.start()
    try:  # the tries come 1 s, then 2 s apart: two failures within a few seconds
        deadline = time.monotonic() + 30
        while watcher.source_errors < 2:
            assert runner.is_alive() and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    assert watcher.source_up == 0 and watcher.source_errors >= 2  # retried with back-off (1 s, 2 s, ...)
    text = "\n".join(f"{m.name} {s.value}" for m in watcher.collect() for s in m.samples)
    assert "tsdiff_source_up 0" in text and f"tsdiff_source_errors {watcher.source_errors}" in text


def test_explain_reads_the_model_s_series_from_prometheus(server, smd_slice, tmp_path, capsys):
    """``tsdiff explain MODEL --prometheus`` explains the rows the server holds as the same rows
    read from a file would be explained: the same events, the same root causes."""
    from tsdiff.cli import EXIT_BAD_INPUT, EXIT_OK, main

    end = (START + pd.Timedelta(minutes=399)).isoformat()
    fit = ["fit", "--prometheus", server, "--selector", '{machine="1-2"}', "--start", START.isoformat()]
    assert main([*fit, "--end", end, "--detector", "causal", "-o", str(tmp_path / "m")]) == EXIT_OK
    rows = _expected(smd_slice).iloc[400:]
    rows.index = rows.index.tz_convert(None)
    rows.rename_axis("timestamp").to_csv(tmp_path / "rows.csv")
    since, until = rows.index[0].isoformat() + "Z", rows.index[-1].isoformat() + "Z"
    capsys.readouterr()
    assert main(["explain", str(tmp_path / "m"), str(tmp_path / "rows.csv")]) == EXIT_OK
    from_file = capsys.readouterr().out
    window = ["--since", since, "--until", until]
    assert main(["explain", str(tmp_path / "m"), "--prometheus", *window]) == EXIT_OK
    assert capsys.readouterr().out == from_file
    last = main(["explain", str(tmp_path / "m"), "--prometheus", *window, "--event", "-1", "--json"])
    assert last == (EXIT_BAD_INPUT if from_file.startswith("no events") else EXIT_OK), from_file
    assert main(["explain", str(tmp_path / "m")]) == EXIT_BAD_INPUT
    assert "or --prometheus" in capsys.readouterr().err

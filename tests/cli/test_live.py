"""The live commands as a monitoring script meets them: odd lines in a stream, a byte-order mark,
a closed pipe, an incident open at the end of the input, and bad ``watch``/``fit --prometheus``
settings refused with exit 2 before any work."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from tsdiff.cli import EXIT_BAD_INPUT, EXIT_OK, main
from tsdiff.cli.batch import parse_queries

from tests.helpers import make_frame
from tests.prometheus_server import free_port


@pytest.fixture(scope="module")
def zoned(tmp_path_factory):
    """A PCA model and a test file with zoned timestamps (Europe/Berlin)."""
    root = tmp_path_factory.mktemp("zoned")
    frame = make_frame(400, 3, seed=0)
    frame.index = frame.index.tz_localize("Europe/Berlin")
    frame.iloc[:300].to_csv(root / "train.csv")
    frame.iloc[300:].to_csv(root / "test.csv")
    assert main(["-q", "fit", str(root / "train.csv"), "-o", str(root / "m"), "--detector", "pca"]) == EXIT_OK
    return root


def _stream(model, text: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tsdiff.cli", "stream", str(model), *extra],
        input=text,
        capture_output=True,
        text=True,
        encoding="utf-8",
    )


def test_a_line_without_a_time_is_reported_and_skipped(zoned):
    lines = (zoned / "test.csv").read_text().splitlines()
    text = "\n".join([*lines[:6], ",1,2,3", "NaT,1,2,3", *lines[6:21]]) + "\n"
    out = _stream(zoned / "m", text)
    assert out.returncode == EXIT_OK, out.stderr
    assert len(out.stdout.splitlines()) == 20  # every row with a time, scored
    assert "line 7: time column 'time' has no time (empty or NaT); skipped" in out.stderr
    assert "line 8:" in out.stderr and "line 7: line 7" not in out.stderr


def test_a_row_without_any_value_is_a_gap(zoned):
    lines = (zoned / "test.csv").read_text().splitlines()
    stamp = lines[8].split(",")[0]
    lines[8] = f"{stamp},,,"
    records = [json.loads(x) for x in _stream(zoned / "m", "\n".join(lines) + "\n").stdout.splitlines()]
    gap = records[7]
    assert gap["gap"] is True and gap["score"] is None and gap["label"] is None and gap["top_metrics"] == []
    assert sum(r["gap"] for r in records) == 1


def test_a_byte_order_mark_is_not_part_of_the_header(zoned):
    out = _stream(zoned / "m", "\ufeff" + (zoned / "test.csv").read_text())
    assert out.returncode == EXIT_OK, out.stderr
    assert len(out.stdout.splitlines()) == 100


def test_score_to_a_closed_pipe_exits_0(zoned):
    proc = subprocess.run(
        f"{sys.executable} -m tsdiff.cli -q score {zoned / 'm'} {zoned / 'test.csv'} -o - | head -1; "
        "exit ${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
    )
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stdout.startswith("time,score,label") and "Broken pipe" not in proc.stderr


def test_an_incident_open_at_the_end_of_the_input_is_resolved_there(tmp_path):
    make_frame(300, 3, seed=0).to_csv(tmp_path / "train.csv")
    argv = ["-q", "fit", str(tmp_path / "train.csv"), "-o", str(tmp_path / "m"), "--detector", "pca"]
    assert main(argv) == EXIT_OK
    test = make_frame(120, 3, seed=1)
    test.iloc[110:, 1] += 10.0  # still anomalous when the input ends
    out = _stream(tmp_path / "m", test.to_csv(), "--incidents")
    alerts = [json.loads(x) for x in out.stdout.splitlines()]
    assert [("endsAt" in a) for a in alerts] == [False, True]
    assert alerts[1]["endsAt"] == "2024-01-01T01:59:00.000000Z"  # the last row of the input


def test_the_merge_gap_may_be_a_duration(tmp_path):
    make_frame(300, 3, seed=0).to_csv(tmp_path / "train.csv")
    argv = ["-q", "fit", str(tmp_path / "train.csv"), "-o", str(tmp_path / "m"), "--detector", "pca"]
    assert main(argv) == EXIT_OK
    test = make_frame(200, 3, seed=1)  # one row a minute
    test.iloc[40:50, 1] += 10.0
    test.iloc[70:80, 1] += 10.0  # 20 quiet minutes later, the same metric
    text = test.to_csv()

    def opened(*extra: str) -> list[str]:
        out = _stream(tmp_path / "m", text, "--incidents", *extra)
        assert out.returncode == EXIT_OK, out.stderr
        return [a["startsAt"] for a in map(json.loads, out.stdout.splitlines()) if "endsAt" not in a]

    assert len(opened()) == 1  # 120 quiet rows by default: one incident
    assert len(opened("--merge-gap", "10")) == 2
    assert opened("--merge-gap", "10min", "--freq", "1min") == opened("--merge-gap", "10")
    assert len(opened("--merge-gap", "1h", "--freq", "1min")) == 1
    out = _stream(tmp_path / "m", text, "--incidents", "--merge-gap", "10min")
    assert out.returncode == EXIT_BAD_INPUT and "--freq" in out.stderr and out.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["node_load1 >= 0"], ["node_load1 >= 0"]),
        (["up == 1", "up==1"], ["up == 1", "up==1"]),
        (['x{a="b"}', "a=~b"], ['x{a="b"}', "a=~b"]),
        (["load=rate(x[5m])", "up=up == 1"], {"load": "rate(x[5m])", "up": "up == 1"}),
    ],
)
def test_a_comparison_is_never_a_query_name(texts, expected):
    assert parse_queries(texts) == expected


@pytest.fixture(scope="module")
def prometheus_model(tmp_path_factory):
    """A model saved as ``fit --prometheus`` saves it (a source that nothing answers)."""
    from tsdiff.baselines import PCADetector
    from tsdiff.sources.prometheus import PrometheusSource

    root = tmp_path_factory.mktemp("watch")
    det = PCADetector().fit(make_frame(200, 3).set_axis(["a", "b", "c"], axis=1))
    nobody = f"http://127.0.0.1:{free_port()}"
    det.source_ = PrometheusSource(nobody, {"a": "a", "b": "b", "c": "c"}).to_dict()
    det.save(root / "m")
    return root / "m"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--listen", "127.0.0.1:99999"], "port from 0 to 65535"),
        (["--listen", "nonsense"], "HOST:PORT"),
        (["--interval", "-1"], "--interval must be a positive"),
        (["--interval", "nan"], "--interval must be a positive"),
        (["--batch", "0"], "batch must be >= 1"),
        (["--delay", "soon"], "not a duration"),
    ],
)
def test_bad_watch_settings_exit_2_before_any_work(prometheus_model, tmp_path, capsys, extra, message):
    argv = ["watch", str(prometheus_model), "--state", str(tmp_path / "s.json"), *extra]
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "s.json").exists()


def test_a_second_watch_on_the_same_state_exits_2(prometheus_model, tmp_path, capsys):
    from tsdiff.fileio import FileLock

    with FileLock(f"{tmp_path / 's.json'}.lock"):  # another watcher holds it
        argv = ["watch", str(prometheus_model), "--state", str(tmp_path / "s.json")]
        assert main([*argv, "--listen", "127.0.0.1:0"]) == EXIT_BAD_INPUT
    assert "is in use by another tsdiff watch" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", "nan"], "'nan' is not a time"),
        (["--start", "NaT"], "'NaT' is not a time"),
        (["--start", "inf"], "'inf' is not a time"),
        (["--start", "now-7d", "--step", "1ms"], "rows, more than the 2,000,000"),
    ],
)
def test_fit_refuses_impossible_ranges_at_once(tmp_path, capsys, extra, message):
    url = f"http://127.0.0.1:{free_port()}"  # never reached: refused before any query
    argv = ["fit", "--prometheus", url, "--query", "up", *extra, "-o", str(tmp_path / "m")]
    assert main(argv) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_metrics_answer_head_requests(prometheus_model):
    import urllib.request

    import tsdiff
    from tsdiff.sources.prometheus import PrometheusSource
    from tsdiff.watch import Watcher, serve

    det = tsdiff.load(prometheus_model)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    watcher = Watcher(det, PrometheusSource.from_dict(det.source_), start=start)
    httpd = serve(watcher, "127.0.0.1", 0)
    try:
        for path in ("/metrics", "/healthz"):
            url = f"http://127.0.0.1:{httpd.server_address[1]}{path}"
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200 and answer.read() == b""
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_command_line_offers_every_adapting_threshold():
    from tsdiff.cli.common import ADAPT_CHOICES
    from tsdiff.stream import ADAPT_METHODS

    assert ADAPT_CHOICES == ADAPT_METHODS

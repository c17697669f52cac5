"""The command line: the demo on the bundled data, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tsdiff.cli import EXIT_BAD_INPUT, EXIT_OK, main


def test_demo_runs_one_detector_on_bundled_data(capsys, tmp_path):
    png = tmp_path / "demo.png"
    args = ["demo", "--detector", "pca", "--no-baselines", "--events", "2", "--plot", str(png)]
    assert main(args) == EXIT_OK
    out, err = capsys.readouterr()
    assert "SMD machine-1-2" in out and "| pca |" in out and "| kmeans |" not in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    row = next(line for line in out.splitlines() if line.startswith("| pca |"))
    vus_pr = float(row.split("|")[2])
    assert 0.05 < vus_pr <= 1.0  # PCA finds real signal here (a random score gets about 0.03)
    assert "fitting" in err  # progress goes to stderr, results to stdout


def test_usage_error_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--detector", "nope"])
    assert info.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tsdiff: error:")


def test_console_script_version():
    out = subprocess.run([sys.executable, "-m", "tsdiff.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("tsdiff ")


def _files(tmp_path, anomaly=True):
    from tests.helpers import make_frame

    train = make_frame(300, 4, seed=0)
    test = make_frame(200, 4, seed=1)
    test.index = test.index + pd.Timedelta(minutes=300)
    if anomaly:
        test.iloc[120:126, 2] += 8.0
    train.to_csv(tmp_path / "train.csv")  # first column "time": picked up as the index
    test.to_csv(tmp_path / "test.csv")
    return train, test


def test_fit_score_evaluate_round_trip(tmp_path, capsys):
    _, test = _files(tmp_path)
    model, out = tmp_path / "model", tmp_path / "scores.csv"
    assert main(["fit", str(tmp_path / "train.csv"), "-o", str(model), "--detector", "pca"]) == EXIT_OK
    args = ["score", str(model), str(tmp_path / "test.csv"), "-o", str(out)]
    assert main(args) == EXIT_OK
    assert main([*args, "--fail-on-anomaly"]) == 1  # anomalies found: the exit code says so
    scored = pd.read_csv(out, index_col=0, parse_dates=True)
    assert scored.index.equals(test.index) and {"score", "label", "top_metrics"} <= set(scored.columns)
    assert scored["label"].iloc[120:126].any()
    assert "m2" in scored["top_metrics"].iloc[122]
    labels = pd.DataFrame(
        {"label": np.r_[np.zeros(120), np.ones(6), np.zeros(74)].astype(int)}, index=test.index
    )
    labels.to_csv(tmp_path / "labels.csv")
    capsys.readouterr()
    assert main(["evaluate", str(out), str(tmp_path / "labels.csv"), "--json"]) == EXIT_OK
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["AUC-ROC"] > 0.9


def test_score_without_anomalies_exits_0_even_with_fail_flag(tmp_path):
    train, _ = _files(tmp_path, anomaly=False)
    quiet = train.mean() + 0.1 * (train - train.mean())  # well inside normal behaviour
    quiet.to_csv(tmp_path / "quiet.csv")
    model = tmp_path / "model"
    main(["fit", str(tmp_path / "train.csv"), "-o", str(model), "--detector", "pca"])
    args = [
        "score",
        str(model),
        str(tmp_path / "quiet.csv"),
        "-o",
        str(tmp_path / "o.csv"),
        "--fail-on-anomaly",
    ]
    assert main(args) == EXIT_OK


def test_stream_command_emits_one_json_line_per_row(tmp_path):
    _, test = _files(tmp_path)
    model = tmp_path / "model"
    main(["fit", str(tmp_path / "train.csv"), "-o", str(model), "--detector", "causal"])
    text = (tmp_path / "test.csv").read_text().splitlines()
    text.insert(5, "garbage,1,2")  # a malformed line is reported and skipped, not fatal
    proc = subprocess.run(
        [sys.executable, "-m", "tsdiff.cli", "stream", str(model), "--fail-on-anomaly"],
        input="\n".join(text) + "\n",
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["time"] for x in lines] == [t.isoformat() for t in test.index]
    assert all(x["final"] for x in lines) and "line 6" in proc.stderr
    flagged = [x for x in lines if x["label"] == 1]
    assert flagged and any("m2" in x["root_causes"] for x in flagged)


@pytest.mark.parametrize(
    "argv",
    [
        ["score", "no-such-model", "x.csv", "-o", "y.csv"],
        ["fit", "no-such-file.csv", "-o", "m"],
    ],
)
def test_bad_paths_exit_2_with_one_line(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tsdiff: error:")


def test_non_numeric_column_exits_2_naming_it(tmp_path, capsys):
    train, _ = _files(tmp_path)
    train["host"] = "web-1"
    train.to_csv(tmp_path / "bad.csv")
    assert (
        main(["fit", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "m"), "--detector", "pca"])
        == EXIT_BAD_INPUT
    )
    assert "host" in capsys.readouterr().err


def test_a_closed_pipe_is_not_an_internal_error():
    # `tsdiff ... | head -1`: the reader leaves before the table is written
    proc = subprocess.run(
        f"{sys.executable} -m tsdiff.cli demo --detector random --no-baselines --no-plot | head -c 1; "
        "exit ${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
    )
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "internal error" not in proc.stderr

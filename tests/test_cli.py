"""The command line: the demo on the bundled data, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import tsdiff
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


def test_quiet_and_verbose_go_before_or_after_the_command(tmp_path, capsys):
    from tsdiff.cli.parser import build_parser

    parser = build_parser()
    for argv in (["-q", "fit", "x", "-o", "m"], ["fit", "x", "-o", "m", "-q"], ["fleet", "watch", "m", "-q"]):
        args = parser.parse_args(argv)
        assert args.quiet and not args.verbose, argv
    assert not parser.parse_args(["fit", "x", "-o", "m"]).quiet
    assert parser.parse_args(["-v", "score", "m", "d", "-o", "o"]).verbose  # kept by the sub-command
    with pytest.raises(SystemExit):
        parser.parse_args(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the detector to fit (default: hybrid)" in text  # --help says what a plain fit costs


def test_a_quiet_fleet_run_prints_nothing(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for entity in ("a", "b"):
        frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["m0", "m1", "m2"])
        frame["entity"], frame["timestamp"] = entity, pd.date_range("2024-01-01", periods=200, freq="min")
        frames.append(frame)
    pd.concat(frames).to_csv(tmp_path / "fleet.csv", index=False)
    cli = [sys.executable, "-m", "tsdiff.cli"]
    args = ["fleet", "fit", str(tmp_path / "fleet.csv"), "--detector", "pca", "--workers", "1"]
    quiet = subprocess.run([*cli, "-q", *args, "-o", str(tmp_path / "m")], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
    loud = subprocess.run([*cli, *args, "-o", str(tmp_path / "m2")], capture_output=True, text=True)
    assert "2 of 2 entities" in loud.stderr and "INFO" not in loud.stderr  # no Dask chatter


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


# ----------------------------------------------------------------- a monitoring script's view
@pytest.fixture(scope="module")
def pca_files(tmp_path_factory):
    from tests.helpers import make_frame

    root = tmp_path_factory.mktemp("cli")
    make_frame(300, 4, seed=0).to_csv(root / "train.csv")
    test = make_frame(100, 4, seed=1)
    test.to_csv(root / "test.csv")
    epoch = test.reset_index()
    epoch["time"] = (epoch["time"] - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s")
    epoch.to_csv(root / "epoch.csv", index=False)
    epoch.assign(time=epoch["time"] * 1000).to_csv(root / "epoch_ms.csv", index=False)
    test.to_csv(root / "semicolon.csv", sep=";")
    (root / "afile").write_text("not a model")
    assert main(["fit", str(root / "train.csv"), "-o", str(root / "model"), "--detector", "pca"]) == EXIT_OK
    return root


CASES = [
    # (argv with {d} for the folder, exit code, a piece of the one-line message)
    (["fit", "{d}/train.csv", "-o", "{d}/afile", "--detector", "pca"], 2, "not a saved tsdiff model"),
    (["score", "{d}/model", "{d}/test.csv", "-o", "{d}/nodir/x.csv"], 2, "no folder"),
    (["score", "{d}/model", "{d}/test.csv", "-o", "{d}/x.xlsx"], 2, "unknown suffix '.xlsx'"),
    (["score", "{d}/model", "{d}/test.csv", "-o", "{d}"], 2, "unknown suffix"),
    (["score", "{d}/model", "{d}/epoch.csv", "-o", "{d}/e.csv"], 2, "--time-unit s"),
    (["score", "{d}/model", "{d}/epoch_ms.csv", "-o", "{d}/e.csv"], 2, "--time-unit ms"),
    (["score", "{d}/model", "{d}/semicolon.csv", "-o", "{d}/e.csv"], 2, "--sep"),
    (["score", "{d}/afile", "{d}/test.csv", "-o", "{d}/e.csv"], 2, "not a directory"),
    (["evaluate", "{d}/test.csv", "{d}/test.csv"], 2, "no column 'score'"),
]


@pytest.mark.parametrize(("argv", "code", "message"), CASES)
def test_user_errors_exit_2_with_one_line_and_no_work_done(pca_files, capsys, argv, code, message):
    assert main([a.format(d=pca_files) for a in argv]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("tsdiff: error:")
    assert not any(line.startswith("tsdiff fit:") for line in err)  # refused before fitting


def test_epoch_times_separators_and_stdout(pca_files, capsys):
    d = pca_files
    for name, unit in (("epoch.csv", "s"), ("epoch_ms.csv", "ms")):
        assert main(["score", f"{d}/model", f"{d}/{name}", "-o", "-", "--time-unit", unit]) == EXIT_OK
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("time,score,label") and out[1].startswith("2024-01-01 00:00:00+00:00")
    assert main(["-q", "score", f"{d}/model", f"{d}/semicolon.csv", "-o", "-", "--sep", ";"]) == EXIT_OK
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 101 and captured.err == ""  # --quiet: no progress lines


def _stream(model, text, *extra):
    return subprocess.run(
        [sys.executable, "-m", "tsdiff.cli", "stream", str(model), *extra],
        input=text,
        capture_output=True,
        text=True,
    )


def test_stream_checks_its_header_once(pca_files):
    d = pca_files
    lines = (d / "test.csv").read_text().splitlines()
    headless = _stream(d / "model", "\n".join(lines[-5:]) + "\n")  # `tail -n 5` drops the header
    assert headless.returncode == 2 and "header is missing" in headless.stderr and headless.stdout == ""
    semi = _stream(d / "model", (d / "semicolon.csv").read_text())
    assert semi.returncode == 2 and "--sep" in semi.stderr
    ok = _stream(d / "model", (d / "semicolon.csv").read_text(), "--sep", ";")
    assert ok.returncode == 0 and len(ok.stdout.splitlines()) == 100
    extra = _stream(d / "model", "\n".join([lines[0] + ",m9", *[x + ",1" for x in lines[1:4]]]) + "\n")
    assert extra.returncode == 2 and "m9" in extra.stderr
    short = _stream(d / "model", "\n".join(lines[:1]) + "\n", "--freq", "banana")
    assert short.returncode == 2 and "not a pandas frequency" in short.stderr


def test_stream_of_too_few_rows_says_so_and_gap_rows_have_no_score(tmp_path):
    from tests.helpers import make_frame

    make_frame(300, 3, seed=0).to_csv(tmp_path / "train.csv")
    main(["fit", str(tmp_path / "train.csv"), "-o", str(tmp_path / "m"), "--detector", "causal"])
    main(["fit", str(tmp_path / "train.csv"), "-o", str(tmp_path / "w"), "--detector", "kmeans"])
    test = make_frame(40, 3, seed=1)
    text = test.to_csv()
    few = _stream(tmp_path / "w", "\n".join(text.splitlines()[:4]) + "\n")  # a 40-row window
    assert few.returncode == 0 and few.stdout == "" and "none scored" in few.stderr
    rows = text.splitlines()
    shifted = rows[20].replace(":00,", ":02,", 1)  # a scrape 2 s late: moved onto the grid
    holed = [*rows[:10], *rows[13:20], shifted, *rows[21:]]
    out = _stream(tmp_path / "m", "\n".join(holed) + "\n", "--freq", "1min")
    assert out.returncode == 0, out.stderr
    records = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(records) == 40 and [r["gap"] for r in records].count(True) == 3
    assert all(r["score"] is None and r["label"] is None for r in records if r["gap"])
    assert all(isinstance(r["score"], float) for r in records if not r["gap"])


def test_evaluate_joins_labels_on_time_and_checks_its_window(tmp_path, capsys):
    idx = pd.date_range("2024-01-01", periods=50, freq="min", name="time")
    pd.DataFrame({"score": np.linspace(0, 1, 50), "label": 0}, index=idx).to_csv(tmp_path / "s.csv")
    labels = pd.DataFrame({"label": (np.arange(50) > 44).astype(int)}, index=idx)
    labels.iloc[::-1].to_csv(tmp_path / "l.csv")  # other row order: joined on time, not position
    assert main(["evaluate", str(tmp_path / "s.csv"), str(tmp_path / "l.csv"), "--json"]) == EXIT_OK
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["AUC-ROC"] == pytest.approx(1.0)
    labels.set_axis(idx + pd.Timedelta(days=30)).to_csv(tmp_path / "late.csv")
    assert main(["evaluate", str(tmp_path / "s.csv"), str(tmp_path / "late.csv")]) == EXIT_BAD_INPUT
    assert "no scored time has a label" in capsys.readouterr().err
    args = ["evaluate", str(tmp_path / "s.csv"), str(tmp_path / "l.csv"), "--sliding-window", "500"]
    assert main(args) == EXIT_BAD_INPUT
    assert "--sliding-window" in capsys.readouterr().err
    labels.assign(label=0).to_csv(tmp_path / "none.csv")
    assert main(["evaluate", str(tmp_path / "s.csv"), str(tmp_path / "none.csv")]) == EXIT_OK
    assert "mark no anomaly" in capsys.readouterr().err


def test_fit_of_a_fused_model_reports_its_weights_and_their_evidence(tmp_path, capsys):
    _files(tmp_path)
    model = tmp_path / "model"
    argv = ["fit", str(tmp_path / "train.csv"), "-o", str(model), "--detector", "hybrid", "--preset", "tiny"]
    assert main(argv) == EXIT_OK
    line = next(x for x in capsys.readouterr().err.splitlines() if "fusion weights" in x)
    weights = tsdiff.load(model).weights_
    for name, weight in weights.items():
        assert f"{name} {weight:.2f} (skills " in line and "stability" in line
    assert line.endswith("[injection-stability]")

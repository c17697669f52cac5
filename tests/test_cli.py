"""The command line: the demo on the bundled data, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tsdiff.cli import EXIT_BAD_INPUT, EXIT_OK, main


def test_demo_runs_one_detector_on_bundled_data(capsys):
    assert main(["demo", "--detector", "pca", "--events", "2"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "SMD machine-1-2" in out and "| pca |" in out
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

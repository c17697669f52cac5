"""What every ``tsdiff`` command shares: exit codes, the parser class and its common options,
progress messages and reading a data file."""

from __future__ import annotations

import argparse
import sys

from tsdiff.registry import preset_names

EXIT_OK, EXIT_ANOMALY, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class CommandParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # usage errors: one line, exit 2
        sys.stderr.write(f"tsdiff: error: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def add_preset(parser: argparse.ArgumentParser, default: str, help: str = "") -> None:
    parser.add_argument(
        "--preset",
        choices=preset_names(),
        default=default,
        help=help
        or "the detector's preset (see tsdiff.registry); a detector without a quick preset of its own "
        "is quick with its defaults",
    )


def add_time_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--time-column",
        help="column holding the timestamps (default: a first column named timestamp, time, date or "
        "datetime, else none)",
    )
    parser.add_argument(
        "--time-unit",
        choices=("s", "ms", "us", "ns"),
        help="the time column holds epoch numbers in this unit (numbers are never taken as times without it)",
    )
    parser.add_argument(
        "--time-format",
        help="strftime pattern of text times that are not ISO 8601, e.g. '%%d/%%m/%%Y %%H:%%M' (no day/month "
        "guessing)",
    )
    parser.add_argument("--sep", default=",", help="CSV field separator (default ',')")


def add_fail_on_anomaly(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fail-on-anomaly", action="store_true", help="exit with 1 when any row is labelled anomalous"
    )


def read_data(path: str, args: argparse.Namespace) -> object:
    """The table ``path`` with the time options of ``args`` (see :func:`add_time_options`)."""
    from tsdiff.tableio import read_table

    return read_table(
        path, args.time_column, sep=args.sep, time_unit=args.time_unit, time_format=args.time_format
    )


_QUIET = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress messages or bars from here on."""
    global _QUIET
    _QUIET = bool(quiet)


def quieted(detector: object) -> object:
    """With ``--quiet``, ``detector`` and its components draw no progress bars."""
    from tsdiff.errors import NotFittedError

    if _QUIET:
        try:
            parts = [detector, *detector.fitted_components().values()]  # type: ignore[attr-defined]
        except NotFittedError:
            parts = [detector]
        for part in parts:
            if "verbose" in part.get_params(deep=False):  # type: ignore[attr-defined]
                part.set_params(verbose=False)  # type: ignore[attr-defined]
    return detector


def progress(message: str) -> None:
    if _QUIET:
        return
    sys.stderr.write(message + "\n")
    sys.stderr.flush()

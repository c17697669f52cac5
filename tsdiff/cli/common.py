"""What every ``tsdiff`` command shares: exit codes, the parser class and its common options,
progress messages and reading a data file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tsdiff.registry import preset_names

EXIT_OK, EXIT_ANOMALY, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class DefaultsFormatter(argparse.HelpFormatter):
    """``--help`` shows each option's default, unless its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = action.default not in (None, False, [], argparse.SUPPRESS) and action.option_strings
        if shown and "(default" not in text and not isinstance(action, argparse._VersionAction):  # noqa: SLF001
            text += " (default: %(default)s)"
        return text


class CommandParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr and exit code 2; defaults shown in ``--help``; the
    global ``-q``/``-v`` accepted after a sub-command too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # usage errors: one line, exit 2
        sys.stderr.write(f"tsdiff: error: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def add_verbosity(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``-v``/``-q``: on the top parser with their defaults; on a sub-command without, so that
    not giving them there keeps what was given before it."""
    default = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details on stderr", **default
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress messages or bars on stderr (errors still)",
        **default,
    )


def add_verbosity_everywhere(parser: argparse.ArgumentParser) -> None:
    """:func:`add_verbosity` on every sub-command (and theirs) of ``parser``."""
    for action in parser._actions:  # noqa: SLF001 (argparse has no public walk)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for child in dict.fromkeys(action.choices.values()):
                add_verbosity(child)
                add_verbosity_everywhere(child)


def add_preset(parser: argparse.ArgumentParser, default: str, help: str = "") -> None:
    parser.add_argument(
        "--preset",
        choices=preset_names(),
        default=default,
        help=help
        or "the detector's preset (see tsdiff.registry); every detector has default, quick and tiny, and "
        + "; ".join(f"{name} also {', '.join(extra)}" for name, extra in _own_presets().items()),
    )


def _own_presets() -> dict[str, list[str]]:
    """The presets of each detector beyond the ones every detector has."""
    from tsdiff.registry import DETECTORS, IMPLIED_PRESETS

    own = {name: [p for p in e.preset_names if p not in IMPLIED_PRESETS] for name, e in DETECTORS.items()}
    return {name: presets for name, presets in own.items() if presets}


def add_auth(parser: Any) -> None:
    """The options that authenticate to a Prometheus server (each secret read from a file)."""
    group = parser.add_argument_group("authenticating to Prometheus (secrets are read from files)")
    group.add_argument("--bearer-token-file", metavar="FILE", help="send the token in FILE as a bearer token")
    group.add_argument("--basic-auth-user", metavar="USER", help="basic authentication as USER")
    group.add_argument("--basic-auth-password-file", metavar="FILE", help="the basic-auth password, in FILE")
    group.add_argument(
        "--ca-file", metavar="FILE", help="PEM file of the CA that signed the server's certificate"
    )


def auth_from(args: argparse.Namespace) -> Any:
    """The :class:`~tsdiff.sources.http.Auth` of the options of :func:`add_auth`."""
    from tsdiff.sources.http import Auth

    return Auth(
        bearer_token_file=args.bearer_token_file,
        username=args.basic_auth_user,
        password_file=args.basic_auth_password_file,
        ca_file=args.ca_file,
    )


def add_merge_gap(parser: argparse.ArgumentParser, how: str) -> None:
    parser.add_argument(
        "--merge-gap",
        metavar="ROWS|DURATION",
        help=f"quiet time that ends an incident, in rows or as a duration such as 15m {how} (default: "
        "120 rows)",
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


def add_cold_start(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cold-start",
        action="store_true",
        help="score the first rows as if nothing came before them (default: a new watcher first reads "
        "the rows just before its first one, so that row is final as soon as any other)",
    )


#: tsdiff.stream.ADAPT_METHODS, kept here so the command line starts without numpy (tested equal)
ADAPT_CHOICES = ("budget", "window", "dspot", "spot")


def add_adapt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--adapt",
        choices=ADAPT_CHOICES,
        help="let the threshold follow the stream: budget (a row is flagged when it is the highest of "
        "the last 200 and above the model's threshold), window (refitted on the last 1,440 scores), dspot or "
        "spot (learned from the rows it does not flag); default: the model's fitted threshold",
    )

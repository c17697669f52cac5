"""The ``tsdiff`` command line.

Exit codes scripts can rely on: 0 success, 1 anomalies found (only with ``--fail-on-anomaly``),
2 bad input or usage (a one-line message on stderr), 3 an unexpected internal error; ``tsdiff fleet``
adds 4 (some entities failed, the others' results written) and 5 (4, and anomalies found).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from tsdiff.cli.batch import run_demo, run_evaluate, run_explain, run_fit, run_score
from tsdiff.cli.common import EXIT_ANOMALY, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, set_quiet
from tsdiff.cli.live import run_stream, run_watch
from tsdiff.cli.parser import build_parser
from tsdiff.errors import TsdiffError

__all__ = ["EXIT_ANOMALY", "EXIT_BAD_INPUT", "EXIT_INTERNAL", "EXIT_OK", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tsdiff`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    set_quiet(args.quiet)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # Dask sets its loggers to INFO when imported: a fleet run would chatter
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error" if args.quiet else "warning")
    try:
        if args.command == "demo":
            return run_demo(args)
        if args.command == "fit":
            return run_fit(args)
        if args.command == "score":
            return run_score(args)
        if args.command == "stream":
            return run_stream(args)
        if args.command == "explain":
            return run_explain(args)
        if args.command == "watch":
            return run_watch(args)
        if args.command == "evaluate":
            return run_evaluate(args)
        if args.command == "fleet":
            from tsdiff.fleet.cli import run_fleet

            return run_fleet(args)
    except TsdiffError as exc:
        sys.stderr.write(f"tsdiff: error: {exc}\n")
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader went away (e.g. `tsdiff ... | head`): not a failure of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except OSError as exc:  # a missing file, no permission, a full disk: the user's to fix
        where = f": {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"tsdiff: error: {exc.strerror or exc}{where}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("tsdiff: interrupted\n")
        return 130
    except Exception as exc:  # an internal error must not read as "anomalies found" (exit 1)
        if args.verbose:
            logging.getLogger("tsdiff").exception("internal error")
        sys.stderr.write(f"tsdiff: internal error: {type(exc).__name__}: {exc}\n")
        return EXIT_INTERNAL
    parser.error(f"unknown command {args.command!r}")
    return EXIT_BAD_INPUT

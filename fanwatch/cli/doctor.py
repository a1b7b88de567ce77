"""``fanwatch doctor [PATH]``: can fanotify do this job here, and if not, why.

Exit codes: 0 when the job chosen with ``--for`` can run here,
NOT_SUPPORTED (3) when it cannot, USAGE (2) for a bad PATH or recording.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..doctor import JOBS, replay, run_live
from ..doctor.render import to_json, to_text
from ..doctor.selftests import DEFAULT_EVENT_TIMEOUT
from ..errors import FanwatchError, short_path
from . import exitcodes


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "doctor",
        help="explain why fanotify fails here and the least-privilege fix",
        description=(
            "Collect facts, probe fanotify_init in child processes and run live "
            "self-tests, then print a verdict, findings and fixes. Exit status 0 "
            "if the job chosen with --for can run here, 3 if not."
        ),
    )
    parser.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="the directory to judge (default: the temporary directory)",
    )
    parser.add_argument(
        "--for",
        dest="job",
        choices=JOBS,
        default="watch",
        help="the job to judge (default: watch)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the whole report as JSON (schema version 1)",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="also list every probe"
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=DEFAULT_EVENT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long each self-test waits for its event (default {DEFAULT_EVENT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--replay",
        metavar="DIR",
        help="judge a recorded tree (proc/, sys/, root/, recorded.json) instead of this machine",
    )
    parser.add_argument(
        "--record",
        metavar="DIR",
        help=(
            "run as usual and also write what doctor read, probed and tested "
            "into DIR (new or empty), for --replay"
        ),
    )
    parser.set_defaults(run=run)

    return parser


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")

    return value


def run(args: argparse.Namespace) -> int:
    if args.replay and args.record:
        raise _usage("--record and --replay cannot be used together")
    if args.replay:
        if args.path:
            raise _usage("PATH and --replay cannot be used together")
        report = replay(args.replay, args.job)
    else:
        if args.path is not None and not os.path.isdir(args.path):
            raise _usage(f"{short_path(args.path)}: not an existing directory")
        report = run_live(
            args.path, args.job, event_timeout=args.timeout, record=args.record
        )

    text = to_json(report) if args.json else to_text(report, verbose=args.verbose)
    sys.stdout.write(text)
    sys.stdout.flush()

    return exitcodes.OK if report["verdict"]["ok"] else exitcodes.NOT_SUPPORTED


def _usage(message: str) -> FanwatchError:
    error = FanwatchError(f"doctor: {message}")
    error.exit_code = exitcodes.USAGE

    return error

"""``fanwatch guard``: answer permission events by a policy."""

from __future__ import annotations

import argparse
import os

from ..errors import FanwatchError, NotSupportedError, PolicyError, short_path
from ..guard import DEFAULT_DEADLINE, DEFAULT_WATCHDOG, Guard, GuardConfig
from ..guard.core import MAX_WORKERS
from ..policy import load_policy
from . import exitcodes

# Past these a stuck decision or a stalled loop would block openers for
# longer than anyone would wait; nan and inf would never expire at all.
DEADLINE_RANGE_MS = (1.0, 60_000.0)
WATCHDOG_RANGE = (0.5, 3600.0)


DESCRIPTION = """\
Answer fanotify permission events (open, exec, read access) on the given
paths or mount by the rules of a policy file. Without --policy every access
is allowed and each open and close-after-write is printed. "ready" is
printed on stderr (and --ready-file written, READY=1 sent to systemd) once
the marks are in place. SIGHUP reloads the policy; SIGTERM/SIGINT answer
pending events by the default decision and exit (143 for SIGTERM, 130
for SIGINT). Exit 5 means the
watchdog found the decision loop stalled and released every pending access.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "guard",
        help="answer permission events by a policy",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="files or directories to guard"
    )
    parser.add_argument(
        "--mount", metavar="DIR", help="guard the whole mount that holds DIR"
    )
    parser.add_argument(
        "--policy", metavar="FILE", help="TOML policy (see docs/GUARD.md)"
    )
    parser.add_argument(
        "--permissive",
        action="store_true",
        help="record what would be denied, allow everything",
    )
    parser.add_argument(
        "--deadline",
        type=_number_in(*DEADLINE_RANGE_MS),
        default=DEFAULT_DEADLINE * 1000,
        metavar="MS",
        help="answer by the default decision after MS milliseconds, "
        f"1 to 60000 (default {DEFAULT_DEADLINE * 1000:g})",
    )
    parser.add_argument(
        "--watchdog",
        type=_number_in(*WATCHDOG_RANGE),
        default=DEFAULT_WATCHDOG,
        metavar="SECONDS",
        help="release everything and exit 5 if the loop stalls this long, "
        f"0.5 to 3600 (default {DEFAULT_WATCHDOG:g})",
    )
    parser.add_argument(
        "--log",
        metavar="FILE",
        help="decision log, JSON lines ('-': stdout; the default with --policy)",
    )
    parser.add_argument(
        "--ready-file",
        metavar="FILE",
        help="written (with our pid) once marks are in place",
    )
    parser.add_argument(
        "--no-kernel-cache",
        dest="kernel_cache",
        action="store_false",
        help="do not cache allow decisions in the kernel with ignore marks",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        metavar="N",
        help=f"threads reading /proc, 1 to {MAX_WORKERS} (default 4)",
    )
    parser.set_defaults(run=run)

    return parser


def _number_in(low: float, high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:  # also false for nan
            raise argparse.ArgumentTypeError(
                f"must be between {low:g} and {high:g}: {text!r}"
            )
        return value

    return parse


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        policy = load_policy(args.policy) if args.policy else None
    except PolicyError as exc:
        exc.exit_code = exitcodes.USAGE
        raise
    guard = Guard(config, policy)
    try:
        guard.setup()
    except NotSupportedError as exc:
        exc.exit_code = exitcodes.NOT_SUPPORTED
        raise

    return guard.run()


def config_from_args(args: argparse.Namespace) -> GuardConfig:
    """Check the command line; raises FanwatchError (exit 2) on misuse."""
    if bool(args.paths) == bool(args.mount):
        raise _usage("give either PATH... or --mount DIR")
    for path in [args.mount] if args.mount else args.paths:
        if not os.path.exists(path):
            raise _usage(f"{short_path(path)}: no such file or directory")
    if not 1 <= args.workers <= MAX_WORKERS:
        raise _usage(f"--workers must be between 1 and {MAX_WORKERS}")
    log = args.log if args.log is not None else ("-" if args.policy else None)

    return GuardConfig(
        paths=[os.path.abspath(p) for p in args.paths],
        mount=args.mount,
        policy_path=args.policy,
        permissive=args.permissive,
        deadline=args.deadline / 1000,
        watchdog=args.watchdog,
        log_path=log,
        ready_file=args.ready_file,
        kernel_cache=args.kernel_cache,
        workers=args.workers,
    )


def _usage(message: str) -> FanwatchError:
    error = FanwatchError(message)
    error.exit_code = exitcodes.USAGE
    return error

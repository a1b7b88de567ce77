"""``fanwatch guard``: answer permission events by a policy."""

from __future__ import annotations

import argparse
import os

from ..errors import FanwatchError, NotSupportedError, PolicyError, short_path
from ..guard import DEFAULT_DEADLINE, DEFAULT_WATCHDOG, Guard, GuardConfig
from ..policy import load_policy
from . import exitcodes

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
        type=_positive_ms,
        default=DEFAULT_DEADLINE * 1000,
        metavar="MS",
        help="answer by the default decision after MS milliseconds "
        f"(default {DEFAULT_DEADLINE * 1000:g})",
    )
    parser.add_argument(
        "--watchdog",
        type=_positive_float,
        default=DEFAULT_WATCHDOG,
        metavar="SECONDS",
        help="release everything and exit 5 if the loop stalls this long "
        f"(default {DEFAULT_WATCHDOG:g})",
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
        help="threads reading /proc (default 4)",
    )
    parser.set_defaults(run=run)

    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
    return value


def _positive_ms(text: str) -> float:
    return _positive_float(text)


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
    if args.workers < 1:
        raise _usage("--workers must be at least 1")
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

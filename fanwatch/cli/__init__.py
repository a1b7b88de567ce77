"""The ``fanwatch`` command: one module per subcommand, dispatched here.

Each subcommand module defines ``add_parser(subparsers)`` returning its
parser, with ``run`` set as the handler through ``set_defaults(run=...)``;
``run(args)`` returns an exit code from :mod:`fanwatch.cli.exitcodes`.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from typing import NoReturn

from .. import __version__
from ..errors import FanwatchError, short_path
from ..output import escape
from . import exitcodes

SUBCOMMANDS = ("watch", "guard", "policy", "doctor", "seccomp")

# Hints for errnos whose usual cause in fanotify work the project knows.
ERRNO_HINTS = {
    errno.EPERM: "this needs privilege or is blocked by seccomp; run 'fanwatch doctor'",
    errno.ENOSYS: "fanotify is missing or blocked here; run 'fanwatch doctor'",
    errno.EMFILE: "too many fanotify groups or open files (max_user_groups, ulimit -n)",
    errno.ENOSPC: "the fanotify mark limit is reached (/proc/sys/fs/fanotify/max_user_marks)",
    errno.EOPNOTSUPP: "this filesystem cannot report file handles for this kind of mark",
    errno.ENODEV: "this filesystem has no fsid (FUSE and similar); fanotify FID marks cannot work here",
    errno.EXDEV: "a btrfs subvolume: use directory marks instead of mount or filesystem marks",
}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming its command:
    ``fanwatch watch: <message> (see 'fanwatch watch --help')``, exit 2."""

    def error(self, message: str) -> NoReturn:
        line = f"{self.prog}: {escape(message)} (see '{self.prog} --help')"
        self.exit(exitcodes.USAGE, line + "\n")

    def parse_known_args(self, args=None, namespace=None):
        # argparse hands a subcommand's unknown arguments up to the top
        # parser, which would report them as its own; the subcommand that
        # was given them reports them instead. Nothing here wants extras.
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")

        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="fanwatch",
        description="Monitor and control file access with Linux fanotify.",
    )
    parser.add_argument(
        "--version", action="version", version=f"fanwatch {__version__}"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logging"
    )
    # Subcommand parsers, and theirs, are built from parser_class.
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineParser
    )
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        module.add_parser(subparsers)

    return parser


def describe_error(exc: BaseException) -> tuple[str, str | None]:
    """The message and optional hint for an exception, each one line:
    control characters (from paths, mostly) are escaped."""
    message, hint = _describe(exc)

    return escape(message), escape(hint) if hint else None


def _describe(exc: BaseException) -> tuple[str, str | None]:
    if isinstance(exc, FanwatchError):
        return str(exc), exc.hint
    if isinstance(exc, OSError):
        where = f"{short_path(exc.filename)}: " if exc.filename else ""
        reason = exc.strerror or str(exc)
        return f"{where}{reason}", ERRNO_HINTS.get(exc.errno)

    return f"{type(exc).__name__}: {exc}", None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return exitcodes.USAGE

    try:
        return args.run(args)
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return exitcodes.BROKEN_PIPE
    except (FanwatchError, OSError) as exc:
        if args.debug:
            raise
        message, hint = describe_error(exc)
        print(f"fanwatch: {message}", file=sys.stderr)
        if hint:
            print(f"fanwatch: hint: {hint}", file=sys.stderr)
        code = getattr(exc, "exit_code", None)
        return code if code is not None else exitcodes.FAILURE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's flush at exit
    does not raise a second BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)

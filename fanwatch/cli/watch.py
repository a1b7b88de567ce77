"""``fanwatch watch``: who touched which file, live."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import TextIO

from ..errors import FanwatchError, short_path
from ..filters import USER_EVENTS, EventFilter, parse_event_names
from ..output import CsvFormatter, formatter_for
from ..watcher import DEFAULT_EVENTS, Scope, Watcher
from . import exitcodes

DESCRIPTION = """\
Report which process opens, reads, writes, creates, deletes, renames or
executes which file under PATH (default: the current directory, recursively).

With CAP_SYS_ADMIN a filesystem mark sees everything under PATH, with process
details. Without it (Linux 5.13+), each directory gets its own mark and
process ids are not reported.
"""

EPILOG = """\
exit status: 0 done (Ctrl-C excepted), 1 error, 2 bad usage, 3 fanotify
unavailable here (see 'fanwatch doctor'), 4 --timeout before --count events,
130 Ctrl-C, 141 output closed, 143 SIGTERM.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "watch",
        help="report file accesses live",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="what to watch")

    scope = parser.add_argument_group("scope").add_mutually_exclusive_group()
    scope.add_argument(
        "--mount",
        action="store_true",
        help="every access through the mount holding PATH",
    )
    scope.add_argument(
        "--filesystem", action="store_true", help="the whole filesystem holding PATH"
    )
    parser.add_argument(
        "--no-recursive",
        dest="recursive",
        action="store_false",
        help="watch only PATH's direct entries",
    )
    parser.add_argument(
        "--unprivileged",
        action="store_true",
        help="use unprivileged mode even with CAP_SYS_ADMIN",
    )

    chosen = parser.add_argument_group("filters")
    chosen.add_argument(
        "-e",
        "--events",
        action="append",
        default=[],
        metavar="LIST",
        help=f"comma-separated events to report: {', '.join(USER_EVENTS)}",
    )
    chosen.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="report only paths matching GLOB (** for subtrees)",
    )
    chosen.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="never report paths matching GLOB",
    )
    for name, kind, what in (
        ("pid", number, "process id"),
        ("comm", str, "command name"),
        ("uid", number, "user id"),
    ):
        chosen.add_argument(
            f"--{name}",
            action="append",
            type=kind,
            default=[],
            metavar=name.upper(),
            help=f"only events by this {what}",
        )
        chosen.add_argument(
            f"--exclude-{name}",
            action="append",
            type=kind,
            default=[],
            metavar=name.upper(),
            help=f"no events by this {what}",
        )

    out = parser.add_argument_group("output")
    style = out.add_mutually_exclusive_group()
    style.add_argument("--json", action="store_true", help="one JSON object per line")
    style.add_argument("--csv", action="store_true", help="CSV with a header row")
    style.add_argument(
        "--format",
        metavar="TEMPLATE",
        help="a line template, e.g. '{time} {comm} {events} {path}'",
    )
    out.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write events to FILE (never overwrites an existing file)",
    )
    out.add_argument(
        "--no-process",
        dest="process_details",
        action="store_false",
        help="do not read process details from /proc",
    )
    out.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no status line on stderr (limitations are still shown)",
    )

    stop = parser.add_argument_group("stopping")
    stop.add_argument(
        "-c", "--count", type=count, metavar="N", help="stop after N events"
    )
    stop.add_argument(
        "-t", "--timeout", type=seconds, metavar="SECONDS", help="stop after SECONDS"
    )
    parser.set_defaults(run=run)

    return parser


def count(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


# About 30 years: beyond it a timeout is a typo, and time arithmetic overflows.
MAX_SECONDS = 1e9


def seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= MAX_SECONDS:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds above 0 and at most {MAX_SECONDS:.0f}"
        )
    return value


def number(text: str) -> int:
    """A pid or uid: a non-negative integer."""
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError("must be a number from 0 to 4294967295")
    return value


class UsageError(FanwatchError):
    """A bad option value (an unknown event, a bad template): exit status 2."""

    exit_code = exitcodes.USAGE


def _check_usage(make, *args, **kwargs):
    """Call *make*; a FanwatchError it raises is a usage error."""
    try:
        return make(*args, **kwargs)
    except FanwatchError as exc:
        raise UsageError(str(exc), hint=exc.hint) from None


def build_watcher(args: argparse.Namespace) -> Watcher:
    scope = (
        Scope.MOUNT
        if args.mount
        else Scope.FILESYSTEM
        if args.filesystem
        else Scope.TREE
    )
    event_filter = _check_usage(
        EventFilter,
        include=args.include,
        exclude=args.exclude,
        pids=set(args.pid),
        exclude_pids=set(args.exclude_pid),
        comms=set(args.comm),
        exclude_comms=set(args.exclude_comm),
        uids=set(args.uid),
        exclude_uids=set(args.exclude_uid),
    )

    if args.unprivileged and (args.mount or args.filesystem):
        raise UsageError(
            "--unprivileged watches directory trees; it cannot be combined with "
            "--mount or --filesystem"
        )
    paths = args.paths or ["."]
    _check_paths(paths)
    watcher = Watcher(
        paths,
        scope=scope,
        events=(
            _check_usage(parse_event_names, args.events)
            if args.events
            else DEFAULT_EVENTS
        ),
        recursive=args.recursive,
        filter=event_filter,
        process_details=args.process_details,
        mode="unprivileged" if args.unprivileged else "auto",
    )
    try:
        _check_process_filters(args, watcher)
    except BaseException:
        watcher.close()
        raise

    return watcher


def _check_paths(paths: list[str]) -> None:
    for path in paths:
        if not path:
            raise UsageError("an empty PATH names nothing")
        if not os.path.exists(path):
            raise UsageError(f"{short_path(path)}: no such file or directory")


def _check_process_filters(args: argparse.Namespace, watcher: Watcher) -> None:
    """Process filters cannot match where the kernel gives no pid, or where
    process details are not read: refuse them rather than print nothing."""
    wanted = [
        f"--{name}"
        for name in ("pid", "comm", "uid", "exclude_pid", "exclude_comm", "exclude_uid")
        if getattr(args, name)
    ]
    too_long = [
        c for c in args.comm + args.exclude_comm if len(c.encode()) > 15 or not c
    ]
    if too_long:
        raise UsageError(
            f"--comm {too_long[0]!r}: command names are 1 to 15 bytes long "
            "(the kernel truncates longer ones)",
        )
    if not wanted:
        return
    options = ", ".join(option.replace("_", "-") for option in wanted)
    if not watcher.privileged:
        raise UsageError(
            f"{options}: process ids are not reported in unprivileged mode",
            hint="run with CAP_SYS_ADMIN ('fanwatch doctor' shows how)",
        )
    needs_details = [o for o in wanted if "pid" not in o]
    if needs_details and not args.process_details:
        raise UsageError(
            f"{', '.join(needs_details)}: needs process details, "
            "which --no-process turns off"
        )


def open_output(path: str | None) -> TextIO:
    """Standard output, or a new file that must not exist yet.

    Not line-buffered: the loop flushes after each batch of events, which
    is as prompt for a reader and saves a write() per line.
    """
    if path is None:
        sys.stdout.reconfigure(line_buffering=False, errors="backslashreplace")
        return sys.stdout
    try:
        return open(path, "x", encoding="utf-8", errors="backslashreplace")
    except FileExistsError:
        raise FanwatchError(
            f"{short_path(path)}: already exists",
            hint="fanwatch never overwrites; choose a new name",
        ) from None


class _Stop(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _on_signal(signum: int, _frame: object) -> None:
    # The first signal stops cleanly; a second one kills at once.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise _Stop(
        exitcodes.INTERRUPTED if signum == signal.SIGINT else exitcodes.TERMINATED
    )


def run(args: argparse.Namespace) -> int:
    fmt = (
        "json"
        if args.json
        else "csv"
        if args.csv
        else "format"
        if args.format is not None
        else "text"
    )
    formatter = _check_usage(formatter_for, fmt, args.format)
    watcher = build_watcher(args)
    try:
        output = open_output(args.output)
    except BaseException:
        watcher.close()
        raise
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        _announce(watcher, args)
        if isinstance(formatter, CsvFormatter):
            output.write(formatter.header() + "\n")
        code = _loop(watcher, formatter, output, args.count, args.timeout)
    except _Stop as stop:
        code = stop.code
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        watcher.close()
        if output is not sys.stdout:
            output.close()
    _summarize(watcher)

    return code


def _loop(
    watcher: Watcher,
    formatter,
    output: TextIO,
    count: int | None,
    timeout: float | None,
) -> int:
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return exitcodes.TIMEOUT if count else exitcodes.OK
        for event in watcher.read(remaining):
            output.write(formatter(event) + "\n")
            seen += 1
            if count and seen >= count:
                output.flush()
                return exitcodes.OK
        output.flush()
        if watcher.roots_gone and len(watcher.roots_gone) == len(watcher.paths):
            print(
                "fanwatch: note: every watched directory was deleted; stopping",
                file=sys.stderr,
                flush=True,
            )
            return exitcodes.OK


def _announce(watcher: Watcher, args: argparse.Namespace) -> None:
    if not args.quiet:
        where = ", ".join(os.fsdecode(p) for p in watcher.paths)
        print(
            f"fanwatch: watching {where} ({watcher.mode_description}, "
            f"{watcher.stats.marks} mark(s))",
            file=sys.stderr,
            flush=True,
        )
    for note in watcher.notes:
        print(f"fanwatch: note: {note}", file=sys.stderr, flush=True)
    if watcher.stats.unmarkable:
        print(
            f"fanwatch: note: {len(watcher.stats.unmarkable)} director(ies) could not be "
            "watched (unreadable or vanished)",
            file=sys.stderr,
            flush=True,
        )


def _summarize(watcher: Watcher) -> None:
    if watcher.stats.overflows:
        print(
            f"fanwatch: the kernel queue overflowed {watcher.stats.overflows} time(s): "
            "events were lost",
            file=sys.stderr,
        )

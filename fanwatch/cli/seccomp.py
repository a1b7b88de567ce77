"""``fanwatch seccomp``: what a container's seccomp profile lets fanwatch do.

``check`` evaluates a Docker/OCI profile for each job, ``patch`` writes the
smallest change that lets a job run, ``resolve`` writes the concrete
``linux.seccomp`` object a runtime loads. See docs/SECCOMP.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from ..errors import FanwatchError, ProfileError, short_path
from ..seccomp import (
    JOB_CAPS,
    JOB_SYSCALLS,
    Profile,
    capability_set,
    check_job,
    load_profile,
    native_arch,
    parse_kernel,
    patch_for,
)
from ..seccomp.jobs import JobReport
from ..seccomp.names import DOCKER_DEFAULT_CAPS, errno_name, machine_kernel
from . import exitcodes

JSON_VERSION = 1
JOBS = tuple(JOB_SYSCALLS)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "seccomp",
        help="check or fix a container seccomp profile for fanwatch",
        description="Evaluate a Docker/OCI seccomp profile as the runtime loads it.",
    )
    commands = parser.add_subparsers(
        dest="seccomp_command", metavar="ACTION", required=True
    )

    check = commands.add_parser("check", help="say which syscalls each job gets")
    _add_common(check, caps=True)
    check.add_argument("--for", dest="job", choices=JOBS, help="check only this job")
    check.add_argument("--json", action="store_true", help="print a JSON report")
    check.set_defaults(run=run_check)

    patch = commands.add_parser("patch", help="write the smallest change a job needs")
    _add_common(patch, caps=False)
    patch.add_argument("--for", dest="job", choices=JOBS, required=True)
    patch.add_argument(
        "-o", "--output", required=True, help="new file to write, - for stdout"
    )
    patch.set_defaults(run=run_patch)

    resolve = commands.add_parser(
        "resolve", help="write the linux.seccomp object a runtime loads"
    )
    _add_common(resolve, caps=True)
    resolve.add_argument(
        "-o", "--output", required=True, help="new file to write, - for stdout"
    )
    resolve.set_defaults(run=run_resolve)

    return parser


def _add_common(parser: argparse.ArgumentParser, caps: bool) -> None:
    parser.add_argument("profile", metavar="PROFILE", help="seccomp profile (JSON)")
    if caps:
        parser.add_argument(
            "--cap-add",
            action="append",
            default=[],
            metavar="CAP",
            help="add to Docker's default capability set (ALL for every one)",
        )
        parser.add_argument(
            "--cap-drop",
            action="append",
            default=[],
            metavar="CAP",
            help="remove from the capability set (ALL for every one)",
        )
    parser.add_argument("--arch", help="architecture (default: this machine's)")
    parser.add_argument(
        "--kernel", metavar="X.Y", help="kernel version (default: running)"
    )


def run_check(args) -> int:
    profile, caps, arch, kernel = _inputs(args)
    reports = [check_job(profile, job, caps, arch, kernel) for job in JOBS]
    checked = {
        r.job
        for r in reports
        if r.job == args.job or (not args.job and not r.missing_caps)
    }
    ok = all(report.ok for report in reports if report.job in checked)
    if args.json:
        _print_json(profile, caps, arch, kernel, reports, checked, ok)
    else:
        _print_text(profile, caps, arch, kernel, reports, checked)

    return exitcodes.OK if ok else exitcodes.NOT_SUPPORTED


def run_patch(args) -> int:
    profile, _, arch, kernel = _inputs(args, caps=False)
    patched, changes = patch_for(profile.data, args.job, arch, kernel)
    _write_output(args.output, _dumps(patched, profile.text or ""))
    # With the profile on stdout, the words about it go to stderr.
    report = sys.stderr if args.output == "-" else sys.stdout
    needed = " + ".join(sorted(JOB_CAPS[args.job]))
    if needed:
        print(
            f"{args.job} needs {needed}: run the container with --cap-add {needed[4:]}",
            file=report,
        )
    if not changes:
        with_caps = needed or "no capability"
        print(
            f"no change needed: the profile already allows {args.job} with {with_caps}",
            file=report,
        )
    for change in changes:
        print(f"changed: {change}", file=report)
    if args.output != "-":
        print(f"wrote {args.output}")

    return exitcodes.OK


def run_resolve(args) -> int:
    profile, caps, arch, kernel = _inputs(args)
    resolved = profile.resolve(caps, arch, kernel)
    if profile.data.get("flags"):
        print("fanwatch: note: flags left out (runc 1.1 refuses them)", file=sys.stderr)
    _write_output(args.output, json.dumps(resolved, indent=2) + "\n")

    return exitcodes.OK


def _inputs(args, caps: bool = True) -> tuple[Profile, frozenset[str], str, tuple]:
    """The checked profile and the context from the command line; bad
    values are usage errors (exit code 2)."""
    try:
        cap_set = (
            capability_set(args.cap_add, args.cap_drop) if caps else DOCKER_DEFAULT_CAPS
        )
        arch = native_arch(args.arch)
        kernel = parse_kernel(args.kernel) if args.kernel else machine_kernel()
    except ValueError as exc:
        raise _usage(str(exc)) from None
    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        exc.exit_code = exitcodes.USAGE
        raise

    return profile, cap_set, arch, kernel


def _usage(message: str) -> FanwatchError:
    error = FanwatchError(message)
    error.exit_code = exitcodes.USAGE

    return error


def _write_output(path: str, text: str) -> None:
    """Write *text* to stdout when *path* is ``-``, else to the new file."""
    if path == "-":
        sys.stdout.write(text)
    else:
        _write_new(path, text)


def _write_new(path: str, text: str) -> None:
    """Write *text* to *path*, which must not exist yet."""
    try:
        with open(path, "x", encoding="utf-8") as stream:
            stream.write(text)
    except FileExistsError:
        raise FanwatchError(
            f"{short_path(path)}: already exists, not overwritten",
            hint="choose another -o path",
        ) from None


def _dumps(data: dict, original: str) -> str:
    """*data* as JSON indented like *original* (2 spaces when unknown)."""
    match = re.search(r"\n([ \t]+)\S", original)
    indent = match.group(1) if match else 2
    if isinstance(indent, str) and indent.strip(" ") == "":
        indent = len(indent)

    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def _context_line(caps, arch, kernel) -> str:
    extra = sorted(caps - DOCKER_DEFAULT_CAPS)
    missing = sorted(DOCKER_DEFAULT_CAPS - caps)
    words = "Docker's default capabilities"
    if extra:
        words += " + " + ", ".join(extra)
    if missing:
        words += " - " + ", ".join(missing)

    return f"on {arch}, kernel {'.'.join(map(str, kernel))}, {words}"


def _print_text(profile, caps, arch, kernel, reports, checked) -> None:
    default = profile.default_verdict()
    print(f"{profile.source}: unlisted syscalls are {default.summary()}")
    print(_context_line(caps, arch, kernel))
    for report in reports:
        print()
        _print_report(report, profile.source, report.job in checked)


def _print_report(report: JobReport, source: str, checked: bool) -> None:
    needed = " + ".join(sorted(report.missing_caps))
    if not checked:
        print(f"{report.job}: not checked, needs {needed} (add --cap-add {needed[4:]})")
        return
    state = "ok" if report.ok else "BLOCKED"
    if report.missing_caps:
        state = f"BLOCKED: needs {needed}"
    print(f"{report.job}: {state}")
    for need, verdicts in report.rows:
        shown = next((v for v in verdicts if v.allowed), verdicts[0])
        optional = "" if need.required else " (optional)"
        print(f"  {shown.syscall:<20} {shown.describe()}{optional}")
    if report.blocked:
        names = ", ".join(need.names[0] for need in report.blocked)
        command = f"fanwatch seccomp patch {source} --for {report.job} -o NEW.json"
        print(f"  fix: {command} ({names})")


def _print_json(profile, caps, arch, kernel, reports, checked, ok) -> None:
    default = profile.default_verdict()
    document = {
        "version": JSON_VERSION,
        "profile": profile.source,
        "arch": arch,
        "kernel": ".".join(map(str, kernel)),
        "capabilities": sorted(caps),
        "default": {
            "action": default.action,
            "errno": default.errno,
            "errno_name": errno_name(default.errno) or None,
        },
        "ok": ok,
        "jobs": [
            dict(report.to_dict(), checked=report.job in checked) for report in reports
        ],
    }
    print(json.dumps(document, indent=2))

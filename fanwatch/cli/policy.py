"""``fanwatch policy check|explain``: validate a policy, or trace one decision."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import PolicyError
from ..policy import ACCESS_KINDS, Subject
from ..policy.lint import check_policy, explain
from ..policy.model import load_policy
from . import exitcodes


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "policy", help="check a guard policy or explain a decision"
    )
    commands = parser.add_subparsers(dest="policy_command", metavar="ACTION")

    check = commands.add_parser(
        "check",
        help="validate and lint a policy file",
        description="Report errors (exit 2) and warnings (exit 0, or 2 with --strict), "
        "each as FILE:LINE: severity: rule 'id': message [code].",
    )
    check.add_argument("file", metavar="FILE")
    check.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="PATH",
        help="a path the guard will watch: warn about globs matching nothing under it",
    )
    check.add_argument("--strict", action="store_true", help="fail on warnings too")
    check.add_argument(
        "--json", action="store_true", help="findings as one JSON document"
    )
    check.set_defaults(run=run_check)

    why = commands.add_parser("explain", help="which rule decides an access, and why")
    why.add_argument("file", metavar="FILE")
    why.add_argument("--path", required=True, metavar="P")
    why.add_argument("--access", choices=ACCESS_KINDS, default="open")
    why.add_argument("--exe", metavar="E")
    why.add_argument("--comm", metavar="NAME")
    why.add_argument("--uid", type=int, metavar="U")
    why.add_argument("--gid", type=int, metavar="G")
    why.add_argument("--pid", type=int, default=0, metavar="N")
    why.add_argument("--parent-exe", metavar="E")
    why.add_argument("--container", metavar="ID")
    why.set_defaults(run=run_explain)
    parser.set_defaults(run=lambda args: _usage(parser))

    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return exitcodes.USAGE


def run_check(args: argparse.Namespace) -> int:
    policy, findings = _with_usage_code(lambda: check_policy(args.file, args.root))
    errors = [f for f in findings if f.severity == "error"]
    if args.json:
        document = {
            "version": 1,
            "file": args.file,
            "ok": not errors,
            "findings": [vars(f) for f in findings],
        }
        print(json.dumps(document, indent=2))
    else:
        for finding in findings:
            print(finding)
        if not errors:
            print(
                f"{args.file}: ok: {len(policy.rules)} rules, default {policy.default}"
            )
    failed = errors or (args.strict and findings)

    return exitcodes.USAGE if failed else exitcodes.OK


def run_explain(args: argparse.Namespace) -> int:
    policy = _with_usage_code(lambda: load_policy(args.file))
    subject = Subject(
        pid=args.pid,
        exe=args.exe,
        comm=args.comm,
        uid=args.uid,
        gid=args.gid,
        parent_exe=args.parent_exe,
        container=args.container,
    )
    result = explain(policy, args.access, args.path, subject)
    print(f"{args.access} {args.path} under {args.file} ({len(policy.rules)} rules):")
    for line in result.lines(policy):
        print(line)

    return exitcodes.OK


def _with_usage_code(call):
    try:
        return call()
    except PolicyError as exc:
        exc.exit_code = exitcodes.USAGE
        raise

"""The doctor report as text for a person, or as JSON for a program."""

from __future__ import annotations

import json

from .findings import JOBS, describe
from .probes import PROBE_NAMES
from .selftests import SELFTEST_NAMES


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def to_text(report: dict, *, verbose: bool = False) -> str:
    """Verdict first, then findings with evidence and fixes, then a summary of facts."""
    lines = _verdict_lines(report["verdict"])
    if report["findings"]:
        lines.append("")
        for finding in report["findings"]:
            lines += _finding_lines(finding)
    lines.append("")
    lines += _fact_lines(report)
    lines.append("")
    lines += _selftest_lines(report)
    if verbose:
        lines.append("")
        lines += _probe_lines(report)

    return "\n".join(lines) + "\n"


def _verdict_lines(verdict: dict) -> list[str]:
    jobs = "  ".join(
        f"{job}: {'yes' if verdict['jobs'][job] else 'no'}" for job in JOBS
    )
    return [f"verdict: {verdict['summary']}", f"  {jobs}"]


def _finding_lines(finding: dict) -> list[str]:
    lines = [f"[{finding['severity']}] {finding['id']}: {finding['message']}"]
    lines += [f"    evidence: {item}" for item in finding["evidence"]]
    for fix in finding["fixes"]:
        lines.append(f"    fix ({fix['runtime']}): {fix['summary']}")
        if fix["snippet"]:
            lines += [f"        {row}" for row in fix["snippet"].splitlines()]
        lines.append(f"      cost: {fix['cost']}")
    lines.append("")

    return lines


def _fact_lines(report: dict) -> list[str]:
    facts = report["facts"]
    kernel = facts["kernel"]
    seccomp = facts["seccomp"]
    runtime = facts["runtime"]
    userns = facts["user_namespace"]
    path = facts["path"]
    limits = facts["limits"]
    sys_admin = facts["capabilities"]["sys_admin"]
    rows = [
        (
            "kernel",
            f"{kernel['release']} (fanotify limits in /proc: {_yes(kernel['fanotify_sysctl'])})",
        ),
        (
            "runtime",
            f"{runtime['name']}"
            + (f" ({'; '.join(runtime['evidence'])})" if runtime["evidence"] else ""),
        ),
        ("uid", str(facts["uid"])),
        (
            "CAP_SYS_ADMIN",
            f"effective {_yes(sys_admin['effective'])}, bounding {_yes(sys_admin['bounding'])}",
        ),
        ("seccomp", f"mode {seccomp['mode']}, {seccomp['filters']} filter(s)"),
        (
            "user namespace",
            "initial"
            if userns["initial"]
            else f"not initial ({' | '.join(userns['uid_map'] or [])})",
        ),
        (
            "path",
            f"{path['resolved']} on {path['fs_type']} (mount {path['mount_point']})",
        ),
        (
            "limits",
            f"groups {limits['groups_used']}/{limits['max_user_groups']}, marks {limits['marks_used']}/{limits['max_user_marks']}, queue {limits['max_queued_events']}, nofile {limits['nofile']['soft'] or 'unknown'}",
        ),
        (
            "listeners",
            f"{len(facts['listeners'])} other fanotify group(s)"
            + ("" if facts["listeners_complete"] else " (some processes not visible)"),
        ),
    ]
    width = max(len(name) for name, _ in rows)

    return ["facts:"] + [f"  {name:<{width}}  {value}" for name, value in rows]


def _yes(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _selftest_lines(report: dict) -> list[str]:
    lines = [
        f"self-tests (in {report['selftest_dir']}):"
        if report["selftest_dir"]
        else "self-tests:"
    ]
    for name in SELFTEST_NAMES:
        result = report["selftests"].get(name)
        lines.append(f"  {name:<16} {describe(result) if result else 'not run'}")

    return lines


def _probe_lines(report: dict) -> list[str]:
    lines = ["probes:"]
    for name in PROBE_NAMES:
        result = report["probes"].get(name)
        lines.append(f"  {name:<21} {describe(result) if result else 'not run'}")

    return lines

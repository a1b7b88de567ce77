"""``policy check`` and ``policy explain``: findings and step-by-step reasons."""

from __future__ import annotations

import os
from dataclasses import dataclass

from wcmatch import glob

from .compiled import (
    MAGIC,
    PATH_FLAGS,
    CompiledPolicy,
    Subject,
    Verdict,
    absolute_pattern,
    compile_path_glob,
    guard_own_paths,
    literal_prefix,
)
from .model import PROCESS_KEYS, Finding, Policy, Rule, parse_policy_file


def check_policy(
    path: str, roots: list[str] | None = None
) -> tuple[Policy, list[Finding]]:
    """Every error and warning for the policy at *path*, in file order.

    With *roots* (the paths the guard will watch), globs that cannot match
    anything under them are reported. Raises PolicyError only if the file
    cannot be read.
    """
    policy, findings = parse_policy_file(path)
    if any(f.severity == "error" for f in findings):
        return policy, findings

    findings += unreachable_rules(policy)
    findings += self_denials(policy)
    if roots:
        findings += dead_globs(policy, roots)
    findings.sort(key=lambda f: _line_of(f.location))

    return policy, findings


def _line_of(location: str) -> int:
    tail = location.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def unreachable_rules(policy: Policy) -> list[Finding]:
    """Rules that an earlier rule always matches first."""
    findings = []
    for index, rule in enumerate(policy.rules):
        for earlier in policy.rules[:index]:
            if covers(earlier, rule):
                message = (
                    f"unreachable: rule '{earlier.id}' (line {earlier.line}) "
                    "matches every access this rule matches"
                )
                where = policy.location(rule.line)
                findings.append(
                    Finding("warning", "unreachable-rule", message, where, rule.id)
                )
                break

    return findings


def covers(first: Rule, later: Rule) -> bool:
    """True if *first* matches everything *later* matches."""
    if not set(first.access) >= set(later.access):
        return False
    if first.path and not (later.path and _globs_cover(first.path, later.path)):
        return False
    for key in PROCESS_KEYS:
        mine, theirs = getattr(first, key), getattr(later, key)
        if not mine:
            continue
        if not theirs:
            return False
        if isinstance(mine, frozenset):
            if not mine >= theirs:
                return False
        elif not _globs_cover(mine, theirs):
            return False

    return True


def _globs_cover(mine: tuple[str, ...], theirs: tuple[str, ...]) -> bool:
    return all(any(_glob_covers(a, b) for a in mine) for b in theirs)


def _glob_covers(broad: str, narrow: str) -> bool:
    if broad == narrow or broad in ("*", "**"):
        return True
    broad, narrow = absolute_pattern(broad), absolute_pattern(narrow)
    if not MAGIC.intersection(narrow):
        return compile_path_glob(broad).fullmatch(narrow) is not None
    base = broad
    while base.endswith("/**"):
        base = base[:-3]
    if base != broad and not MAGIC.intersection(base):
        return narrow.startswith(base + "/")

    return False


def self_denials(policy: Policy) -> list[Finding]:
    """Deny rules that would hit the guard's own interpreter or libraries."""
    files, dirs = guard_own_paths()
    samples = sorted(files) + [d + "x" for d in dirs]
    findings = []
    for rule in policy.rules:
        if rule.decision != "deny" or not rule.path:
            continue
        regexes = [compile_path_glob(p) for p in rule.path]
        hit = next((s for s in samples if any(r.fullmatch(s) for r in regexes)), None)
        if hit:
            message = (
                f"denies files the guard itself runs from (such as {hit}); "
                "those are always allowed"
            )
            where = policy.location(rule.key_lines.get("path", rule.line))
            findings.append(
                Finding("warning", "denies-guard-itself", message, where, rule.id)
            )

    return findings


def dead_globs(policy: Policy, roots: list[str]) -> list[Finding]:
    """Path globs that match nothing under *roots* (outside them, or no file now)."""
    roots = [os.path.abspath(r).rstrip("/") or "/" for r in roots]
    findings = []
    for rule in policy.rules:
        where = policy.location(rule.key_lines.get("path", rule.line))
        for pattern in rule.path:
            problem = _glob_problem(pattern, roots)
            if problem:
                finding = Finding(
                    "warning", "glob-matches-nothing", problem, where, rule.id
                )
                findings.append(finding)

    return findings


def _glob_problem(pattern: str, roots: list[str]) -> str | None:
    prefix = literal_prefix(pattern) or "/"
    inside = [r for r in roots if _is_within(prefix, r) or _is_within(r, prefix)]
    if not inside:
        return f"'{pattern}' can match nothing under {', '.join(roots)}"
    for root in inside:
        full = absolute_pattern(pattern)
        if not full.startswith(root) and not pattern.startswith("/"):
            full = root.rstrip("/") + full
        if _exists(full, root):
            return None

    return f"'{pattern}' matches no file under {', '.join(inside)} now"


def _exists(pattern: str, root: str) -> bool:
    for found in glob.iglob(pattern, flags=PATH_FLAGS):
        if _is_within(found, root):
            return True
    return False


def _is_within(path: str, directory: str) -> bool:
    directory = directory.rstrip("/")
    return path == directory or path.startswith(directory + "/") or directory == ""


# -- explain ---------------------------------------------------------------


@dataclass
class Step:
    """One rule considered by :func:`explain` and why it matched or not."""

    rule: Rule
    matched: bool
    reason: str


@dataclass
class Explanation:
    steps: list[Step]
    verdict: Verdict
    protected: bool

    def lines(self, policy: Policy) -> list[str]:
        out = []
        for step in self.steps:
            mark = "MATCH" if step.matched else "no"
            out.append(
                f"  rule '{step.rule.id}' (line {step.rule.line}): "
                f"{mark}: {step.reason}"
            )
        out.append(self._conclusion(policy))
        return out

    def _conclusion(self, policy: Policy) -> str:
        v = self.verdict
        if self.protected:
            return (
                "decision: allow (the guard's own interpreter and libraries "
                "are always allowed)"
            )
        what = v.decision + (f" ({v.errno})" if v.errno else "")
        by = (
            f"rule '{v.rule_id}'"
            if v.rule_id
            else f"the default (line {policy.default_line or '-'})"
        )
        return f"decision: {what} by {by}; {_caching(v)}"


def _caching(verdict: Verdict) -> str:
    """Whether the guard can cache *verdict* in the kernel (ignore marks
    only ever allow, and know only the file)."""
    if not verdict.file_only:
        return "the process decides too; never cached in the kernel"
    if verdict.decision != "allow":
        return (
            f"the file alone decides; {verdict.decision} is never cached, "
            "each access is judged again"
        )
    return (
        "the file alone decides; this allow is cached in the kernel "
        "until the file changes"
    )


def explain(policy: Policy, access: str, path: str, subject: Subject) -> Explanation:
    """Walk the rules in order for one access, saying why each did or did not match."""
    compiled = CompiledPolicy(policy)
    files, dirs = guard_own_paths()
    protected = path in files or path.startswith(dirs)
    steps = []
    for rule in compiled.rules:
        matched, reason = _explain_rule(rule, access, path, subject)
        steps.append(Step(rule.rule, matched, reason))
        if matched:
            break
    verdict = compiled.evaluate(access, path, subject)
    if protected:
        verdict = Verdict("allow", None, None, True)

    return Explanation(steps, verdict, protected)


def _explain_rule(rule, access: str, path: str, subject: Subject) -> tuple[bool, str]:
    spec = rule.rule
    if access not in spec.access:
        return False, f"access {access} is not in {list(spec.access)}"
    if rule.paths and not any(r.fullmatch(path) for r in rule.paths):
        return False, f"path {path} matches none of {list(spec.path)}"
    for key, value, ok in rule.process_checks(subject):
        if value is None:
            return False, f"{key} is unknown (give --{key.replace('_', '-')})"
        if not ok:
            wanted = getattr(spec, key)
            wanted = sorted(wanted) if isinstance(wanted, frozenset) else list(wanted)
            return False, f"{key} {value} is not in {wanted}"
    said = ", ".join(f"{k}={v}" for k, v, _ in rule.process_checks(subject))
    what = spec.decision + (f" ({spec.errno})" if spec.errno else "")

    return True, f"-> {what}" + (f" (process: {said})" if said else "")

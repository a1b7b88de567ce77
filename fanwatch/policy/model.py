"""The policy file: TOML parsed into ordered rules, each placed at a line.

A policy is a list of ``[[rule]]`` tables, first match wins, and a
``default`` decision for accesses no rule matches. :func:`parse_policy`
returns the rules together with every problem found (never raising), so
that ``fanwatch policy check`` can show them all; :func:`load_policy` raises
:class:`~fanwatch.errors.PolicyError` for the first error.
"""

from __future__ import annotations

import errno as errno_module
import re
import tomllib
from dataclasses import dataclass, field

from ..errors import PolicyError, short_path

ACCESS_KINDS = ("open", "exec", "access")
# A rule without "access" judges opens and execs. "access" (every read)
# must be asked for: it costs one permission event per read(2).
DEFAULT_ACCESS = ("open", "exec")
DECISIONS = ("allow", "deny", "audit")

# The errnos the kernel accepts in a FAN_DENY_ERRNO response (6.14+): the
# ones open(2), read(2), write(2) and execve(2) may return anyway.
DENY_ERRNOS = ("EPERM", "EIO", "EBUSY", "ETXTBSY", "EAGAIN", "ENOSPC", "EDQUOT")

TOP_LEVEL_KEYS = ("version", "default", "rule")
GLOB_KEYS = ("path", "exe", "comm", "parent_exe", "container")
NUMBER_KEYS = ("uid", "gid", "pid")
# pid_t is a signed 32-bit int; uid_t and gid_t are unsigned 32-bit, with
# 2**32 - 1 reserved as "no id" ((uid_t) -1).
NUMBER_RANGES = {"pid": 2**31 - 1, "uid": 2**32 - 2, "gid": 2**32 - 2}
# Conditions on the process: a rule with any of them cannot be cached in
# the kernel, whose ignore marks know only the file.
PROCESS_KEYS = ("exe", "comm", "uid", "gid", "pid", "parent_exe", "container")
RULE_KEYS = ("id", "access", "decision", "errno", "comment", *GLOB_KEYS, *NUMBER_KEYS)


@dataclass(frozen=True)
class Finding:
    """One problem in a policy file: ``severity`` is "error" or "warning"."""

    severity: str
    code: str
    message: str
    location: str
    rule_id: str | None = None

    def __str__(self) -> str:
        rule = f"rule '{self.rule_id}': " if self.rule_id else ""
        return f"{self.location}: {self.severity}: {rule}{self.message} [{self.code}]"


@dataclass
class Rule:
    """One ``[[rule]]`` table; an absent condition matches everything."""

    id: str
    line: int
    decision: str = "allow"
    access: tuple[str, ...] = DEFAULT_ACCESS
    errno: str | None = None
    path: tuple[str, ...] = ()
    exe: tuple[str, ...] = ()
    comm: tuple[str, ...] = ()
    parent_exe: tuple[str, ...] = ()
    container: tuple[str, ...] = ()
    uid: frozenset[int] = frozenset()
    gid: frozenset[int] = frozenset()
    pid: frozenset[int] = frozenset()
    key_lines: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def process_keys(self) -> tuple[str, ...]:
        """The process conditions this rule sets, in file order."""
        return tuple(key for key in PROCESS_KEYS if getattr(self, key))

    @property
    def depends_on_process(self) -> bool:
        return bool(self.process_keys)


@dataclass
class Policy:
    """Ordered rules plus the default decision, and where they came from."""

    rules: list[Rule]
    default: str = "allow"
    source: str = "<policy>"
    default_line: int | None = None

    def location(self, line: int | None) -> str:
        source = short_path(self.source)
        return f"{source}:{line}" if line else source

    @property
    def accesses(self) -> frozenset[str]:
        """The access kinds some rule or a non-allow default decides."""
        kinds = {kind for rule in self.rules for kind in rule.access}
        if self.default != "allow":
            kinds.update(DEFAULT_ACCESS)
        return frozenset(kinds)

    @property
    def depends_on_process(self) -> bool:
        return any(rule.depends_on_process for rule in self.rules)


def load_policy(path: str) -> Policy:
    """Read and validate the policy at *path*.

    Raises PolicyError (with ``location`` file:line) for the first error,
    including an unreadable file.
    """
    policy, findings = parse_policy_file(path)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        first = errors[0]
        rule = f"rule '{first.rule_id}': " if first.rule_id else ""
        raise PolicyError(f"{rule}{first.message}", location=first.location)

    return policy


def parse_policy_file(path: str) -> tuple[Policy, list[Finding]]:
    """Parse the file at *path*; raises PolicyError only if it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise PolicyError(
            f"cannot read the policy: {exc.strerror}", location=short_path(path)
        )

    return parse_policy(data.decode("utf-8", "replace"), source=path)


def parse_policy(text: str, source: str = "<policy>") -> tuple[Policy, list[Finding]]:
    """Parse policy *text*: the rules found and every problem, in file order."""
    findings: list[Finding] = []
    policy = Policy(rules=[], source=source)
    document, problem, line = _parse_toml(text)
    if document is None:
        findings.append(Finding("error", "toml-syntax", problem, policy.location(line)))
        return policy, findings

    layout = _Layout(text)
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            where = policy.location(layout.top_level_line(key))
            message = f"unknown key '{key}' (known: {', '.join(TOP_LEVEL_KEYS)})"
            findings.append(Finding("error", "unknown-key", message, where))

    _read_header(document, policy, layout, findings)
    tables = document.get("rule", [])
    if not isinstance(tables, list):
        where = policy.location(layout.top_level_line("rule"))
        findings.append(
            Finding("error", "bad-value", "'rule' must be [[rule]] tables", where)
        )
        tables = []
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        rule = _read_rule(index, table, policy, layout, findings)
        if rule is None:
            continue
        if rule.id in seen:
            message = f"duplicate id (first used on line {seen[rule.id]})"
            where = policy.location(rule.key_lines.get("id", rule.line))
            findings.append(Finding("error", "duplicate-id", message, where, rule.id))
        seen.setdefault(rule.id, rule.line)
        policy.rules.append(rule)

    return policy, findings


def _parse_toml(text: str) -> tuple[dict | None, str, int | None]:
    """The TOML document, or None with the problem and its line if known."""
    try:
        return tomllib.loads(text), "", None
    except tomllib.TOMLDecodeError as exc:
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        return None, message, _toml_error_line(str(exc))
    except RecursionError:
        # tomllib recurses once per level of nested arrays and tables.
        return None, "arrays or tables nested too deeply", None
    except Exception as exc:  # noqa: BLE001 - a bad file never gives a traceback
        return None, f"cannot parse: {type(exc).__name__}: {exc}", None


def _read_header(
    document: dict, policy: Policy, layout: _Layout, findings: list
) -> None:
    version = document.get("version", 1)
    if version != 1:
        where = policy.location(layout.top_level_line("version"))
        findings.append(
            Finding(
                "error",
                "bad-value",
                f"unsupported version {version!r} (this is version 1)",
                where,
            )
        )
    default = document.get("default", "allow")
    policy.default_line = layout.top_level_line("default")
    if default not in DECISIONS:
        where = policy.location(policy.default_line)
        message = f"default must be one of {', '.join(DECISIONS)}, not {default!r}"
        findings.append(Finding("error", "bad-value", message, where))
    else:
        policy.default = default


def _read_rule(
    index: int, table: object, policy: Policy, layout: _Layout, findings: list
) -> Rule | None:
    line = layout.rule_line(index)
    start = line or 0
    key_lines = layout.keys_in_rule(index)

    def report(code: str, message: str, key: str | None = None, rule_id=None) -> None:
        where = policy.location(key_lines.get(key, start) if key else start)
        findings.append(Finding("error", code, message, where, rule_id))

    if not isinstance(table, dict):
        report("bad-value", "each rule must be a table")
        return None
    rule_id = table.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        report("missing-id", f'rule #{index + 1} needs an id = "..."')
        rule_id = f"#{index + 1}"
    rule = Rule(id=rule_id, line=start, key_lines=key_lines)
    for key, value in table.items():
        if key not in RULE_KEYS:
            report(
                "unknown-key",
                f"unknown key '{key}' (known: {', '.join(RULE_KEYS)})",
                key,
                rule_id,
            )
            continue
        problem = _set_rule_key(rule, key, value)
        if problem:
            report("bad-value", problem, key, rule_id)
    if rule.errno and rule.decision != "deny":
        report(
            "bad-value",
            'errno is only meaningful with decision = "deny"',
            "errno",
            rule_id,
        )

    return rule


def _set_rule_key(rule: Rule, key: str, value: object) -> str | None:
    """Store *value* under *key* in *rule*; the problem as text, if any."""
    if key in ("id", "comment"):
        return None if isinstance(value, str) else f"{key} must be a string"
    if key == "decision":
        if value not in DECISIONS:
            return f"decision must be one of {', '.join(DECISIONS)}, not {value!r}"
        rule.decision = value
        return None
    if key == "errno":
        return _set_errno(rule, value)
    if key == "access":
        kinds = _as_list(value)
        bad = [k for k in kinds if k not in ACCESS_KINDS]
        if bad or not kinds:
            return f"access must be a list of {', '.join(ACCESS_KINDS)}, not {value!r}"
        rule.access = tuple(k for k in ACCESS_KINDS if k in kinds)
        return None
    if key in GLOB_KEYS:
        return _set_globs(rule, key, value)
    numbers = _as_list(value)
    if not numbers or not all(type(n) is int for n in numbers):
        return f"{key} must be a number or a list of numbers"
    highest = NUMBER_RANGES[key]
    wrong = [n for n in numbers if not 0 <= n <= highest]
    if wrong:
        return f"{key} {wrong[0]} is out of range (0 to {highest})"
    setattr(rule, key, frozenset(numbers))
    return None


def _set_globs(rule: Rule, key: str, value: object) -> str | None:
    patterns = _as_list(value)
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        return f"{key} must be a glob or a list of globs"
    for pattern in patterns:
        problem = glob_syntax_problem(pattern, within_path=key != "comm")
        if problem:
            return f"{key} {pattern!r}: {problem}"
    setattr(rule, key, tuple(patterns))
    return None


def glob_syntax_problem(pattern: str, within_path: bool = True) -> str | None:
    """Why *pattern* is not a well-formed glob (an unclosed "[" or "{"),
    or None. Left as is, the glob library would match such a bracket
    literally, which is rarely what was meant."""
    depth = 0
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char == "[":
            index = _class_end(pattern, index, within_path)
            if index < 0:
                return "'[' without a closing ']' (write \\[ for a literal '[')"
        elif char == "{":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        index += 1
    if depth:
        return "'{' without a closing '}' (write \\{ for a literal '{')"
    return None


def _class_end(pattern: str, start: int, within_path: bool) -> int:
    """The index of the "]" closing the class opened at *start*, or -1.
    A "]" first in the class is a member; in a path a class never spans
    a "/"."""
    index = start + 1
    if pattern[index : index + 1] in ("!", "^"):
        index += 1
    if pattern[index : index + 1] == "]":
        index += 1
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char == "]":
            return index
        if char == "/" and within_path:
            return -1
        index += 1
    return -1


def _set_errno(rule: Rule, value: object) -> str | None:
    # Names only: errno numbers differ between architectures.
    if not isinstance(value, str):
        name = errno_module.errorcode.get(value) if type(value) is int else None
        example = name if name in DENY_ERRNOS else "EIO"
        return f'errno must be a name such as "{example}", not {value!r}'
    if value not in DENY_ERRNOS:
        return (
            f"errno {value!r} cannot be returned by a fanotify deny; use one of "
            f"{', '.join(DENY_ERRNOS)}"
        )
    rule.errno = value
    return None


def _as_list(value: object) -> list:
    return list(value) if isinstance(value, list) else [value]


def _toml_error_line(message: str) -> int | None:
    match = re.search(r"at line (\d+)", message)
    return int(match.group(1)) if match else None


# tomllib gives no positions for values, so lines are found by scanning the
# text: table headers mark where each [[rule]] begins, "key =" lines inside
# it where each key is set.
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')\s*=")


class _Layout:
    """Line numbers of tables and keys in a policy text (1-based)."""

    def __init__(self, text: str) -> None:
        self.top_level: dict[str, int] = {}
        self.rules: list[tuple[int, dict[str, int]]] = []
        current: dict[str, int] | None = self.top_level
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                current = self._open_table(header.group(1), line, number)
                continue
            key = _KEY.match(line)
            if key and current is not None:
                current.setdefault(key.group(1).strip("\"'"), number)

    def _open_table(self, name: str, line: str, number: int) -> dict[str, int] | None:
        if name == "rule" and line.lstrip().startswith("[["):
            self.rules.append((number, {}))
            return self.rules[-1][1]
        self.top_level.setdefault(name.split(".")[0], number)
        return None

    def top_level_line(self, key: str) -> int | None:
        if key == "rule" and self.rules:
            return self.rules[0][0]
        return self.top_level.get(key)

    def rule_line(self, index: int) -> int | None:
        return self.rules[index][0] if index < len(self.rules) else None

    def keys_in_rule(self, index: int) -> dict[str, int]:
        return dict(self.rules[index][1]) if index < len(self.rules) else {}

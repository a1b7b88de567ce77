"""What a loaded seccomp filter does with one syscall: the Verdict.

The rules of precedence are libseccomp's (2.5) as runc 1.1 drives it:

- a rule whose action equals the default action is skipped (runc does so to
  avoid libseccomp's EACCES), so it cannot shadow a later rule;
- a rule without ``args`` decides the syscall outright, and the first such
  rule wins: libseccomp ignores later unconditional rules for that syscall
  and drops conditional ones, whatever the order they were added in;
- otherwise conditional rules apply to the argument values they match, and
  every other call gets the default action.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .names import errno_name

if TYPE_CHECKING:
    from .profile import Condition, Profile, Rule

_OUTCOMES = {
    "SCMP_ACT_ALLOW": "allow",
    "SCMP_ACT_LOG": "allow",
    "SCMP_ACT_ERRNO": "errno",
    "SCMP_ACT_TRACE": "errno",
    "SCMP_ACT_KILL": "kill",
    "SCMP_ACT_KILL_THREAD": "kill",
    "SCMP_ACT_KILL_PROCESS": "kill",
    "SCMP_ACT_TRAP": "kill",
    "SCMP_ACT_NOTIFY": "notify",
}


def filter_action(action: str, errno_ret: int | None) -> tuple[str, int | None]:
    """The libseccomp action runc installs for *action* and *errno_ret*:
    KILL is KILL_THREAD, ERRNO and TRACE default to EPERM."""
    if action == "SCMP_ACT_KILL":
        return "SCMP_ACT_KILL_THREAD", None
    if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        return action, errno.EPERM if errno_ret is None else errno_ret

    return action, None


@dataclass(frozen=True)
class Branch:
    """A conditional rule: *rule* decides calls whose arguments match."""

    rule: Rule

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.rule.args

    def describe(self) -> str:
        joiner = " or " if self.rule.args_any_of else " and "

        return joiner.join(condition.describe() for condition in self.conditions)


@dataclass(frozen=True)
class Verdict:
    """The fate of *syscall* under a profile, for one capability set.

    ``action`` is the profile's SCMP_ACT_* name; ``outcome`` sums it up as
    ``allow`` (ALLOW, LOG), ``errno`` (ERRNO; TRACE with no tracer
    attached fails with ENOSYS), ``kill`` (KILL*, TRAP: SIGSYS) or
    ``notify`` (a user-space agent decides). ``errno`` is the error the
    caller sees. ``rule`` is the deciding rule, None for the default
    action. When ``conditional`` is true the verdict holds only for the
    argument values in ``branches``; ``otherwise`` is the verdict for the
    rest. ``inactive`` lists the rules naming the syscall that the runtime
    leaves out here, with the reason (such as ``only with CAP_SYS_ADMIN``).
    """

    syscall: str
    action: str
    errno: int | None
    rule: Rule | None
    conditional: bool = False
    branches: tuple[Branch, ...] = ()
    otherwise: Verdict | None = None
    inactive: tuple[tuple[Rule, str], ...] = ()

    @property
    def outcome(self) -> str:
        return _OUTCOMES[self.action]

    @property
    def allowed(self) -> bool:
        """True when every call of this syscall gets through."""
        return self.outcome == "allow" and not self.conditional

    @property
    def key(self) -> tuple:
        """What the filter does, without which rule says so: equal keys
        mean the same behaviour for every argument value."""
        branches = tuple(
            (
                filter_action(b.rule.action, b.rule.errno_ret),
                b.conditions,
                b.rule.args_any_of,
            )
            for b in self.branches
        )
        fallback = self.otherwise.key if self.otherwise else None

        return (self.action_key, self.conditional, branches, fallback)

    @property
    def action_key(self) -> tuple[str, int | None]:
        if self.outcome == "allow":
            return ("allow", None)

        return (filter_action(self.action, None)[0], self.errno)

    def describe(self) -> str:
        """One line: what happens, and which rule says so."""
        if self.conditional:
            ways = "; ".join(
                f"{b.describe()} by {b.rule.label()}" for b in self.branches
            )
            rest = self.otherwise.describe() if self.otherwise else ""
            return f"{self.summary()} only if {ways}; otherwise {rest}"
        where = self.rule.label() if self.rule else "defaultAction"
        text = f"{self.summary()} by {where}"
        if self.inactive and not self.allowed:
            text += (
                " ("
                + "; ".join(f"{rule.label()} {why}" for rule, why in self.inactive)
                + ")"
            )

        return text

    def summary(self) -> str:
        """``allowed``, ``refused EPERM``, ``killed (SCMP_ACT_KILL_PROCESS)``..."""
        if self.outcome == "allow":
            return "allowed" + (" and logged" if self.action == "SCMP_ACT_LOG" else "")
        if self.outcome == "errno":
            return f"refused {errno_name(self.errno)}"
        if self.outcome == "notify":
            return "decided by a seccomp agent (SCMP_ACT_NOTIFY)"

        return f"killed ({self.action})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, as ``fanwatch seccomp check --json`` prints."""
        return {
            "syscall": self.syscall,
            "outcome": self.outcome,
            "allowed": self.allowed,
            "action": self.action,
            "errno": self.errno,
            "errno_name": errno_name(self.errno) or None,
            "rule": self.rule.index if self.rule else None,
            "rule_names": list(self.rule.names) if self.rule else None,
            "conditional": self.conditional,
            "conditions": [
                {"rule": b.rule.index, "args": b.describe()} for b in self.branches
            ],
            "otherwise": self.otherwise.to_dict() if self.otherwise else None,
            "inactive_rules": [
                {"rule": rule.index, "reason": reason} for rule, reason in self.inactive
            ],
        }


def decide(
    profile: Profile,
    syscall: str,
    active: list[Rule],
    inactive: tuple[tuple[Rule, str], ...],
    args: tuple[int, ...] | None,
) -> Verdict:
    """The verdict for *syscall* given the rules the runtime keeps."""
    default = filter_action(profile.default_action, profile.default_errno)
    naming = [
        rule
        for rule in active
        if syscall in rule.names
        and filter_action(rule.action, rule.errno_ret) != default
    ]
    fallback = _verdict(
        syscall, profile.default_action, profile.default_errno, None, inactive
    )
    outright = [rule for rule in naming if not rule.conditional]
    if outright:
        return _from_rule(syscall, outright[0], inactive)
    if not naming:
        return fallback
    if args is not None:
        matching = [rule for rule in naming if rule.matches_args(args)]
        return _from_rule(syscall, matching[0], inactive) if matching else fallback
    first = naming[0]

    return Verdict(
        syscall,
        first.action,
        _seen_errno(first.action, first.errno_ret),
        first,
        conditional=True,
        branches=tuple(Branch(rule) for rule in naming),
        otherwise=fallback,
        inactive=inactive,
    )


def _from_rule(syscall: str, rule: Rule, inactive) -> Verdict:
    return _verdict(syscall, rule.action, rule.errno_ret, rule, inactive)


def _verdict(syscall, action, errno_ret, rule, inactive) -> Verdict:
    return Verdict(
        syscall, action, _seen_errno(action, errno_ret), rule, inactive=inactive
    )


def _seen_errno(action: str, errno_ret: int | None) -> int | None:
    # With no tracer attached, SECCOMP_RET_TRACE makes the call fail ENOSYS.
    if action == "SCMP_ACT_TRACE":
        return errno.ENOSYS

    return filter_action(action, errno_ret)[1]

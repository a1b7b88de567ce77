"""The smallest profile edit that lets a fanwatch job run.

For each required syscall the job cannot make, the first name of the need
is added to the allow rule gated exactly by the job's capabilities (the
unconditional allow list for ``watch``, which needs none), or to a new rule
of that shape; it is removed from rules that would otherwise decide against
it, and from allow rules that become redundant, when that changes nothing
for any capability set. Nothing else is touched: every other syscall keeps
its verdict for every capability set.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .jobs import JOB_CAPS, check_job
from .names import CAPABILITIES, DOCKER_DEFAULT_CAPS
from .profile import Context, Profile, Rule
from .verdict import decide

_ALLOW = "SCMP_ACT_ALLOW"


@dataclass(frozen=True)
class Change:
    """One edit: *rule* is the index of the rule in the input file (or
    where a new rule was appended), *syscall* the name moved."""

    rule: int
    syscall: str
    text: str

    def __str__(self) -> str:
        return self.text


def patch_for(
    profile_dict: dict[str, Any],
    job: str,
    arch: str | None = None,
    kernel: str | tuple[int, int, int] | None = None,
) -> tuple[dict[str, Any], list[Change]]:
    """A copy of *profile_dict* in which *job* can run with the capabilities
    it needs (:data:`JOB_CAPS`), and the list of edits; no edits when the
    profile already allows it. *profile_dict* is not modified.

    Raises KeyError for an unknown job, ProfileError for a broken profile.
    """
    profile = Profile.from_dict(profile_dict)
    caps = JOB_CAPS[job]
    report = check_job(profile, job, caps, arch, kernel)
    data = copy.deepcopy(profile_dict)
    changes: list[Change] = []
    for need in report.blocked:
        changes += _allow(data, need.names[0], caps, Context.of(caps, arch, kernel))
    changes += _drop_empty_rules(data, profile_dict)

    return data, changes


def probe_cap_sets(profile: Profile, base: Iterable[str] = ()) -> list[frozenset[str]]:
    """Capability sets that exercise every capability gate in *profile*:
    *base*, Docker's default set, all capabilities, and each of them with
    every capability the profile names added or taken away."""
    named = {
        cap for rule in profile.rules for cap in rule.includes.caps + rule.excludes.caps
    }
    starts = [frozenset(base), DOCKER_DEFAULT_CAPS, frozenset(CAPABILITIES)]
    sets = set(starts)
    for start in starts:
        for cap in named:
            sets |= {start | {cap}, start - {cap}}

    return sorted(sets, key=sorted)


def verdict_table(
    profile: Profile,
    cap_sets: Iterable[frozenset[str]],
    names: Iterable[str],
    arch,
    kernel,
) -> dict[tuple[frozenset[str], str], tuple]:
    """``(caps, syscall) -> Verdict.key`` for every pair: what the filter
    does, to compare two versions of a profile."""
    table = {}
    for caps in cap_sets:
        active, _ = profile.split_rules(Context.of(caps, arch, kernel))
        for name in names:
            table[caps, name] = decide(profile, name, active, (), None).key

    return table


def _allow(
    data: dict, name: str, caps: frozenset[str], context: Context
) -> list[Change]:
    profile = _checked(data)
    target = _target_rule(profile, caps)
    changes = _remove_blockers(data, profile, name, context, target)
    if target is None:
        # "syscalls": null is a valid profile with no rules.
        if data.get("syscalls") is None:
            data["syscalls"] = []
        data["syscalls"].append(_new_rule(name, caps))
        index = len(data["syscalls"]) - 1
        changes.append(
            Change(
                index,
                name,
                f"syscalls[{index}]: new rule allowing {name}{_gate_words(caps)}",
            )
        )
    else:
        rule = data["syscalls"][target.index]
        if rule.get("names") is None:
            # The older single "name" form (or "names": null) becomes a list.
            rule["names"] = [rule.pop("name")] if rule.get("name") else []
        _insert_name(rule["names"], name)
        changes.append(Change(target.index, name, f"{target.label()}: added {name}"))

    return changes + _remove_redundant(data, name, caps)


def _target_rule(profile: Profile, caps: frozenset[str]) -> Rule | None:
    """The first plain allow rule gated by exactly *caps* (none: ungated)."""
    for rule in profile.rules:
        plain = not (
            rule.args
            or rule.excludes
            or rule.includes.arches
            or rule.includes.min_kernel
        )
        if (
            rule.action == _ALLOW
            and plain
            and not rule.single_name
            and set(rule.includes.caps) == caps
        ):
            return rule

    return None


def _remove_blockers(data, profile, name, context, target) -> list[Change]:
    """Take *name* out of rules that decide against it before *target*."""
    limit = target.index if target else len(profile.rules)
    active, _ = profile.split_rules(context)
    changes = []
    for rule in active:
        blocks = rule.action not in (_ALLOW, "SCMP_ACT_LOG") and not rule.args
        if rule.index < limit and blocks and name in rule.names:
            _remove_name(data["syscalls"][rule.index], name)
            changes.append(
                Change(
                    rule.index, name, f"{rule.label()}: removed {name} ({rule.action})"
                )
            )

    return changes


def _remove_redundant(data: dict, name: str, caps: frozenset[str]) -> list[Change]:
    """Take *name* out of other unconditional allow rules when doing so
    changes its verdict for no capability set (a cap-gated block that the
    new allow now covers)."""
    profile = _checked(data)
    cap_sets = probe_cap_sets(profile, caps)
    changes = []
    for rule in profile.rules:
        if (
            rule.action != _ALLOW
            or rule.args
            or name not in rule.names
            or not rule.includes
        ):
            continue
        trial = copy.deepcopy(data)
        _remove_name(trial["syscalls"][rule.index], name)
        if _same(profile, _checked(trial), cap_sets, [name]):
            _remove_name(data["syscalls"][rule.index], name)
            changes.append(
                Change(
                    rule.index,
                    name,
                    f"{rule.label()}: removed {name}, now allowed above",
                )
            )

    return changes


def _same(before: Profile, after: Profile, cap_sets, names) -> bool:
    old = verdict_table(before, cap_sets, names, None, None)

    return old == verdict_table(after, cap_sets, names, None, None)


def _drop_empty_rules(data: dict, before: dict) -> list[Change]:
    """Delete the rules this patch emptied (a rule without names loads as
    nothing, but reads as a mistake)."""
    rules = data.get("syscalls") or []
    emptied = [
        index
        for index, rule in enumerate(rules[: len(before.get("syscalls") or [])])
        if not _names(rule) and _names(before["syscalls"][index])
    ]
    for index in reversed(emptied):
        del rules[index]

    return [
        Change(index, "", f"syscalls[{index}]: deleted, no names left")
        for index in emptied
    ]


def _checked(data: dict) -> Profile:
    return Profile.from_dict(data)


def _names(rule: dict) -> list[str]:
    return rule.get("names") or ([rule["name"]] if rule.get("name") else [])


def _remove_name(rule: dict, name: str) -> None:
    if rule.get("name") == name:
        del rule["name"]
    if rule.get("names"):
        rule["names"] = [other for other in rule["names"] if other != name]


def _insert_name(names: list[str], name: str) -> None:
    """Insert *name* where it sorts, as moby orders names (underscores
    ignored), or at the end of a list kept in no order."""

    def key(text):
        return text.replace("_", "")

    position = next(
        (i for i, other in enumerate(names) if key(other) > key(name)), len(names)
    )
    names.insert(position, name)


def _new_rule(name: str, caps: frozenset[str]) -> dict:
    rule: dict[str, Any] = {"names": [name], "action": _ALLOW}
    if caps:
        rule["includes"] = {"caps": sorted(caps)}

    return rule


def _gate_words(caps: frozenset[str]) -> str:
    return f" with {' + '.join(sorted(caps))}" if caps else " unconditionally"

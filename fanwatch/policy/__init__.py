"""Declarative guard policies: parse, validate, compile, lint and explain."""

from .compiled import CompiledPolicy, Subject, Verdict, guard_own_paths, needs_process
from .model import (
    ACCESS_KINDS,
    DECISIONS,
    DENY_ERRNOS,
    Finding,
    Policy,
    Rule,
    load_policy,
    parse_policy,
    parse_policy_file,
)

__all__ = [
    "ACCESS_KINDS",
    "DECISIONS",
    "DENY_ERRNOS",
    "CompiledPolicy",
    "Finding",
    "Policy",
    "Rule",
    "Subject",
    "Verdict",
    "guard_own_paths",
    "load_policy",
    "needs_process",
    "parse_policy",
    "parse_policy_file",
]

"""Rules compiled once into indexes, so that a decision costs little.

Each access kind has its own index of the rules that name it. Path globs
are translated to regular expressions once and filed under their literal
directory prefix (``/srv/app/**`` under ``/srv/app``), under their file
extension when they have no prefix (``**/*.so``), or under the root. A
path then looks up only its own ancestors and extension, so the work per
event grows with the depth of the path and the rules that can concern it,
not with the length of the policy.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from operator import itemgetter
from typing import NamedTuple

from wcmatch import fnmatch, glob

from .model import ACCESS_KINDS, Policy, Rule

PATH_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.BRACE | glob.FORCEUNIX
NAME_FLAGS = fnmatch.DOTMATCH | fnmatch.BRACE | fnmatch.FORCEUNIX
MAGIC = frozenset("*?[{\\")


def absolute_pattern(pattern: str) -> str:
    """A pattern without a leading "/" matches at any depth."""
    return pattern if pattern.startswith("/") else "/**/" + pattern


def compile_path_glob(pattern: str) -> re.Pattern:
    """One regular expression for a path glob (``**`` spans directories)."""
    regexes, _ = glob.translate(absolute_pattern(pattern), flags=PATH_FLAGS)
    return re.compile("|".join(f"(?:{r})" for r in regexes))


def compile_name_globs(patterns: tuple[str, ...]) -> re.Pattern:
    """One regular expression for globs on names (comm, container id)."""
    regexes, _ = fnmatch.translate(list(patterns), flags=NAME_FLAGS)
    return re.compile("|".join(f"(?:{r})" for r in regexes))


def compile_path_globs(patterns: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(f"(?:{compile_path_glob(p).pattern})" for p in patterns))


def literal_prefix(pattern: str) -> str:
    """The directory part of *pattern* before its first wildcard ("" if none).

    ``/srv/app/**`` gives ``/srv/app``; a pattern without wildcards gives
    itself.
    """
    parts = absolute_pattern(pattern).split("/")
    literal = []
    for part in parts[1:]:
        if MAGIC.intersection(part):
            return "/" + "/".join(literal) if literal else ""
        literal.append(part)

    return "/" + "/".join(literal)


def extension_key(pattern: str) -> str | None:
    """The extension a pattern like ``**/*.so`` requires, else None."""
    last = absolute_pattern(pattern).rsplit("/", 1)[-1]
    if not last.startswith("*") or MAGIC.intersection(last[1:]) or "." not in last:
        return None

    return last.rsplit(".", 1)[1] or None


@dataclass(frozen=True)
class Subject:
    """The process behind an access, as far as it is known (None: unknown)."""

    pid: int
    exe: str | None = None
    comm: str | None = None
    uid: int | None = None
    gid: int | None = None
    parent_exe: str | None = None
    container: str | None = None


class Verdict(NamedTuple):
    """What the policy decided and whether it depends on the file alone."""

    decision: str
    rule_id: str | None
    errno: str | None
    file_only: bool


class CompiledRule:
    """A rule with its globs compiled; tests the process conditions."""

    __slots__ = ("rule", "id", "decision", "errno", "file_only", "_tests", "paths")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.id = rule.id
        self.decision = rule.decision
        self.errno = rule.errno
        self.file_only = not rule.depends_on_process
        self.paths = [compile_path_glob(p) for p in rule.path]
        self._tests = [(key, _condition(rule, key)) for key in rule.process_keys]

    def process_matches(self, subject: Subject) -> bool:
        for key, test in self._tests:
            if not test(getattr(subject, key)):
                return False
        return True

    def process_checks(self, subject: Subject) -> list[tuple[str, object, bool]]:
        """Each process condition: (key, the subject's value, matched)."""
        return [
            (key, getattr(subject, key), test(getattr(subject, key)))
            for key, test in self._tests
        ]

    def verdict(self) -> Verdict:
        return Verdict(self.decision, self.id, self.errno, self.file_only)


def _condition(rule: Rule, key: str):
    value = getattr(rule, key)
    if isinstance(value, frozenset):
        return lambda actual: actual is not None and actual in value
    if key in ("exe", "parent_exe"):
        regex = compile_path_globs(value)
    else:
        regex = compile_name_globs(value)
    return lambda actual: actual is not None and regex.fullmatch(actual) is not None


class PathIndex:
    """The rules of one access kind, filed by literal prefix and extension."""

    def __init__(self, rules: list[CompiledRule]) -> None:
        self.rules = rules
        self.exact: dict[str, list] = {}
        self.under: dict[str, list] = {}
        self.by_extension: dict[str, list] = {}
        self.root: list = []
        for order, rule in enumerate(rules):
            if not rule.paths:
                self.root.append((order, None))
            for pattern, regex in zip(rule.rule.path, rule.paths):
                self._file(order, pattern, regex)

    def _file(self, order: int, pattern: str, regex: re.Pattern) -> None:
        prefix = literal_prefix(pattern)
        if prefix == absolute_pattern(pattern):
            self.exact.setdefault(prefix, []).append((order, None))
        elif prefix:
            self.under.setdefault(prefix, []).append((order, regex))
        elif extension_key(pattern):
            self.by_extension.setdefault(extension_key(pattern), []).append(
                (order, regex)
            )
        else:
            self.root.append((order, regex))

    def candidates(self, path: str) -> list[tuple[int, re.Pattern | None]]:
        """(rule order, regex to test or None) for rules that may match *path*."""
        found = list(self.root)
        found += self.exact.get(path, ())
        under = self.under
        start = 1
        while (cut := path.find("/", start)) > 0:
            found += under.get(path[:cut], ())
            start = cut + 1
        found += under.get(path, ())
        dot = path.rfind(".")
        if dot > path.rfind("/"):
            found += self.by_extension.get(path[dot + 1 :], ())
        found.sort(key=itemgetter(0))

        return found

    def matches(self, path: str) -> list[CompiledRule]:
        """Rules whose path matches, in order, up to the first file-only one."""
        result = []
        last = -1
        for order, regex in self.candidates(path):
            if order == last or (regex is not None and regex.fullmatch(path) is None):
                continue
            rule = self.rules[order]
            result.append(rule)
            last = order
            if rule.file_only:
                break

        return result


class CompiledPolicy:
    """A policy ready for the guard: :meth:`matches` then :meth:`decide`."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.default = policy.default
        self.rules = [CompiledRule(rule) for rule in policy.rules]
        self.indexes = {
            kind: PathIndex([r for r in self.rules if kind in r.rule.access])
            for kind in ACCESS_KINDS
        }
        self.default_verdict = Verdict(policy.default, None, None, True)

    def matches(self, access: str, path: str) -> list[CompiledRule]:
        """The rules that match *access* and *path*; see :meth:`decide`."""
        return self.indexes[access].matches(path)

    def decide(self, matches: list[CompiledRule], subject: Subject | None) -> Verdict:
        """The verdict of the first rule in *matches* that fits *subject*.

        *subject* may be None when :func:`needs_process` is False for
        *matches*; the verdict is then file-only.
        """
        file_only = not matches or matches[0].file_only
        for rule in matches:
            if rule.file_only or rule.process_matches(subject):
                return rule.verdict()._replace(file_only=file_only)

        return self.default_verdict._replace(file_only=file_only)

    def evaluate(self, access: str, path: str, subject: Subject | None) -> Verdict:
        return self.decide(self.matches(access, path), subject)


def needs_process(matches: list[CompiledRule]) -> bool:
    """True if deciding among *matches* needs to know the process."""
    return bool(matches) and not matches[0].file_only


def needed_keys(matches: list[CompiledRule]) -> set[str]:
    """The process attributes some rule among *matches* looks at."""
    return {key for rule in matches for key in rule.rule.process_keys}


def guard_own_paths() -> tuple[frozenset[str], tuple[str, ...]]:
    """Files and directories the guard needs to run: never to be denied.

    Returns (exact paths, directory prefixes ending in "/"): the real path
    of the interpreter, every file mapped into this process (the shared
    libraries), and the directories of the standard library, of installed
    packages and of fanwatch itself.
    """
    files = {os.path.realpath(sys.executable), sys.executable}
    files.update(_mapped_files())
    dirs = {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            dirs.update({path, os.path.realpath(path)})
    prefixes = tuple(sorted(d.rstrip("/") + "/" for d in dirs))

    return frozenset(files), prefixes


def _mapped_files() -> set[str]:
    # /proc/self/maps: address perms offset dev inode [pathname]
    try:
        with open("/proc/self/maps") as f:
            rows = [line.split(None, 5) for line in f.read().splitlines()]
    except OSError:
        return set()

    return {row[5] for row in rows if len(row) == 6 and row[5].startswith("/")}

"""Docker/OCI seccomp profiles: loading, checking, and the rules in them.

A profile is read as moby reads it (``defaultAction``, ``defaultErrnoRet``,
``architectures`` or ``archMap``, ``syscalls`` with ``names`` or ``name``,
``action``, ``errnoRet``, ``args``, ``includes``, ``excludes``) and checked
as strictly as runc would load it, so that a mistake is reported here with
its place in the file rather than as a container that fails to start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProfileError, short_path
from . import jsonpos
from .jsonpos import Path
from .names import (
    ACTIONS,
    ACTIONS_WITH_ERRNO,
    DOCKER_DEFAULT_CAPS,
    NATIVE_TO_SCMP,
    capability_name,
    OPERATORS,
    SCMP_ARCHES,
    machine_kernel,
    native_arch,
    parse_kernel,
)
from .verdict import Verdict, decide

_U64_MAX = 2**64 - 1
# A real profile nests about five levels; the limit keeps deeper documents
# away from the recursive JSON decoder and encoder.
MAX_DEPTH = 100
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
_JSON_TOKEN = re.compile(_JSON_STRING + r"|[][{}]")
# No value in a profile has more digits than 2**64; a longer whole number is
# refused while decoding, before Python's limit on int digits is reached.
_MAX_DIGITS = 100
_CAP_PATTERN = re.compile(r"CAP_[A-Z0-9_]+")
# Keys moby's decoder reads; anything else (such as "comment") is ignored
# by the runtimes, and so here.
_RULE_KEYS = ("names", "name", "action", "errnoRet", "args", "includes", "excludes")


@dataclass(frozen=True)
class Context:
    """Where a profile is loaded: bounding set, native arch, kernel."""

    caps: frozenset[str]
    arch: str
    kernel: tuple[int, int, int]

    @classmethod
    def of(cls, caps: Iterable[str], arch: str | None, kernel) -> Context:
        """Normalise *caps* (``SYS_ADMIN`` or ``CAP_SYS_ADMIN``), *arch*
        (None: this machine) and *kernel* (None: the running one, or
        ``"X.Y"``). Raises ValueError for bad values."""
        if kernel is None:
            kernel = machine_kernel()
        elif isinstance(kernel, str):
            kernel = parse_kernel(kernel)

        names = frozenset(capability_name(cap) for cap in caps)

        return cls(names, native_arch(arch), tuple(kernel))


@dataclass(frozen=True)
class Condition:
    """One ``args`` entry: compare syscall argument *index* with *value*."""

    index: int
    value: int
    value_two: int
    op: str

    def matches(self, args: tuple[int, ...]) -> bool:
        """Whether the argument values *args* satisfy this condition."""
        arg = args[self.index] if self.index < len(args) else 0
        if self.op == "SCMP_CMP_MASKED_EQ":
            return arg & self.value == self.value_two
        compare = {
            "SCMP_CMP_NE": arg != self.value,
            "SCMP_CMP_LT": arg < self.value,
            "SCMP_CMP_LE": arg <= self.value,
            "SCMP_CMP_EQ": arg == self.value,
            "SCMP_CMP_GE": arg >= self.value,
            "SCMP_CMP_GT": arg > self.value,
        }

        return compare[self.op]

    def describe(self) -> str:
        """``arg0 == 0x8``, ``arg0 & 0x7e020000 == 0x0`` and so on."""
        arg = f"arg{self.index}"
        if self.op == "SCMP_CMP_MASKED_EQ":
            return f"{arg} & {self.value:#x} == {self.value_two:#x}"
        symbol = {
            "SCMP_CMP_NE": "!=",
            "SCMP_CMP_LT": "<",
            "SCMP_CMP_LE": "<=",
            "SCMP_CMP_EQ": "==",
            "SCMP_CMP_GE": ">=",
            "SCMP_CMP_GT": ">",
        }[self.op]

        return f"{arg} {symbol} {self.value:#x}"


@dataclass(frozen=True)
class Gate:
    """An ``includes`` or ``excludes`` filter of a rule; empty when absent."""

    caps: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    min_kernel: tuple[int, int, int] | None = None

    def __bool__(self) -> bool:
        return bool(self.caps or self.arches or self.min_kernel)


@dataclass(frozen=True)
class Rule:
    """One entry of ``syscalls``, at position *index* in the file."""

    index: int
    names: tuple[str, ...]
    action: str
    errno_ret: int | None
    args: tuple[Condition, ...]
    includes: Gate
    excludes: Gate
    single_name: bool = False  # written with the older "name" key

    @property
    def conditional(self) -> bool:
        return bool(self.args)

    @property
    def args_any_of(self) -> bool:
        """True when two conditions test the same argument: runc then adds
        each condition as a rule of its own, so any one of them matches."""
        indices = [condition.index for condition in self.args]

        return len(indices) != len(set(indices))

    def matches_args(self, args: tuple[int, ...]) -> bool:
        results = [condition.matches(args) for condition in self.args]

        return any(results) if self.args_any_of else all(results)

    def label(self, limit: int = 3) -> str:
        """``syscalls[16] (bpf, clone, clone3, +20 more)``."""
        shown = ", ".join(self.names[:limit])
        if len(self.names) > limit:
            shown += f", +{len(self.names) - limit} more"

        return f"syscalls[{self.index}] ({shown})"

    def why_inactive(self, caps, arch: str, kernel) -> str | None:
        """Why moby leaves this rule out for *caps*/*arch*/*kernel*, in
        words, or None when the rule applies. Same order of tests as moby."""
        excludes, includes = self.excludes, self.includes
        if arch in excludes.arches:
            return f"excluded on {arch}"
        present = [cap for cap in excludes.caps if cap in caps]
        if present:
            return f"excluded with {present[0]}"
        if excludes.min_kernel and kernel >= excludes.min_kernel:
            return f"excluded on kernel >= {_version(excludes.min_kernel)}"
        if includes.arches and arch not in includes.arches:
            return f"only on {', '.join(includes.arches)}"
        missing = [cap for cap in includes.caps if cap not in caps]
        if missing:
            return f"only with {' + '.join(includes.caps)}"
        if includes.min_kernel and kernel < includes.min_kernel:
            return f"only on kernel >= {_version(includes.min_kernel)}"

        return None


@dataclass
class Profile:
    """A checked seccomp profile. ``data`` is the decoded JSON as written."""

    data: dict[str, Any]
    source: str = "<profile>"
    text: str | None = None
    default_action: str = ""
    default_errno: int | None = None
    architectures: tuple[str, ...] = ()
    arch_map: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    def evaluate(
        self,
        syscall: str,
        caps: Iterable[str] = DOCKER_DEFAULT_CAPS,
        arch: str | None = None,
        kernel: str | tuple[int, int, int] | None = None,
        args: tuple[int, ...] | None = None,
    ) -> Verdict:
        """What the filter built for bounding set *caps* on *arch* (default:
        this machine) and *kernel* (default: the running one) does with
        *syscall*. With *args*, the verdict for those argument values;
        without, a conditional verdict where arguments matter.

        Raises ValueError for an unknown *arch* or a malformed *kernel*.
        """
        context = Context.of(caps, arch, kernel)
        active, inactive = self.split_rules(context)
        skipped = tuple((rule, why) for rule, why in inactive if syscall in rule.names)

        return decide(self, syscall, active, skipped, args)

    def default_verdict(self) -> Verdict:
        """What happens to a syscall no rule names."""
        return decide(self, "", [], (), None)

    def split_rules(
        self, context: Context
    ) -> tuple[list[Rule], list[tuple[Rule, str]]]:
        """The rules moby keeps for *context*, and the ones it drops with why."""
        active, inactive = [], []
        for rule in self.rules:
            why = rule.why_inactive(context.caps, context.arch, context.kernel)
            if why:
                inactive.append((rule, why))
            else:
                active.append(rule)

        return active, inactive

    def loaded_architectures(self, arch: str) -> list[str]:
        """The ``architectures`` the runtime passes on for native *arch*:
        the list as written, or the archMap entry for *arch* with its
        sub-architectures (none when the map has no entry for it)."""
        if self.architectures:
            return list(self.architectures)
        scmp = NATIVE_TO_SCMP[arch]
        if scmp not in self.arch_map:
            return []

        return [scmp, *self.arch_map[scmp]]

    def syscall_names(self) -> set[str]:
        """Every syscall name any rule mentions."""
        return {name for rule in self.rules for name in rule.names}

    def resolve(
        self,
        caps: Iterable[str] = DOCKER_DEFAULT_CAPS,
        arch: str | None = None,
        kernel: str | tuple[int, int, int] | None = None,
    ) -> dict[str, Any]:
        """The OCI ``linux.seccomp`` object moby hands the runtime for this
        capability set, architecture and kernel: includes and excludes
        applied, ``name`` turned into ``names``, ``comment`` dropped."""
        context = Context.of(caps, arch, kernel)
        resolved: dict[str, Any] = {"defaultAction": self.default_action}
        if self.default_errno is not None:
            resolved["defaultErrnoRet"] = self.default_errno
        architectures = self.loaded_architectures(context.arch)
        if architectures:
            resolved["architectures"] = architectures
        # "flags" is left out: runc 1.1 refuses any ("seccomp flags are not
        # yet supported by runc"), and moby only passes them through.
        for key in ("listenerPath", "listenerMetadata"):
            if self.data.get(key):
                resolved[key] = self.data[key]
        active, _ = self.split_rules(context)
        resolved["syscalls"] = [self.resolve_rule(rule) for rule in active]

        return resolved

    def resolve_rule(self, rule: Rule) -> dict[str, Any]:
        written = self.data["syscalls"][rule.index]
        entry: dict[str, Any] = {"names": list(rule.names), "action": rule.action}
        if rule.errno_ret is not None:
            entry["errnoRet"] = rule.errno_ret
        if rule.args:
            entry["args"] = [
                {
                    key: arg[key]
                    for key in ("index", "value", "valueTwo", "op")
                    if key in arg
                }
                for arg in written["args"]
            ]

        return entry

    @classmethod
    def from_dict(
        cls, data: Any, *, source: str = "<profile>", text: str | None = None
    ) -> Profile:
        """Check *data* (a decoded profile) and build the Profile.

        Raises ProfileError naming the offending place, such as
        ``syscalls[12].action``, with ``source:line`` when *text* is given.
        """
        return _Checker(source, text).profile(data)


def load_profile(path: str) -> Profile:
    """Read and check the profile at *path*.

    Raises ProfileError for text that is not UTF-8 or not JSON (with
    line:column) or a profile the runtime would refuse (with the path inside
    the file and its line); OSError when the file cannot be read.
    """
    with open(path, "rb") as stream:
        data = stream.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(data, exc, path) from None

    return loads_profile(text, source=path)


def _not_utf8(data: bytes, exc: UnicodeDecodeError, source: str) -> ProfileError:
    """The error for the first byte of *data* that is not UTF-8, at its
    line and column (counted in characters, as for JSON errors)."""
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    line = data.count(b"\n", 0, line_start) + 1
    column = len(data[line_start : exc.start].decode("utf-8")) + 1
    byte = data[exc.start]

    return ProfileError(
        f"not UTF-8: byte {byte:#04x}", location=_location(source, line, column)
    )


def loads_profile(text: str, *, source: str = "<profile>") -> Profile:
    """Like :func:`load_profile`, for a profile already in memory."""
    _check_depth(text, source)
    try:
        data = json.loads(
            text,
            parse_constant=lambda name: _refuse_constant(text, source, name),
            parse_int=lambda digits: _whole_number(text, source, digits),
        )
    except json.JSONDecodeError as exc:
        location = _location(source, exc.lineno, exc.colno)
        raise ProfileError(f"not JSON: {exc.msg}", location=location) from None

    return Profile.from_dict(data, source=source, text=text)


def _refuse_constant(text: str, source: str, name: str) -> None:
    """Python's decoder accepts NaN and Infinity; JSON (and Go) do not."""
    where = _first_outside_strings(text, re.escape(name))
    message = f"not JSON: {name} is not a JSON value"

    raise ProfileError(message, location=_location(source, *where))


def _whole_number(text: str, source: str, digits: str) -> int:
    count = len(digits.lstrip("-"))
    if count <= _MAX_DIGITS:
        return int(digits)
    where = _first_outside_strings(text, rf"-?\d{{{_MAX_DIGITS + 1},}}")
    message = f"not JSON: a number with {count} digits"

    raise ProfileError(
        f"{message} (no profile value has more than 20)",
        location=_location(source, *where),
    )


def _first_outside_strings(text: str, pattern: str) -> tuple[int, int]:
    """Line and column of the first match of *pattern* outside a string."""
    for match in re.finditer(f"{_JSON_STRING}|{pattern}", text):
        if not match.group().startswith('"'):
            return _line_column(text, match.start())

    return 1, 1


def _line_column(text: str, offset: int) -> tuple[int, int]:
    column = offset - text.rfind("\n", 0, offset)

    return text.count("\n", 0, offset) + 1, column


def _check_depth(text: str, source: str) -> None:
    """Raise ProfileError at the first bracket nested deeper than MAX_DEPTH."""
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
        elif bracket in "]}":
            depth -= 1
        if depth > MAX_DEPTH:
            location = _location(source, *_line_column(text, token.start()))
            raise ProfileError(
                f"nested more than {MAX_DEPTH} levels deep", location=location
            )


def _location(source: str, *numbers: int) -> str:
    """``source:line:column`` with a long *source* shortened."""
    return ":".join([short_path(source), *map(str, numbers)])


def _version(version: tuple[int, int, int]) -> str:
    major, minor, patch = version

    return f"{major}.{minor}" + (f".{patch}" if patch else "")


class _Checker:
    """Turns decoded JSON into a Profile, failing at the first mistake."""

    def __init__(self, source: str, text: str | None) -> None:
        self.source = source
        self.text = text

    def fail(self, path: Path, message: str) -> ProfileError:
        line = jsonpos.line_of(self.text, path) if self.text else None
        location = _location(self.source, *([line] if line else []))

        return ProfileError(
            f"{jsonpos.format_path(path)}: {message}", location=location
        )

    def profile(self, data: Any) -> Profile:
        self.expect(data, dict, (), "an object")
        if "defaultAction" not in data:
            raise self.fail(("defaultAction",), "missing (every profile needs one)")
        action = self.action(data["defaultAction"], ("defaultAction",))
        errno_ret = self.errno_ret(data, action, (), "defaultErrnoRet")
        if data.get("architectures") and data.get("archMap"):
            raise self.fail(
                ("archMap",), "use either architectures or archMap, not both"
            )
        self.flags(data.get("flags"))
        for key in ("listenerPath", "listenerMetadata"):
            if data.get(key) is not None:
                self.expect(data[key], str, (key,), "a string")

        return Profile(
            data=data,
            source=self.source,
            text=self.text,
            default_action=action,
            default_errno=errno_ret,
            architectures=self.arch_list(data.get("architectures"), ("architectures",)),
            arch_map=self.arch_map(data.get("archMap")),
            rules=self.rules(data.get("syscalls")),
        )

    def expect(self, value: Any, kind: type, path: Path, what: str) -> None:
        # bool is an int in Python but not in JSON, nor for Go's decoder.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(path, f"must be {what}, not {_json_type(value)}")

    def action(self, value: Any, path: Path) -> str:
        self.expect(value, str, path, "a string")
        if value not in ACTIONS:
            raise self.fail(path, f"unknown action {value!r}")

        return value

    def number(self, value: Any, path: Path, top: int) -> int:
        self.expect(value, int, path, "a whole number")
        if not 0 <= value <= top:
            raise self.fail(path, f"{value} is out of range (0 to {top})")

        return value

    def errno_ret(self, data: dict, action: str, path: Path, key: str) -> int | None:
        if data.get(key) is None:
            return None
        number = self.number(data[key], path + (key,), 4095)

        # runc 1.1 accepts and ignores a return code on other actions.
        return number if action in ACTIONS_WITH_ERRNO else None

    def strings(self, value: Any, path: Path) -> tuple[str, ...]:
        if value is None:
            return ()
        self.expect(value, list, path, "a list of strings")
        for position, item in enumerate(value):
            self.expect(item, str, path + (position,), "a string")

        return tuple(value)

    def flags(self, value: Any) -> None:
        for position, flag in enumerate(self.strings(value, ("flags",))):
            if not flag.startswith("SECCOMP_FILTER_FLAG_"):
                raise self.fail(("flags", position), f"unknown flag {flag!r}")

    def arch_list(self, value: Any, path: Path) -> tuple[str, ...]:
        arches = self.strings(value, path)
        for position, arch in enumerate(arches):
            if arch not in SCMP_ARCHES:
                raise self.fail(path + (position,), f"unknown architecture {arch!r}")

        return arches

    def arch_map(self, value: Any) -> dict[str, tuple[str, ...]]:
        if value is None:
            return {}
        self.expect(value, list, ("archMap",), "a list")
        mapping = {}
        for position, entry in enumerate(value):
            path = ("archMap", position)
            self.expect(entry, dict, path, "an object")
            main = entry.get("architecture")
            self.expect(main, str, path + ("architecture",), "a string")
            if main not in SCMP_ARCHES:
                raise self.fail(
                    path + ("architecture",), f"unknown architecture {main!r}"
                )
            subs = self.arch_list(
                entry.get("subArchitectures"), path + ("subArchitectures",)
            )
            mapping.setdefault(main, subs)

        return mapping

    def rules(self, value: Any) -> tuple[Rule, ...]:
        if value is None:
            return ()
        self.expect(value, list, ("syscalls",), "a list")

        return tuple(self.rule(entry, position) for position, entry in enumerate(value))

    def rule(self, entry: Any, position: int) -> Rule:
        path: Path = ("syscalls", position)
        self.expect(entry, dict, path, "an object")
        if "action" not in entry:
            raise self.fail(path, "no action")
        action = self.action(entry["action"], path + ("action",))

        return Rule(
            index=position,
            names=self.rule_names(entry, path),
            action=action,
            errno_ret=self.errno_ret(entry, action, path, "errnoRet"),
            args=self.conditions(entry.get("args"), path + ("args",)),
            includes=self.gate(entry.get("includes"), path + ("includes",)),
            excludes=self.gate(entry.get("excludes"), path + ("excludes",)),
            single_name=bool(entry.get("name")),
        )

    def rule_names(self, entry: dict, path: Path) -> tuple[str, ...]:
        names = self.strings(entry.get("names"), path + ("names",))
        single = entry.get("name")
        if single is not None:
            self.expect(single, str, path + ("name",), "a string")
        if single and names:
            raise self.fail(path + ("name",), "use either name or names, not both")
        names = (single,) if single else names
        if not all(names):
            raise self.fail(path + ("names",), "an empty syscall name")

        return names

    def conditions(self, value: Any, path: Path) -> tuple[Condition, ...]:
        if value is None:
            return ()
        self.expect(value, list, path, "a list")

        return tuple(self.condition(arg, path + (i,)) for i, arg in enumerate(value))

    def condition(self, arg: Any, path: Path) -> Condition:
        self.expect(arg, dict, path, "an object")
        op = arg.get("op")
        self.expect(op, str, path + ("op",), "a string")
        if op not in OPERATORS:
            raise self.fail(path + ("op",), f"unknown operator {op!r}")

        return Condition(
            index=self.number(arg.get("index"), path + ("index",), 5),
            value=self.number(arg.get("value", 0), path + ("value",), _U64_MAX),
            value_two=self.number(
                arg.get("valueTwo", 0), path + ("valueTwo",), _U64_MAX
            ),
            op=op,
        )

    def gate(self, value: Any, path: Path) -> Gate:
        if value is None:
            return Gate()
        self.expect(value, dict, path, "an object")
        caps = self.strings(value.get("caps"), path + ("caps",))
        for position, cap in enumerate(caps):
            if not _CAP_PATTERN.fullmatch(cap):
                raise self.fail(path + ("caps", position), f"not a capability: {cap!r}")
        arches = self.strings(value.get("arches"), path + ("arches",))
        for position, arch in enumerate(arches):
            if arch not in NATIVE_TO_SCMP:
                raise self.fail(
                    path + ("arches", position), f"unknown architecture {arch!r}"
                )

        return Gate(caps, arches, self.min_kernel(value.get("minKernel"), path))

    def min_kernel(self, value: Any, path: Path) -> tuple[int, int, int] | None:
        if value in (None, ""):
            return None
        self.expect(value, str, path + ("minKernel",), 'a string such as "5.13"')
        try:
            return parse_kernel(value)
        except ValueError as exc:
            raise self.fail(path + ("minKernel",), str(exc)) from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number with a fraction or exponent",
    }

    return names.get(type(value), "a number")

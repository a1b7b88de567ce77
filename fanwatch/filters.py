"""Which events a watcher keeps: by kind, path glob and process."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from wcmatch import glob

from .constants import EVENT_NAMES, FAN_MOVED_FROM, FAN_MOVED_TO, FAN_RENAME
from .errors import FanwatchError
from .events import FileEvent

GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.BRACE | glob.EXTGLOB


def parse_event_names(names: Iterable[str]) -> int:
    """The event mask for names like ``open,close_write``; ``all`` for every
    file event. Raises FanwatchError naming an unknown event, or if no
    event is named at all."""
    mask = 0
    for item in names:
        for name in filter(None, (part.strip().lower() for part in item.split(","))):
            if name == "all":
                mask |= FILE_EVENTS
            elif name == "close":
                mask |= EVENT_NAMES["close_write"] | EVENT_NAMES["close_nowrite"]
            elif name == "move":
                mask |= FAN_MOVED_FROM | FAN_MOVED_TO | FAN_RENAME
            elif name in EVENT_NAMES and name not in ("overflow",):
                mask |= EVENT_NAMES[name]
            else:
                known = ", ".join(sorted(USER_EVENTS))
                raise FanwatchError(
                    f"unknown event {name!r}", hint=f"known events: {known}"
                )
    if not mask:
        raise FanwatchError("no event named", hint="for example: -e open,close_write")

    return mask


USER_EVENTS = (
    "access",
    "modify",
    "attrib",
    "close_write",
    "close_nowrite",
    "close",
    "open",
    "open_exec",
    "create",
    "delete",
    "rename",
    "move",
    "moved_from",
    "moved_to",
    "delete_self",
    "move_self",
    "all",
)

FILE_EVENTS = 0
for _name in USER_EVENTS[:-1]:
    if _name in EVENT_NAMES:
        FILE_EVENTS |= EVENT_NAMES[_name]


def compile_globs(patterns: Iterable[str]) -> re.Pattern[bytes] | None:
    """One regular expression matching any of *patterns* against a path.

    ``**`` matches any number of directories. A pattern that does not start
    with ``/`` matches the end of a path: ``*.log`` matches ``/var/x/y.log``
    and ``sub/*.c`` matches ``/src/sub/a.c``. Raises FanwatchError for an
    empty pattern.
    """
    regexes = []
    for pattern in patterns:
        if not pattern:
            raise FanwatchError("an empty path pattern matches nothing")
        if not pattern.startswith("/"):
            pattern = "**/" + pattern
        include, _exclude = glob.translate(pattern, flags=GLOB_FLAGS)
        regexes.extend(include)
    if not regexes:
        return None

    return re.compile(os.fsencode("|".join(f"(?:{r})" for r in regexes)))


# Characters that make a glob more than a literal (wcmatch, with BRACE and
# EXTGLOB); a backslash escapes.
_MAGIC = re.compile(r"[*?\[\]{}()!@+|\\]")
_DOT_COMPONENT = re.compile(rb"(?:^|/)\.\.?(?:/|$)")


class GlobSet:
    """Globs as :func:`compile_globs` reads them, matched faster.

    One regex over the whole path costs a few microseconds per pattern, so
    a thousand patterns made each event cost milliseconds. Patterns without
    a slash only look at the last component: ``*`` plus a literal suffix
    (``*.log``) is tested with one ``bytes.endswith`` for all of them, other
    such patterns by one regex over the last component, and only patterns
    with a slash by a regex over the path.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = list(patterns)
        suffixes: list[bytes] = []
        names: list[str] = []
        paths: list[str] = []
        for pattern in patterns:
            if pattern.startswith("**/") and pattern[3:] and "/" not in pattern[3:]:
                pattern = pattern[3:]  # what compile_globs adds anyway
            literal = pattern[1:]
            if "/" in pattern:
                paths.append(pattern)
            elif (
                pattern.startswith("*")
                and literal.strip(".")
                and not _MAGIC.search(literal)
            ):
                suffixes.append(os.fsencode(literal))
            else:
                names.append(pattern)
        self._suffixes = tuple(suffixes)
        self._name = _compile(names)
        self._path = compile_globs(paths)
        self._all = compile_globs(patterns)

    def match(self, path: bytes) -> bool:
        """True if any pattern matches *path*."""
        if b"/." in path and _DOT_COMPONENT.search(path):
            # "**" never crosses a "." or ".." component: the slow regex
            # knows how (event paths are normalized and have none).
            return self._all is not None and self._all.match(path) is not None
        name = path.rstrip(b"/")
        name = name[name.rfind(b"/") + 1 :]
        if self._suffixes and name.endswith(self._suffixes) and name.strip(b"."):
            return True
        if self._name is not None and self._name.match(name):
            return True

        return self._path is not None and self._path.match(path) is not None


def _compile(patterns: list[str]) -> re.Pattern[bytes] | None:
    regexes = []
    for pattern in patterns:
        include, _exclude = glob.translate(pattern, flags=GLOB_FLAGS)
        regexes.extend(include)
    if not regexes:
        return None

    return re.compile(os.fsencode("|".join(f"(?:{r})" for r in regexes)))


@dataclass
class EventFilter:
    """Keep an event only if it passes every non-empty criterion.

    Includes are alternatives (any may match); excludes always win. A rename
    passes the path criteria if either its old or its new path does.
    """

    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)
    exclude_pids: set[int] = field(default_factory=set)
    comms: set[str] = field(default_factory=set)
    exclude_comms: set[str] = field(default_factory=set)
    uids: set[int] = field(default_factory=set)
    exclude_uids: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._include = GlobSet(self.include) if self.include else None
        self._exclude = GlobSet(self.exclude) if self.exclude else None

    @property
    def needs_process(self) -> bool:
        return bool(self.comms or self.exclude_comms or self.uids or self.exclude_uids)

    def pid_ok(self, pid: int) -> bool:
        if self.pids and pid not in self.pids:
            return False
        return pid not in self.exclude_pids

    def path_ok(self, path: bytes | None, old_path: bytes | None = None) -> bool:
        if self._include is None and self._exclude is None:
            return True
        candidates = [p for p in (path, old_path) if p is not None]
        if self._exclude is not None and any(
            self._exclude.match(p) for p in candidates
        ):
            return False
        if self._include is None:
            return True

        return any(self._include.match(p) for p in candidates)

    def process_ok(self, event: FileEvent) -> bool:
        proc = event.process
        if self.comms and proc.comm not in self.comms:
            return False
        if proc.comm is not None and proc.comm in self.exclude_comms:
            return False
        if self.uids and proc.uid not in self.uids:
            return False

        return proc.uid is None or proc.uid not in self.exclude_uids

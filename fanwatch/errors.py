"""Exceptions raised by fanwatch beyond the plain OSError of a syscall."""

from __future__ import annotations

import os

# Paths in error messages keep this many characters at each end: enough to
# recognise them, where a path deeper than PATH_MAX made a 12 KB line.
PATH_KEEP = 100


class FanwatchError(Exception):
    """A failure the command line reports as one line, with a hint.

    ``hint`` is an optional sentence telling the user what to do next.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class NotSupportedError(FanwatchError):
    """This kernel, process or filesystem cannot do what was asked."""

    exit_code = 3  # fanwatch.cli.exitcodes.NOT_SUPPORTED


class PolicyError(FanwatchError):
    """A policy file is invalid; ``location`` is ``file:line`` where known."""

    def __init__(
        self, message: str, *, location: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(f"{location}: {message}" if location else message, hint=hint)
        self.location = location


class ProfileError(FanwatchError):
    """A seccomp profile is invalid; ``location`` points into the file."""

    def __init__(
        self, message: str, *, location: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(f"{location}: {message}" if location else message, hint=hint)
        self.location = location


def short_path(path: str | bytes | os.PathLike) -> str:
    """*path* as error messages show it: decoded and, when long, its first
    and last PATH_KEEP characters with ``...`` between. Control characters
    are left in; the command line escapes the whole message."""
    text = os.fsdecode(path)
    if len(text) <= 2 * PATH_KEEP + 3:
        return text

    return f"{text[:PATH_KEEP]}...{text[-PATH_KEEP:]}"

"""Exceptions raised by fanwatch beyond the plain OSError of a syscall."""

from __future__ import annotations


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

    def __init__(self, message: str, *, location: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{location}: {message}" if location else message, hint=hint)
        self.location = location


class ProfileError(FanwatchError):
    """A seccomp profile is invalid; ``location`` points into the file."""

    def __init__(self, message: str, *, location: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{location}: {message}" if location else message, hint=hint)
        self.location = location

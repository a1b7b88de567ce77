"""A fanotify group that owns its file descriptor like a file object."""

from __future__ import annotations

import os
import select
import struct
import warnings
from collections.abc import Iterable

from . import syscalls
from .constants import (
    AT_FDCWD,
    FAN_CLOEXEC,
    FAN_INFO,
    FAN_MARK_ADD,
    FAN_MARK_FLUSH,
    FAN_MARK_INODE,
    FAN_MARK_REMOVE,
    FAN_NONBLOCK,
    FAN_RESPONSE_INFO_AUDIT_RULE,
    PERMISSION_EVENTS,
)
from .parser import RawEvent, parse_events

# struct fanotify_response: fd, response.
RESPONSE = struct.Struct("=iI")
# struct fanotify_response_info_audit_rule: type, pad, len, rule_number,
# subj_trust, obj_trust.
AUDIT_RULE = struct.Struct("=BBHIII")

# Large enough for hundreds of events with names and handles; the kernel
# refuses (EINVAL) a buffer too small for one event.
DEFAULT_READ_SIZE = 256 * 1024

DEFAULT_EVENT_F_FLAGS = os.O_RDONLY | os.O_LARGEFILE | os.O_CLOEXEC


class Batch(list[RawEvent]):
    """The events of one read; :meth:`close` closes every fd they carry.

    Use it as a context manager so that descriptors are closed on every path,
    including events the caller filtered out or an exception.
    """

    def close(self) -> None:
        for event in self:
            close_event_fds(event)

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def close_event_fds(event: RawEvent) -> None:
    """Close the event fd and pidfd of *event* once; safe to call again."""
    if event.fd >= 0:
        _close_quietly(event.fd)
        event.fd = -1
    if event.pidfd is not None and event.pidfd >= 0:
        _close_quietly(event.pidfd)
        event.pidfd = -1


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class Group:
    """A fanotify group: ``fanotify_init`` plus marks, reads and responses.

    The group fd is always close-on-exec (a child that inherited it would
    keep permission events pending after the listener died) and
    non-blocking; :meth:`read` waits with ``poll``. Raises :class:`OSError`
    from ``fanotify_init`` with the kernel's errno.
    """

    def __init__(
        self,
        flags: int = 0,
        event_f_flags: int = DEFAULT_EVENT_F_FLAGS,
        *,
        read_size: int = DEFAULT_READ_SIZE,
    ) -> None:
        self._fd = -1
        self._poll = select.poll()
        self.flags = flags | FAN_CLOEXEC | FAN_NONBLOCK
        self._fd = syscalls.fanotify_init(self.flags, event_f_flags | os.O_CLOEXEC)
        self.read_size = read_size
        self._poll.register(self._fd, select.POLLIN)

    # -- file-like ownership -------------------------------------------------

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("I/O operation on closed fanotify group")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Close the group. Pending permission events are allowed by the kernel."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            # A later fd may reuse the number; the poll object must not
            # watch it on this group's behalf.
            self._poll.unregister(fd)
            os.close(fd)

    def __enter__(self) -> Group:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if self._fd >= 0:
            warnings.warn(
                f"unclosed fanotify group fd={self._fd}", ResourceWarning, source=self
            )
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<Group {state} flags={self.flags:#x}>"

    # -- marks ---------------------------------------------------------------

    def mark(
        self,
        path: str | bytes | os.PathLike,
        mask: int,
        *,
        kind: int = FAN_MARK_INODE,
        flags: int = 0,
        dirfd: int = AT_FDCWD,
    ) -> None:
        """Add *mask* to the mark of *kind* on *path* (OSError names *path*)."""
        syscalls.fanotify_mark(
            self.fileno(), FAN_MARK_ADD | kind | flags, mask, dirfd, path
        )

    def unmark(
        self,
        path: str | bytes | os.PathLike,
        mask: int,
        *,
        kind: int = FAN_MARK_INODE,
        flags: int = 0,
        dirfd: int = AT_FDCWD,
    ) -> None:
        """Remove *mask* from the mark of *kind* on *path*."""
        syscalls.fanotify_mark(
            self.fileno(), FAN_MARK_REMOVE | kind | flags, mask, dirfd, path
        )

    def mark_fd(
        self, fd: int, mask: int, *, kind: int = FAN_MARK_INODE, flags: int = 0
    ) -> None:
        """Mark the object an open *fd* refers to (path is ``None``)."""
        syscalls.fanotify_mark(
            self.fileno(), FAN_MARK_ADD | kind | flags, mask, fd, None
        )

    def flush(self, kind: int = FAN_MARK_INODE) -> None:
        """Remove every mark of *kind* from this group."""
        syscalls.fanotify_mark(self.fileno(), FAN_MARK_FLUSH | kind, 0, AT_FDCWD, "/")

    # -- events --------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until events are ready; False if *timeout* seconds passed.

        Raises ValueError if the group is closed.
        """
        self.fileno()
        ms = None if timeout is None else max(0, int(timeout * 1000))
        return bool(self._poll.poll(ms))

    def read(self, timeout: float | None = None) -> Batch:
        """Read the events that are ready, waiting up to *timeout* seconds.

        Returns an empty batch on timeout. The caller owns the descriptors
        in the batch: close it (``with group.read() as batch:``).
        """
        if timeout != 0 and not self.wait(timeout):
            return Batch()

        try:
            data = os.read(self.fileno(), self.read_size)
        except BlockingIOError:
            return Batch()

        return Batch(parse_events(data))

    def read_raw(self) -> bytes:
        """One non-blocking read of raw event bytes (b"" if none are ready)."""
        try:
            return os.read(self.fileno(), self.read_size)
        except BlockingIOError:
            return b""

    def respond(self, fd: int, response: int, *, audit_rule: int | None = None) -> None:
        """Answer the permission event whose event fd is *fd*.

        *response* is ``FAN_ALLOW`` or ``FAN_DENY`` (optionally with
        ``FAN_AUDIT`` or a ``FAN_DENY_ERRNO`` value). With *audit_rule*,
        a ``FAN_INFO`` audit-rule record follows (since 6.3). Raises
        OSError: ENOENT if the event was already answered, EINVAL if the
        kernel does not accept this response.
        """
        data = RESPONSE.pack(fd, response | (FAN_INFO if audit_rule is not None else 0))
        if audit_rule is not None:
            data += AUDIT_RULE.pack(
                FAN_RESPONSE_INFO_AUDIT_RULE, 0, AUDIT_RULE.size, audit_rule, 0, 0
            )
        while True:
            try:
                os.write(self.fileno(), data)
                return
            except InterruptedError:
                continue

    def respond_all(self, events: Iterable[RawEvent], response: int) -> None:
        """Answer every permission event in *events* with *response*.

        Best effort: an event already answered (ENOENT) is skipped.
        """
        for event in events:
            if event.fd >= 0 and event.mask & PERMISSION_EVENTS:
                try:
                    self.respond(event.fd, response)
                except OSError:
                    pass

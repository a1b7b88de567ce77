"""What this kernel lets this process do with fanotify, found by trying.

Version numbers lie (distributions backport), so every feature is probed
with a real ``fanotify_init`` or ``fanotify_mark`` and the answer remembered.
Probing creates and closes short-lived groups; it never marks anything for
permission events.
"""

from __future__ import annotations

import errno
import functools
import os
from dataclasses import dataclass, field

from . import syscalls
from .constants import (
    FAN_CLASS_CONTENT,
    FAN_CLASS_NOTIF,
    FAN_CLASS_PRE_CONTENT,
    FAN_CLOEXEC,
    FAN_CREATE,
    FAN_ENABLE_AUDIT,
    FAN_MARK_ADD,
    FAN_MARK_FILESYSTEM,
    FAN_MARK_INODE,
    FAN_MARK_MOUNT,
    FAN_NONBLOCK,
    FAN_OPEN,
    FAN_RENAME,
    FAN_REPORT_DFID_NAME,
    FAN_REPORT_DIR_FID,
    FAN_REPORT_FD_ERROR,
    FAN_REPORT_FID,
    FAN_REPORT_MNT,
    FAN_REPORT_PIDFD,
    FAN_REPORT_TARGET_FID,
    FAN_REPORT_TID,
    FAN_UNLIMITED_MARKS,
    FAN_UNLIMITED_QUEUE,
)

FID_GROUP = FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_REPORT_FID

# Each init capability, and the flags that test it. FID-only flags are tried
# on a FID group so that an unprivileged process can still learn them.
INIT_PROBES: dict[str, int] = {
    "fd_group": FAN_CLASS_NOTIF,
    "fid": FAN_CLASS_NOTIF | FAN_REPORT_FID,
    "dir_fid": FAN_CLASS_NOTIF | FAN_REPORT_DIR_FID,
    "name": FID_GROUP,
    "target_fid": FID_GROUP | FAN_REPORT_TARGET_FID,
    "pidfd": FID_GROUP | FAN_REPORT_PIDFD,
    "tid": FAN_CLASS_NOTIF | FAN_REPORT_TID,
    "fd_error": FAN_CLASS_NOTIF | FAN_REPORT_FD_ERROR,
    "report_mnt": FAN_CLASS_NOTIF | FAN_REPORT_MNT,
    "unlimited_queue": FID_GROUP | FAN_UNLIMITED_QUEUE,
    "unlimited_marks": FID_GROUP | FAN_UNLIMITED_MARKS,
    "class_content": FAN_CLASS_CONTENT,
    "class_pre_content": FAN_CLASS_PRE_CONTENT,
    "audit": FAN_CLASS_CONTENT | FAN_ENABLE_AUDIT,
}


def try_init(flags: int) -> int | None:
    """None if ``fanotify_init(flags)`` succeeds here, else its errno."""
    try:
        fd = syscalls.fanotify_init(flags | FAN_CLOEXEC | FAN_NONBLOCK, os.O_RDONLY)
    except OSError as exc:
        return exc.errno
    os.close(fd)

    return None


@dataclass
class Features:
    """The outcome of probing ``fanotify_init`` once in this process.

    ``init_errors`` maps each name in :data:`INIT_PROBES` to None (works) or
    the errno the kernel (or a seccomp filter) answered.
    """

    init_errors: dict[str, int | None] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return self.init_errors.get(name, errno.EINVAL) is None

    @property
    def available(self) -> bool:
        """Any fanotify group at all can be created here."""
        return self.has("fid") or self.has("fd_group")

    @property
    def privileged(self) -> bool:
        """Groups that report fds work: CAP_SYS_ADMIN in the initial user ns."""
        return self.has("fd_group")

    def why_unavailable(self) -> str:
        err = self.init_errors.get("fid") or self.init_errors.get("fd_group")
        if err == errno.EMFILE:
            # fanotify_init's EMFILE usually means the per-user group limit,
            # shared by every process (and rootful container) of this uid.
            return (
                "too many fanotify groups for this user "
                "(/proc/sys/fs/fanotify/max_user_groups) or open files (ulimit -n)"
            )

        return os.strerror(err) if err else "unknown"

    def as_dict(self) -> dict[str, str]:
        return {
            name: "yes" if err is None else errno.errorcode.get(err, str(err))
            for name, err in self.init_errors.items()
        }


@functools.cache
def probe() -> Features:
    """Probe every init capability once per process (cached)."""
    return Features({name: try_init(flags) for name, flags in INIT_PROBES.items()})


def try_mark(group_flags: int, path: str | bytes, kind: int, mask: int) -> int | None:
    """None if a *kind* mark for *mask* on *path* is accepted, else errno."""
    try:
        fd = syscalls.fanotify_init(
            group_flags | FAN_CLOEXEC | FAN_NONBLOCK, os.O_RDONLY
        )
    except OSError as exc:
        return exc.errno
    try:
        syscalls.fanotify_mark(fd, FAN_MARK_ADD | kind, mask, path=path)
    except OSError as exc:
        return exc.errno
    finally:
        os.close(fd)

    return None


@dataclass(frozen=True)
class MarkSupport:
    """Which mark kinds work on one filesystem, as errno or None."""

    fid_inode: int | None
    fid_filesystem: int | None
    fid_mount: int | None
    fd_mount: int | None
    rename: int | None


@functools.cache
def _mark_support_for_dev(dev: int, path: bytes) -> MarkSupport:
    return MarkSupport(
        fid_inode=try_mark(FID_GROUP, path, FAN_MARK_INODE, FAN_CREATE),
        fid_filesystem=try_mark(FID_GROUP, path, FAN_MARK_FILESYSTEM, FAN_CREATE),
        fid_mount=try_mark(FID_GROUP, path, FAN_MARK_MOUNT, FAN_OPEN),
        fd_mount=try_mark(FAN_CLASS_NOTIF, path, FAN_MARK_MOUNT, FAN_OPEN),
        rename=try_mark(FID_GROUP, path, FAN_MARK_INODE, FAN_RENAME),
    )


def mark_support(path: str | bytes) -> MarkSupport:
    """Probe the mark kinds on the filesystem holding *path* (cached per device).

    Raises OSError if *path* cannot be stat'ed.
    """
    raw = os.fsencode(path)

    return _mark_support_for_dev(os.stat(raw).st_dev, raw)

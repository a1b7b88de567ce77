"""The fanotify ABI: every flag, event bit and record type, with the kernel's values.

Values come from include/uapi/linux/fanotify.h. The names keep the kernel's
``FAN_`` spelling at module level so that they stay greppable; the IntFlag
classes below group them for readable reprs. "since x.y" is the mainline
release that introduced the value; distribution kernels backport, so code
decides by probing (see :mod:`fanwatch.probe`), never by version.
"""

from __future__ import annotations

import enum

# -- fanotify_init() flags -------------------------------------------------

FAN_CLOEXEC = 0x00000001
FAN_NONBLOCK = 0x00000002
FAN_CLASS_NOTIF = 0x00000000
FAN_CLASS_CONTENT = 0x00000004  # permission events, after content is there
FAN_CLASS_PRE_CONTENT = 0x00000008  # permission events, before content
FAN_UNLIMITED_QUEUE = 0x00000010
FAN_UNLIMITED_MARKS = 0x00000020
FAN_ENABLE_AUDIT = 0x00000040  # since 4.15, needs CAP_AUDIT_WRITE
FAN_REPORT_PIDFD = 0x00000080  # since 5.15
FAN_REPORT_TID = 0x00000100  # since 4.20
FAN_REPORT_FID = 0x00000200  # since 5.1
FAN_REPORT_DIR_FID = 0x00000400  # since 5.9
FAN_REPORT_NAME = 0x00000800  # since 5.9
FAN_REPORT_TARGET_FID = 0x00001000  # since 5.17
FAN_REPORT_FD_ERROR = 0x00002000  # since 6.13
FAN_REPORT_MNT = 0x00004000  # since 6.14
FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME
FAN_REPORT_DFID_NAME_TARGET = (
    FAN_REPORT_DFID_NAME | FAN_REPORT_FID | FAN_REPORT_TARGET_FID
)

# -- event bits (fanotify_mark() mask and event metadata mask) -------------

FAN_ACCESS = 0x00000001
FAN_MODIFY = 0x00000002
FAN_ATTRIB = 0x00000004  # since 5.1
FAN_CLOSE_WRITE = 0x00000008
FAN_CLOSE_NOWRITE = 0x00000010
FAN_OPEN = 0x00000020
FAN_MOVED_FROM = 0x00000040  # since 5.1
FAN_MOVED_TO = 0x00000080  # since 5.1
FAN_CREATE = 0x00000100  # since 5.1
FAN_DELETE = 0x00000200  # since 5.1
FAN_DELETE_SELF = 0x00000400  # since 5.1
FAN_MOVE_SELF = 0x00000800  # since 5.1
FAN_OPEN_EXEC = 0x00001000  # since 5.0
FAN_Q_OVERFLOW = 0x00004000
FAN_FS_ERROR = 0x00008000  # since 5.16, filesystem marks only
FAN_OPEN_PERM = 0x00010000
FAN_ACCESS_PERM = 0x00020000
FAN_OPEN_EXEC_PERM = 0x00040000  # since 5.0
FAN_PRE_ACCESS = 0x00100000  # since 6.14, pre-content groups only
FAN_MNT_ATTACH = 0x01000000  # since 6.14, mount namespace marks only
FAN_MNT_DETACH = 0x02000000  # since 6.14, mount namespace marks only
FAN_EVENT_ON_CHILD = 0x08000000
FAN_RENAME = 0x10000000  # since 5.17, needs FAN_REPORT_NAME
FAN_ONDIR = 0x40000000

FAN_CLOSE = FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE
FAN_MOVE = FAN_MOVED_FROM | FAN_MOVED_TO

# -- fanotify_mark() flags -------------------------------------------------

FAN_MARK_ADD = 0x00000001
FAN_MARK_REMOVE = 0x00000002
FAN_MARK_DONT_FOLLOW = 0x00000004
FAN_MARK_ONLYDIR = 0x00000008
FAN_MARK_IGNORED_MASK = 0x00000020
FAN_MARK_IGNORED_SURV_MODIFY = 0x00000040
FAN_MARK_FLUSH = 0x00000080
FAN_MARK_EVICTABLE = 0x00000200  # since 5.19, inode marks only
FAN_MARK_IGNORE = 0x00000400  # since 6.0
FAN_MARK_IGNORE_SURV = FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY

# The mark type occupies these bits; the values are not independent flags.
FAN_MARK_INODE = 0x00000000
FAN_MARK_MOUNT = 0x00000010
FAN_MARK_FILESYSTEM = 0x00000100  # since 4.20
FAN_MARK_MNTNS = 0x00000110  # since 6.14
FAN_MARK_TYPE_MASK = 0x00000110

# -- permission responses --------------------------------------------------

FAN_ALLOW = 0x01
FAN_DENY = 0x02
FAN_AUDIT = 0x10  # since 4.15, needs FAN_ENABLE_AUDIT
FAN_INFO = 0x20  # since 6.3, info records follow the response
FAN_ERRNO_BITS = 8
FAN_ERRNO_SHIFT = 32 - FAN_ERRNO_BITS
FAN_ERRNO_MASK = (1 << FAN_ERRNO_BITS) - 1

FAN_RESPONSE_INFO_NONE = 0
FAN_RESPONSE_INFO_AUDIT_RULE = 1


def FAN_DENY_ERRNO(err: int) -> int:  # noqa: N802 - the kernel's macro name
    """Deny with a chosen errno (since 6.14, pre-content groups only)."""
    return FAN_DENY | ((err & FAN_ERRNO_MASK) << FAN_ERRNO_SHIFT)


# -- event records ---------------------------------------------------------

FANOTIFY_METADATA_VERSION = 3
FAN_NOFD = -1
FAN_NOPIDFD = FAN_NOFD
FAN_EPIDFD = -2

FAN_EVENT_INFO_TYPE_FID = 1
FAN_EVENT_INFO_TYPE_DFID_NAME = 2
FAN_EVENT_INFO_TYPE_DFID = 3
FAN_EVENT_INFO_TYPE_PIDFD = 4  # since 5.15
FAN_EVENT_INFO_TYPE_ERROR = 5  # since 5.16
FAN_EVENT_INFO_TYPE_RANGE = 6  # since 6.14
FAN_EVENT_INFO_TYPE_MNT = 7  # since 6.14
FAN_EVENT_INFO_TYPE_OLD_DFID_NAME = 10  # since 5.17
FAN_EVENT_INFO_TYPE_NEW_DFID_NAME = 12  # since 5.17

# -- handles (fcntl.h) -----------------------------------------------------

MAX_HANDLE_SZ = 128
AT_FDCWD = -100
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
AT_HANDLE_FID = 0x200  # since 6.5: a handle only for identification


class InitFlag(enum.IntFlag):
    """Flags for :func:`fanwatch.syscalls.fanotify_init`."""

    CLOEXEC = FAN_CLOEXEC
    NONBLOCK = FAN_NONBLOCK
    CLASS_CONTENT = FAN_CLASS_CONTENT
    CLASS_PRE_CONTENT = FAN_CLASS_PRE_CONTENT
    UNLIMITED_QUEUE = FAN_UNLIMITED_QUEUE
    UNLIMITED_MARKS = FAN_UNLIMITED_MARKS
    ENABLE_AUDIT = FAN_ENABLE_AUDIT
    REPORT_PIDFD = FAN_REPORT_PIDFD
    REPORT_TID = FAN_REPORT_TID
    REPORT_FID = FAN_REPORT_FID
    REPORT_DIR_FID = FAN_REPORT_DIR_FID
    REPORT_NAME = FAN_REPORT_NAME
    REPORT_TARGET_FID = FAN_REPORT_TARGET_FID
    REPORT_FD_ERROR = FAN_REPORT_FD_ERROR
    REPORT_MNT = FAN_REPORT_MNT


class Event(enum.IntFlag):
    """Event bits, as marked and as reported."""

    ACCESS = FAN_ACCESS
    MODIFY = FAN_MODIFY
    ATTRIB = FAN_ATTRIB
    CLOSE_WRITE = FAN_CLOSE_WRITE
    CLOSE_NOWRITE = FAN_CLOSE_NOWRITE
    OPEN = FAN_OPEN
    MOVED_FROM = FAN_MOVED_FROM
    MOVED_TO = FAN_MOVED_TO
    CREATE = FAN_CREATE
    DELETE = FAN_DELETE
    DELETE_SELF = FAN_DELETE_SELF
    MOVE_SELF = FAN_MOVE_SELF
    OPEN_EXEC = FAN_OPEN_EXEC
    Q_OVERFLOW = FAN_Q_OVERFLOW
    FS_ERROR = FAN_FS_ERROR
    OPEN_PERM = FAN_OPEN_PERM
    ACCESS_PERM = FAN_ACCESS_PERM
    OPEN_EXEC_PERM = FAN_OPEN_EXEC_PERM
    PRE_ACCESS = FAN_PRE_ACCESS
    MNT_ATTACH = FAN_MNT_ATTACH
    MNT_DETACH = FAN_MNT_DETACH
    EVENT_ON_CHILD = FAN_EVENT_ON_CHILD
    RENAME = FAN_RENAME
    ONDIR = FAN_ONDIR


class MarkFlag(enum.IntFlag):
    """Flags for :func:`fanwatch.syscalls.fanotify_mark` besides the type."""

    ADD = FAN_MARK_ADD
    REMOVE = FAN_MARK_REMOVE
    DONT_FOLLOW = FAN_MARK_DONT_FOLLOW
    ONLYDIR = FAN_MARK_ONLYDIR
    IGNORED_MASK = FAN_MARK_IGNORED_MASK
    IGNORED_SURV_MODIFY = FAN_MARK_IGNORED_SURV_MODIFY
    FLUSH = FAN_MARK_FLUSH
    EVICTABLE = FAN_MARK_EVICTABLE
    IGNORE = FAN_MARK_IGNORE


class MarkType(enum.IntEnum):
    """What a mark is attached to."""

    INODE = FAN_MARK_INODE
    MOUNT = FAN_MARK_MOUNT
    FILESYSTEM = FAN_MARK_FILESYSTEM
    MNTNS = FAN_MARK_MNTNS


PERMISSION_EVENTS = (
    FAN_OPEN_PERM | FAN_ACCESS_PERM | FAN_OPEN_EXEC_PERM | FAN_PRE_ACCESS
)
DIRENT_EVENTS = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_RENAME

# Short names used on the command line, in JSON output and in policies.
EVENT_NAMES: dict[str, int] = {
    "access": FAN_ACCESS,
    "modify": FAN_MODIFY,
    "attrib": FAN_ATTRIB,
    "close_write": FAN_CLOSE_WRITE,
    "close_nowrite": FAN_CLOSE_NOWRITE,
    "open": FAN_OPEN,
    "moved_from": FAN_MOVED_FROM,
    "moved_to": FAN_MOVED_TO,
    "create": FAN_CREATE,
    "delete": FAN_DELETE,
    "delete_self": FAN_DELETE_SELF,
    "move_self": FAN_MOVE_SELF,
    "open_exec": FAN_OPEN_EXEC,
    "overflow": FAN_Q_OVERFLOW,
    "fs_error": FAN_FS_ERROR,
    "open_perm": FAN_OPEN_PERM,
    "access_perm": FAN_ACCESS_PERM,
    "open_exec_perm": FAN_OPEN_EXEC_PERM,
    "pre_access": FAN_PRE_ACCESS,
    "mnt_attach": FAN_MNT_ATTACH,
    "mnt_detach": FAN_MNT_DETACH,
    "rename": FAN_RENAME,
}


def event_names(mask: int) -> list[str]:
    """The short names of the event bits set in *mask*, lowest bit first."""
    return [name for name, bit in _NAMES_BY_BIT if mask & bit]


_NAMES_BY_BIT = sorted(EVENT_NAMES.items(), key=lambda item: item[1])

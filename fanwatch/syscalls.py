"""The literal syscall layer: fanotify and file-handle calls through ctypes.

Each function keeps the kernel's name and argument order, takes plain ints and
bytes, and raises :class:`OSError` (errno, strerror, path) where libc returns
-1. EINTR is retried. Nothing here knows about events or policies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct

from .constants import AT_FDCWD, MAX_HANDLE_SZ

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

_fanotify_init = _libc.fanotify_init
_fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_fanotify_init.restype = ctypes.c_int

# The mask is 64 bits wide on every architecture; declaring it keeps ctypes
# from truncating high event bits such as FAN_ONDIR or FAN_RENAME.
_fanotify_mark = _libc.fanotify_mark
_fanotify_mark.argtypes = [
    ctypes.c_int,
    ctypes.c_uint,
    ctypes.c_uint64,
    ctypes.c_int,
    ctypes.c_char_p,
]
_fanotify_mark.restype = ctypes.c_int

_name_to_handle_at = _libc.name_to_handle_at
_name_to_handle_at.argtypes = [
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_int),
    ctypes.c_int,
]
_name_to_handle_at.restype = ctypes.c_int

_open_by_handle_at = _libc.open_by_handle_at
_open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_open_by_handle_at.restype = ctypes.c_int

# struct file_handle { __u32 handle_bytes; int handle_type; u8 f_handle[]; }
_FILE_HANDLE_HEADER = struct.Struct("=Ii")


def _call(func, *args, path: str | bytes | None = None) -> int:
    """Call a libc function, retrying EINTR and raising OSError on -1."""
    while True:
        result = func(*args)
        if result != -1:
            return result

        err = ctypes.get_errno()
        if err != errno.EINTR:
            raise OSError(err, os.strerror(err), path)


def _as_path(path: str | bytes | os.PathLike | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def fanotify_init(flags: int, event_f_flags: int = os.O_RDONLY) -> int:
    """Create a fanotify group and return its file descriptor."""
    return _call(_fanotify_init, flags, event_f_flags)


def fanotify_mark(
    fd: int,
    flags: int,
    mask: int,
    dirfd: int = AT_FDCWD,
    path: str | bytes | os.PathLike | None = None,
) -> None:
    """Add, remove or flush a mark; *path* is reported in the OSError."""
    raw = _as_path(path)
    _call(_fanotify_mark, fd, flags, mask, dirfd, raw, path=raw and os.fsdecode(raw))


def name_to_handle_at(
    dirfd: int, path: str | bytes | os.PathLike, flags: int = 0
) -> tuple[int, bytes, int]:
    """Return ``(handle_type, handle_bytes, mount_id)`` for *path*.

    The handle bytes are exactly what fanotify reports in FID records for the
    same object, so they can key a lookup table.
    """
    raw = _as_path(path)
    buf = ctypes.create_string_buffer(_FILE_HANDLE_HEADER.size + MAX_HANDLE_SZ)
    _FILE_HANDLE_HEADER.pack_into(buf, 0, MAX_HANDLE_SZ, 0)
    mount_id = ctypes.c_int()
    _call(
        _name_to_handle_at,
        dirfd,
        raw,
        buf,
        ctypes.byref(mount_id),
        flags,
        path=os.fsdecode(raw),
    )
    size, handle_type = _FILE_HANDLE_HEADER.unpack_from(buf, 0)
    start = _FILE_HANDLE_HEADER.size

    return handle_type, buf.raw[start : start + size], mount_id.value


def open_by_handle_at(
    mount_fd: int, handle_type: int, handle: bytes, flags: int = os.O_PATH
) -> int:
    """Open the object named by a file handle (needs CAP_DAC_READ_SEARCH)."""
    buf = ctypes.create_string_buffer(_FILE_HANDLE_HEADER.size + len(handle))
    _FILE_HANDLE_HEADER.pack_into(buf, 0, len(handle), handle_type)
    buf[_FILE_HANDLE_HEADER.size :] = handle

    return _call(_open_by_handle_at, mount_fd, buf, flags | os.O_CLOEXEC)


def pidfd_open(pid: int) -> int:
    """A pidfd for *pid* (since 5.3); raises ProcessLookupError if gone."""
    return os.pidfd_open(pid)

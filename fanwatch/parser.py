"""A pure parser from the bytes a fanotify group returns to event records.

:func:`parse_events` never raises, whatever the bytes: a record it cannot
trust ends the batch with a :class:`RawEvent` whose ``malformed`` says why,
and an info record of a type it does not know is kept in ``unknown``. It
opens and closes nothing; the file descriptors it finds (``fd``, ``pidfd``)
belong to the caller, which must close them.
"""

from __future__ import annotations

import struct

from .constants import (
    FAN_EVENT_INFO_TYPE_DFID,
    FAN_EVENT_INFO_TYPE_DFID_NAME,
    FAN_EVENT_INFO_TYPE_ERROR,
    FAN_EVENT_INFO_TYPE_FID,
    FAN_EVENT_INFO_TYPE_MNT,
    FAN_EVENT_INFO_TYPE_NEW_DFID_NAME,
    FAN_EVENT_INFO_TYPE_OLD_DFID_NAME,
    FAN_EVENT_INFO_TYPE_PIDFD,
    FAN_EVENT_INFO_TYPE_RANGE,
    FAN_NOFD,
    FAN_Q_OVERFLOW,
    FANOTIFY_METADATA_VERSION,
)

# struct fanotify_event_metadata: event_len, vers, reserved, metadata_len,
# mask, fd, pid.
METADATA = struct.Struct("=IBBHQii")
# struct fanotify_event_info_header: info_type, pad, len.
INFO_HEADER = struct.Struct("=BBH")
# struct fanotify_event_info_fid after its header: fsid (two s32), then
# struct file_handle: handle_bytes, handle_type, f_handle[].
FID_HEAD = struct.Struct("=iiIi")
# struct fanotify_event_info_pidfd after its header.
PIDFD_BODY = struct.Struct("=i")
# struct fanotify_event_info_error after its header: error, error_count.
ERROR_BODY = struct.Struct("=iI")
# struct fanotify_event_info_range after its header: pad, offset, count.
RANGE_BODY = struct.Struct("=IQQ")
# struct fanotify_event_info_mnt after its header: the __u64 mnt_id is
# naturally aligned, so 4 bytes of padding come first (the record is 16).
MNT_BODY = struct.Struct("=4xQ")

_unpack_metadata = METADATA.unpack_from
_unpack_header = INFO_HEADER.unpack_from
_METADATA_SIZE = METADATA.size
_HEADER_SIZE = INFO_HEADER.size


def fsid_key(val0: int, val1: int) -> int:
    """One integer for a ``__kernel_fsid_t``, as glibc's statvfs builds it."""
    return (val0 & 0xFFFFFFFF) | ((val1 & 0xFFFFFFFF) << 32)


class FileId:
    """A file handle reported by the kernel: which object, on which filesystem."""

    __slots__ = ("fsid", "handle_type", "handle")

    def __init__(self, fsid: int, handle_type: int, handle: bytes) -> None:
        self.fsid = fsid
        self.handle_type = handle_type
        self.handle = handle

    def key(self) -> tuple[int, int, bytes]:
        return (self.fsid, self.handle_type, self.handle)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileId) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return (
            f"FileId(fsid={self.fsid:#x}, handle_type={self.handle_type}, "
            f"handle={self.handle.hex()})"
        )


class RawEvent:
    """One event record as the kernel sent it, info records decoded.

    ``fid`` is the object itself (FID record); ``dir_fid`` and ``name`` the
    parent directory and entry name (DFID or DFID_NAME); ``old_*`` and
    ``new_*`` the two sides of a ``FAN_RENAME``. Absent parts are ``None``.
    """

    __slots__ = (
        "mask",
        "fd",
        "pid",
        "fid",
        "dir_fid",
        "name",
        "old_dir_fid",
        "old_name",
        "new_dir_fid",
        "new_name",
        "pidfd",
        "error",
        "error_count",
        "range",
        "mnt_id",
        "unknown",
        "malformed",
    )

    def __init__(self, mask: int, fd: int, pid: int) -> None:
        self.mask = mask
        self.fd = fd
        self.pid = pid
        self.fid: FileId | None = None
        self.dir_fid: FileId | None = None
        self.name: bytes | None = None
        self.old_dir_fid: FileId | None = None
        self.old_name: bytes | None = None
        self.new_dir_fid: FileId | None = None
        self.new_name: bytes | None = None
        self.pidfd: int | None = None
        self.error: int | None = None
        self.error_count: int | None = None
        self.range: tuple[int, int] | None = None
        self.mnt_id: int | None = None
        self.unknown: list[tuple[int, bytes]] | None = None
        self.malformed: str | None = None

    @property
    def is_overflow(self) -> bool:
        """True for the queue-overflow record, which names no file."""
        return bool(self.mask & FAN_Q_OVERFLOW)

    def fds(self) -> list[int]:
        """The descriptors this record carries, which the reader must close."""
        found = []
        if self.fd >= 0:
            found.append(self.fd)
        if self.pidfd is not None and self.pidfd >= 0:
            found.append(self.pidfd)

        return found

    def __repr__(self) -> str:
        parts = [f"mask={self.mask:#x}", f"fd={self.fd}", f"pid={self.pid}"]
        for field in self.__slots__[3:]:
            value = getattr(self, field)
            if value is not None:
                parts.append(f"{field}={value!r}")

        return f"RawEvent({', '.join(parts)})"


def _malformed(reason: str) -> RawEvent:
    event = RawEvent(0, FAN_NOFD, 0)
    event.malformed = reason

    return event


def _parse_fid(buf: bytes, start: int, end: int) -> tuple[FileId, bytes | None] | None:
    """Decode a FID-family record body; None if it does not fit."""
    if end - start < FID_HEAD.size:
        return None

    val0, val1, size, handle_type = FID_HEAD.unpack_from(buf, start)
    handle_start = start + FID_HEAD.size
    handle_end = handle_start + size
    if handle_end > end:
        return None

    fid = FileId(fsid_key(val0, val1), handle_type, bytes(buf[handle_start:handle_end]))
    if handle_end == end:
        return fid, None

    # A name follows the handle, NUL-terminated and padded with NULs.
    tail = bytes(buf[handle_end:end])
    nul = tail.find(b"\0")

    return fid, tail if nul < 0 else tail[:nul]


def _parse_info(event: RawEvent, buf: bytes, pos: int, end: int) -> None:
    """Decode the info records of one event between *pos* and *end*."""
    while pos < end:
        if end - pos < _HEADER_SIZE:
            event.malformed = "truncated info record header"
            return

        info_type, _pad, length = _unpack_header(buf, pos)
        if length < _HEADER_SIZE or pos + length > end:
            event.malformed = f"info record of type {info_type} has bad length {length}"
            return

        body = pos + _HEADER_SIZE
        rec_end = pos + length
        if not _apply_info(event, info_type, buf, body, rec_end):
            if event.unknown is None:
                event.unknown = []
            event.unknown.append((info_type, bytes(buf[body:rec_end])))
        pos = rec_end


def _apply_info(
    event: RawEvent, info_type: int, buf: bytes, body: int, end: int
) -> bool:
    """Store one known record on *event*; False if unknown or undecodable."""
    if info_type in _FID_TYPES:
        decoded = _parse_fid(buf, body, end)
        if decoded is None:
            return False
        fid, name = decoded
        # Only the *_NAME records carry a name; bytes after the handle of a
        # FID or DFID record are padding, not an empty name.
        if info_type == FAN_EVENT_INFO_TYPE_FID:
            event.fid = fid
        elif info_type == FAN_EVENT_INFO_TYPE_DFID:
            event.dir_fid = fid
        elif info_type == FAN_EVENT_INFO_TYPE_OLD_DFID_NAME:
            event.old_dir_fid, event.old_name = fid, name
        elif info_type == FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
            event.new_dir_fid, event.new_name = fid, name
        else:
            event.dir_fid, event.name = fid, name
        return True

    if info_type == FAN_EVENT_INFO_TYPE_PIDFD and end - body >= PIDFD_BODY.size:
        (event.pidfd,) = PIDFD_BODY.unpack_from(buf, body)
        return True

    if info_type == FAN_EVENT_INFO_TYPE_ERROR and end - body >= ERROR_BODY.size:
        event.error, event.error_count = ERROR_BODY.unpack_from(buf, body)
        return True

    if info_type == FAN_EVENT_INFO_TYPE_RANGE and end - body >= RANGE_BODY.size:
        _pad, offset, count = RANGE_BODY.unpack_from(buf, body)
        event.range = (offset, count)
        return True

    if info_type == FAN_EVENT_INFO_TYPE_MNT and end - body >= MNT_BODY.size:
        (event.mnt_id,) = MNT_BODY.unpack_from(buf, body)
        return True

    return False


_FID_TYPES = frozenset(
    {
        FAN_EVENT_INFO_TYPE_FID,
        FAN_EVENT_INFO_TYPE_DFID,
        FAN_EVENT_INFO_TYPE_DFID_NAME,
        FAN_EVENT_INFO_TYPE_OLD_DFID_NAME,
        FAN_EVENT_INFO_TYPE_NEW_DFID_NAME,
    }
)


def parse_events(buf: bytes | bytearray | memoryview) -> list[RawEvent]:
    """Decode every event record in *buf*, in order.

    A record with a metadata version other than
    :data:`~fanwatch.constants.FANOTIFY_METADATA_VERSION`, or whose lengths
    do not fit, ends the list with a malformed entry (mask 0, no fd): nothing
    after it can be located safely. An info record whose length does not fit
    its event marks that event ``malformed`` but keeps its mask and fd, and
    parsing goes on with the next event, which ``event_len`` still locates.
    """
    if isinstance(buf, memoryview):
        # Slices of a memoryview lack bytes methods, and len() counts items.
        buf = buf.tobytes()
    events: list[RawEvent] = []
    total = len(buf)
    pos = 0
    while pos < total:
        if total - pos < _METADATA_SIZE:
            events.append(_malformed(f"{total - pos} trailing bytes"))
            break

        event_len, vers, _res, meta_len, mask, fd, pid = _unpack_metadata(buf, pos)
        if vers != FANOTIFY_METADATA_VERSION:
            events.append(
                _malformed(
                    f"metadata version {vers}, expected {FANOTIFY_METADATA_VERSION}"
                )
            )
            break
        if meta_len < _METADATA_SIZE or event_len < meta_len or pos + event_len > total:
            events.append(
                _malformed(
                    f"event length {event_len} / metadata length {meta_len} do not fit"
                )
            )
            break

        event = RawEvent(mask, fd, pid)
        if event_len > meta_len:
            _parse_info(event, buf, pos + meta_len, pos + event_len)
        events.append(event)
        pos += event_len

    return events

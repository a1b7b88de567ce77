"""The pure event parser, on hand-built records and on batches recorded from
the kernel (tests/fixtures/events, written by record.py there)."""

from __future__ import annotations

import json
import os
import struct

import pytest

from fanwatch.constants import (
    FAN_ATTRIB,
    FAN_CLOSE_WRITE,
    FAN_CREATE,
    FAN_EPIDFD,
    FAN_EVENT_INFO_TYPE_DFID,
    FAN_EVENT_INFO_TYPE_DFID_NAME,
    FAN_EVENT_INFO_TYPE_ERROR,
    FAN_EVENT_INFO_TYPE_FID,
    FAN_EVENT_INFO_TYPE_MNT,
    FAN_EVENT_INFO_TYPE_NEW_DFID_NAME,
    FAN_EVENT_INFO_TYPE_OLD_DFID_NAME,
    FAN_EVENT_INFO_TYPE_PIDFD,
    FAN_EVENT_INFO_TYPE_RANGE,
    FAN_FS_ERROR,
    FAN_MNT_ATTACH,
    FAN_MODIFY,
    FAN_NOFD,
    FAN_NOPIDFD,
    FAN_ONDIR,
    FAN_OPEN,
    FAN_OPEN_PERM,
    FAN_PRE_ACCESS,
    FAN_Q_OVERFLOW,
    FAN_RENAME,
    FANOTIFY_METADATA_VERSION,
    MAX_HANDLE_SZ,
)
from fanwatch.parser import FileId, RawEvent, fsid_key, parse_events

FIXTURES = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "fixtures", "events"
)

# -- an encoder that builds records the way the kernel lays them out --------


def _align4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def info(info_type: int, body: bytes, *, length: int | None = None) -> bytes:
    """struct fanotify_event_info_header + body; *length* overrides len."""
    size = 4 + len(body) if length is None else length

    return struct.pack("=BBH", info_type, 0, size) + body


def fid_record(
    info_type: int,
    handle: bytes,
    *,
    fsid: tuple[int, int] = (0x11223344, 0x55667788),
    handle_type: int = 1,
    name: bytes | None = None,
) -> bytes:
    """A FID-family record: fsid, struct file_handle, then NUL-ended name."""
    body = struct.pack("=iiIi", *fsid, len(handle), handle_type) + handle
    if name is not None:
        body += name + b"\0"

    # The kernel pads each record to a multiple of 4 bytes; the header is 4.
    return info(info_type, _align4(body))


def pidfd_record(pidfd: int) -> bytes:
    return info(FAN_EVENT_INFO_TYPE_PIDFD, struct.pack("=i", pidfd))


def error_record(error: int, count: int) -> bytes:
    return info(FAN_EVENT_INFO_TYPE_ERROR, struct.pack("=iI", error, count))


def range_record(offset: int, count: int) -> bytes:
    return info(FAN_EVENT_INFO_TYPE_RANGE, struct.pack("=IQQ", 0, offset, count))


def mnt_record(mnt_id: int) -> bytes:
    # The kernel's struct aligns the __u64, leaving 4 bytes after the header.
    return info(FAN_EVENT_INFO_TYPE_MNT, struct.pack("=IQ", 0, mnt_id))


def event(
    mask: int,
    fd: int = FAN_NOFD,
    pid: int = 0,
    *records: bytes,
    version: int = FANOTIFY_METADATA_VERSION,
    event_len: int | None = None,
    metadata_len: int = 24,
) -> bytes:
    """struct fanotify_event_metadata followed by *records*."""
    tail = b"".join(records)
    size = metadata_len + len(tail) if event_len is None else event_len
    head = struct.pack("=IBBHQii", size, version, 0, metadata_len, mask, fd, pid)

    return head + b"\0" * (metadata_len - 24) + tail


def only(buf: bytes) -> RawEvent:
    events = parse_events(buf)
    assert len(events) == 1, events

    return events[0]


HANDLE = bytes(range(12))
FSID = (0x11223344, 0x55667788)
FSID_KEY = 0x5566778811223344

# -- each info record type ------------------------------------------------------


def test_fid_record():
    got = only(
        event(FAN_MODIFY, FAN_NOFD, 42, fid_record(FAN_EVENT_INFO_TYPE_FID, HANDLE))
    )

    assert (got.mask, got.fd, got.pid) == (FAN_MODIFY, FAN_NOFD, 42)
    assert got.fid == FileId(FSID_KEY, 1, HANDLE)
    assert got.dir_fid is None and got.name is None
    assert got.malformed is None and got.unknown is None


def test_dfid_record_has_no_name_even_with_padding():
    handle = b"\xaa" * 5  # not a multiple of 4: the record ends in padding
    got = only(
        event(FAN_CREATE, FAN_NOFD, 1, fid_record(FAN_EVENT_INFO_TYPE_DFID, handle))
    )

    assert got.dir_fid == FileId(FSID_KEY, 1, handle)
    assert got.name is None
    assert got.fid is None


def test_dfid_name_and_fid_records():
    records = [
        fid_record(FAN_EVENT_INFO_TYPE_DFID_NAME, b"D" * 8, name=b"child"),
        fid_record(FAN_EVENT_INFO_TYPE_FID, b"F" * 8, handle_type=0x81),
    ]
    got = only(event(FAN_CLOSE_WRITE, FAN_NOFD, 7, *records))

    assert got.dir_fid == FileId(FSID_KEY, 1, b"D" * 8)
    assert got.name == b"child"
    assert got.fid == FileId(FSID_KEY, 0x81, b"F" * 8)


def test_rename_records():
    records = [
        fid_record(FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, b"O" * 8, name=b"from"),
        fid_record(FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, b"N" * 12, name=b"to name"),
        fid_record(FAN_EVENT_INFO_TYPE_FID, b"F" * 8),
    ]
    got = only(event(FAN_RENAME | FAN_ONDIR, FAN_NOFD, 0, *records))

    assert got.mask == FAN_RENAME | FAN_ONDIR
    assert (got.old_dir_fid.handle, got.old_name) == (b"O" * 8, b"from")
    assert (got.new_dir_fid.handle, got.new_name) == (b"N" * 12, b"to name")
    assert got.fid.handle == b"F" * 8
    assert got.dir_fid is None and got.name is None


@pytest.mark.parametrize("pidfd", [5, 0, FAN_NOPIDFD, FAN_EPIDFD])
def test_pidfd_record(pidfd):
    got = only(event(FAN_OPEN, FAN_NOFD, 99, pidfd_record(pidfd)))

    assert got.pidfd == pidfd
    # A negative pidfd (the process exited, or the kernel failed to make
    # one) is a status, not a descriptor the reader must close.
    assert got.fds() == ([pidfd] if pidfd >= 0 else [])


def test_fds_lists_event_fd_and_pidfd():
    got = only(event(FAN_OPEN_PERM, 17, 99, pidfd_record(18)))

    assert got.fds() == [17, 18]


def test_error_record():
    got = only(event(FAN_FS_ERROR, FAN_NOFD, 0, error_record(-117, 3)))

    assert (got.error, got.error_count) == (-117, 3)


def test_range_record():
    got = only(event(FAN_PRE_ACCESS, 9, 5, range_record(1 << 40, 4096)))

    assert got.range == (1 << 40, 4096)


def test_mnt_record():
    got = only(event(FAN_MNT_ATTACH, FAN_NOFD, 0, mnt_record(0x1_0000_0042)))

    assert got.mnt_id == 0x1_0000_0042


def test_unknown_record_is_kept_and_later_records_still_decode():
    records = [info(200, b"future!!"), info(8, b""), pidfd_record(3)]
    got = only(event(FAN_OPEN, FAN_NOFD, 1, *records))

    assert got.unknown == [(200, b"future!!"), (8, b"")]
    assert got.pidfd == 3
    assert got.malformed is None


def test_known_type_too_short_for_its_body_is_kept_as_unknown():
    short = [
        info(FAN_EVENT_INFO_TYPE_PIDFD, b"\1\0"),
        info(FAN_EVENT_INFO_TYPE_FID, b"\0" * 8),
        info(FAN_EVENT_INFO_TYPE_MNT, b"\0" * 8),
    ]
    got = only(event(FAN_OPEN, FAN_NOFD, 1, *short))

    assert [t for t, _body in got.unknown] == [
        FAN_EVENT_INFO_TYPE_PIDFD,
        FAN_EVENT_INFO_TYPE_FID,
        FAN_EVENT_INFO_TYPE_MNT,
    ]
    assert got.pidfd is None and got.fid is None and got.mnt_id is None


def test_fid_handle_longer_than_record_is_not_decoded():
    body = struct.pack("=iiIi", *FSID, 64, 1) + b"x" * 8
    got = only(event(FAN_MODIFY, FAN_NOFD, 1, info(FAN_EVENT_INFO_TYPE_FID, body)))

    assert got.fid is None
    assert got.unknown == [(FAN_EVENT_INFO_TYPE_FID, body)]


@pytest.mark.parametrize("size", [0, 1, MAX_HANDLE_SZ])
def test_handle_sizes(size):
    handle = bytes(i % 251 for i in range(size))
    record = fid_record(FAN_EVENT_INFO_TYPE_DFID_NAME, handle, name=b"n")
    got = only(event(FAN_CREATE, FAN_NOFD, 1, record))

    assert got.dir_fid.handle == handle
    assert got.name == b"n"


@pytest.mark.parametrize(
    "name",
    [b"new\nline", b" spaces ", b"-rf", b"--", b"\xff\xfe\x80bad", "é".encode(), b"."],
)
def test_names_are_kept_as_raw_bytes(name):
    record = fid_record(FAN_EVENT_INFO_TYPE_DFID_NAME, HANDLE, name=name)
    got = only(event(FAN_CREATE, FAN_NOFD, 1, record))

    assert got.name == name


def test_name_without_nul_terminator_runs_to_record_end():
    body = struct.pack("=iiIi", *FSID, 4, 1) + b"HHHH" + b"abcd"
    got = only(
        event(FAN_CREATE, FAN_NOFD, 1, info(FAN_EVENT_INFO_TYPE_DFID_NAME, body))
    )

    assert got.name == b"abcd"


def test_fsid_key_matches_statvfs_layout():
    assert fsid_key(-1, 0) == 0xFFFFFFFF
    assert fsid_key(0, -1) == 0xFFFFFFFF_00000000
    assert fsid_key(1, 2) == 0x2_00000001


def test_file_id_equality_and_hash():
    a = FileId(1, 2, b"abc")
    assert a == FileId(1, 2, b"abc")
    assert a != FileId(1, 3, b"abc") and a != FileId(2, 2, b"abc")
    assert a != (1, 2, b"abc")
    assert len({a, FileId(1, 2, b"abc")}) == 1
    assert "616263" in repr(a)


# -- the overflow record and multi-event buffers ---------------------------------


def test_overflow_record():
    got = only(event(FAN_Q_OVERFLOW, FAN_NOFD, 0))

    assert got.is_overflow
    assert got.fds() == []
    assert got.fid is None and got.name is None and got.malformed is None


def test_file_events_are_not_overflow():
    for mask in (FAN_OPEN, FAN_MODIFY | FAN_ONDIR, FAN_RENAME, 0):
        assert not only(event(mask, 3, 1)).is_overflow


def test_several_events_in_one_buffer():
    buf = b"".join(
        [
            event(FAN_OPEN, 10, 100, pidfd_record(11)),
            event(FAN_Q_OVERFLOW, FAN_NOFD, 0),
            event(FAN_CREATE, FAN_NOFD, 0, fid_record(2, HANDLE, name=b"x")),
            event(FAN_ATTRIB, FAN_NOFD, 3, fid_record(FAN_EVENT_INFO_TYPE_FID, HANDLE)),
        ]
    )
    got = parse_events(buf)

    assert [e.mask for e in got] == [FAN_OPEN, FAN_Q_OVERFLOW, FAN_CREATE, FAN_ATTRIB]
    assert [e.is_overflow for e in got] == [False, True, False, False]
    assert (got[0].fd, got[0].pidfd) == (10, 11)
    assert got[2].name == b"x"
    assert got[3].fid.handle == HANDLE
    assert all(e.malformed is None for e in got)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_buffer_types(kind):
    buf = event(FAN_CREATE, FAN_NOFD, 0, fid_record(2, HANDLE, name=b"named"))

    assert only(kind(buf)).name == b"named"


def test_empty_buffer():
    assert parse_events(b"") == []


def test_larger_metadata_len_skips_unknown_metadata_fields():
    buf = event(FAN_OPEN, 4, 2, pidfd_record(6), metadata_len=32)
    got = only(buf)

    assert (got.mask, got.fd, got.pidfd) == (FAN_OPEN, 4, 6)


def test_repr_names_decoded_fields():
    got = only(event(FAN_OPEN, 4, 2, pidfd_record(6)))

    assert repr(got) == "RawEvent(mask=0x20, fd=4, pid=2, pidfd=6)"


# -- malformed input -------------------------------------------------------------


def test_wrong_metadata_version_ends_the_batch():
    buf = (
        event(FAN_OPEN, 3, 1) + event(FAN_OPEN, 4, 1, version=2) + event(FAN_OPEN, 5, 1)
    )
    got = parse_events(buf)

    assert len(got) == 2
    assert got[0].fd == 3 and got[0].malformed is None
    assert "version 2" in got[1].malformed
    # Nothing from an untrusted record is kept: no fd to close by mistake.
    assert (got[1].mask, got[1].fd, got[1].fds()) == (0, FAN_NOFD, [])


def test_event_len_smaller_than_metadata_len():
    got = parse_events(event(FAN_OPEN, 3, 1, event_len=16) + event(FAN_OPEN, 4, 1))

    assert len(got) == 1
    assert "do not fit" in got[0].malformed


def test_metadata_len_smaller_than_the_struct():
    buf = bytearray(event(FAN_OPEN, 3, 1))
    struct.pack_into("=H", buf, 6, 8)

    assert "do not fit" in only(bytes(buf)).malformed


def test_event_len_beyond_the_buffer():
    got = only(event(FAN_OPEN, 3, 1, event_len=200))

    assert got.malformed and got.fds() == []


@pytest.mark.parametrize("length", [0, 1, 3])
def test_info_record_length_below_header_size(length):
    bad = struct.pack("=BBH", FAN_EVENT_INFO_TYPE_PIDFD, 0, length) + b"\0" * 4
    buf = event(FAN_OPEN, 3, 1, bad) + event(FAN_MODIFY, 4, 1)
    got = parse_events(buf)

    # The event's own length is still trustworthy: it keeps its fd (so the
    # caller closes it) and the next event is still read.
    assert "bad length" in got[0].malformed
    assert got[0].fds() == [3]
    assert (got[1].mask, got[1].malformed) == (FAN_MODIFY, None)


def test_info_record_beyond_the_event():
    bad = info(FAN_EVENT_INFO_TYPE_ERROR, b"\0" * 8, length=64)
    buf = event(FAN_OPEN, 3, 1, pidfd_record(5), bad) + event(FAN_MODIFY, 4, 1)
    got = parse_events(buf)

    assert "bad length 64" in got[0].malformed
    # Records before the bad one were decoded; the bad one was not.
    assert (got[0].pidfd, got[0].error) == (5, None)
    assert (got[1].mask, got[1].malformed) == (FAN_MODIFY, None)


def test_truncated_info_header():
    got = only(event(FAN_OPEN, 3, 1, b"\x04\x00"))

    assert got.malformed == "truncated info record header"


def _sample_stream() -> bytes:
    return b"".join(
        [
            event(FAN_OPEN, 10, 100, pidfd_record(11)),
            event(FAN_CREATE, FAN_NOFD, 0, fid_record(2, HANDLE, name=b"name\n")),
            event(
                FAN_RENAME,
                FAN_NOFD,
                0,
                fid_record(FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, HANDLE, name=b"a"),
                fid_record(FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, HANDLE, name=b"b"),
            ),
            event(FAN_Q_OVERFLOW, FAN_NOFD, 0),
        ]
    )


def test_truncated_at_every_offset():
    full = _sample_stream()
    complete = parse_events(full)
    ends, pos = [], 0
    while pos < len(full):
        pos += struct.unpack_from("=I", full, pos)[0]
        ends.append(pos)

    for cut in range(len(full)):
        got = parse_events(full[:cut])
        whole = sum(1 for end in ends if end <= cut)
        assert [e.mask for e in got[:whole]] == [e.mask for e in complete[:whole]]
        if cut in ends or cut == 0:
            assert len(got) == whole and all(e.malformed is None for e in got)
        else:
            assert len(got) == whole + 1
            assert got[-1].malformed and got[-1].fds() == []


# -- batches recorded from the kernel ---------------------------------------------


def _fixture(name: str) -> tuple[list[RawEvent], dict]:
    with open(os.path.join(FIXTURES, f"{name}.bin"), "rb") as raw:
        events = parse_events(raw.read())
    with open(os.path.join(FIXTURES, f"{name}.json")) as seen:
        return events, json.load(seen)


def _file_id(text: str, fsid: int) -> FileId:
    handle_type, handle = text.split(":")

    return FileId(fsid, int(handle_type), bytes.fromhex(handle))


def test_recorded_fid_group_with_names_and_pidfds():
    events, seen = _fixture("fid_names")
    directory = _file_id(seen["dir_handle"], seen["fsid"])

    assert len(events) == len(seen["events"])
    for got, want in zip(events, seen["events"]):
        assert got.malformed is None and got.unknown is None
        assert got.mask == want["mask"]
        assert got.name == bytes.fromhex(want["name"])
        assert got.dir_fid == directory
        assert got.fid == (
            _file_id(want["fid"], seen["fsid"]) if "fid" in want else None
        )
        assert (got.fd, got.pid) == (FAN_NOFD, seen["pid"])
        assert got.pidfd is not None and got.pidfd >= 0
    names = {e.name for e in events}
    assert {b"new\nline", b"bad\xff\xfe", b"-leading-dash", b"with space"} <= names


def test_recorded_rename():
    events, seen = _fixture("rename")
    src = _file_id(seen["src_handle"], seen["fsid"])
    dst = _file_id(seen["dst_handle"], seen["fsid"])

    assert len(events) == len(seen["events"]) == 2
    for got, want in zip(events, seen["events"]):
        assert got.malformed is None
        assert got.mask == want["mask"]
        assert (got.old_dir_fid, got.old_name) == (src, want["old_name"].encode())
        assert (got.new_dir_fid, got.new_name) == (dst, want["new_name"].encode())


def test_recorded_fd_mode_group():
    events, seen = _fixture("fd_mode")

    assert [e.mask for e in events] == [w["mask"] for w in seen["events"]]
    for got in events:
        assert got.fd >= 0 and got.pid == seen["pid"]
        assert got.fid is None and got.pidfd is None and got.malformed is None


def test_recorded_mount_namespace_events():
    events, seen = _fixture("mount")

    assert [(e.mask, e.mnt_id) for e in events] == [
        (w["mask"], w["mnt_id"]) for w in seen["events"]
    ]
    assert all(e.malformed is None and e.unknown is None for e in events)

"""Property tests for the parser: it never raises, and what it decodes is
what was encoded.

The examples per test stay modest so the suite is quick; for a long run use
``HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest tests/test_parser_fuzz.py``
(20,000 examples per test, about four minutes, no per-test timeout).
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parser import (
    error_record,
    event,
    fid_record,
    info,
    mnt_record,
    pidfd_record,
    range_record,
)

from fanwatch.constants import (
    FAN_EVENT_INFO_TYPE_DFID,
    FAN_EVENT_INFO_TYPE_DFID_NAME,
    FAN_EVENT_INFO_TYPE_ERROR,
    FAN_EVENT_INFO_TYPE_FID,
    FAN_EVENT_INFO_TYPE_MNT,
    FAN_EVENT_INFO_TYPE_NEW_DFID_NAME,
    FAN_EVENT_INFO_TYPE_OLD_DFID_NAME,
    FAN_EVENT_INFO_TYPE_PIDFD,
    FAN_EVENT_INFO_TYPE_RANGE,
    FANOTIFY_METADATA_VERSION,
    MAX_HANDLE_SZ,
)
from fanwatch.parser import FileId, RawEvent, fsid_key, parse_events

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "parser")
settings.register_profile("parser", max_examples=300, deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# A settings object, not a loaded profile: choosing it here leaves the
# defaults of every other test module alone.
EXAMPLES = settings(settings.get_profile(PROFILE))
# A long run outlasts the suite's per-test timeout on purpose.
pytestmark = [pytest.mark.timeout(0)] if PROFILE == "fuzz" else []

KNOWN_TYPES = {
    FAN_EVENT_INFO_TYPE_FID,
    FAN_EVENT_INFO_TYPE_DFID_NAME,
    FAN_EVENT_INFO_TYPE_DFID,
    FAN_EVENT_INFO_TYPE_PIDFD,
    FAN_EVENT_INFO_TYPE_ERROR,
    FAN_EVENT_INFO_TYPE_RANGE,
    FAN_EVENT_INFO_TYPE_MNT,
    FAN_EVENT_INFO_TYPE_OLD_DFID_NAME,
    FAN_EVENT_INFO_TYPE_NEW_DFID_NAME,
}

s32 = st.integers(-(2**31), 2**31 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
handles = st.binary(max_size=MAX_HANDLE_SZ)
names = st.binary(min_size=1, max_size=255).filter(lambda n: b"\0" not in n)
fsids = st.tuples(s32, s32)
unknown_types = st.integers(0, 255).filter(lambda t: t not in KNOWN_TYPES)
unknown_records = st.lists(st.tuples(unknown_types, st.binary(max_size=64)), max_size=2)


@st.composite
def file_ids(draw):
    """(fsid pair, handle_type, handle) for a FID-family record."""
    return draw(fsids), draw(s32), draw(handles)


@st.composite
def event_specs(draw):
    """A valid event as a dict of the fields the parser should return, plus
    the bytes that encode it."""
    spec = {"mask": draw(u64), "fd": draw(s32), "pid": draw(s32)}
    records = []

    def fid(kind, field, name_field=None):
        fsid, handle_type, handle = draw(file_ids())
        name = draw(names) if name_field else None
        record = fid_record(kind, handle, fsid=fsid, handle_type=handle_type, name=name)
        records.append(record)
        spec[field] = FileId(fsid_key(*fsid), handle_type, handle)
        if name_field:
            spec[name_field] = name

    if draw(st.booleans()):
        fid(FAN_EVENT_INFO_TYPE_FID, "fid")
    dir_kind = draw(st.sampled_from([None, "dfid", "dfid_name", "rename"]))
    if dir_kind == "dfid":
        fid(FAN_EVENT_INFO_TYPE_DFID, "dir_fid")
    elif dir_kind == "dfid_name":
        fid(FAN_EVENT_INFO_TYPE_DFID_NAME, "dir_fid", "name")
    elif dir_kind == "rename":
        fid(FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, "old_dir_fid", "old_name")
        fid(FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, "new_dir_fid", "new_name")
    if draw(st.booleans()):
        spec["pidfd"] = draw(s32)
        records.append(pidfd_record(spec["pidfd"]))
    if draw(st.booleans()):
        spec["error"], spec["error_count"] = draw(s32), draw(u32)
        records.append(error_record(spec["error"], spec["error_count"]))
    if draw(st.booleans()):
        spec["range"] = (draw(u64), draw(u64))
        records.append(range_record(*spec["range"]))
    if draw(st.booleans()):
        spec["mnt_id"] = draw(u64)
        records.append(mnt_record(spec["mnt_id"]))
    tagged = [(record, None) for record in records]
    tagged += [(info(*entry), entry) for entry in draw(unknown_records)]
    tagged = draw(st.permutations(tagged))
    records = [record for record, _entry in tagged]
    # Unknown records are kept in stream order.
    spec["unknown"] = [entry for _record, entry in tagged if entry] or None
    encoded = event(spec["mask"], spec["fd"], spec["pid"], *records)

    return spec, encoded


streams = st.lists(event_specs(), max_size=6)


@st.composite
def corrupted_streams(draw):
    """A valid stream with bytes overwritten and possibly cut short."""
    buf = bytearray(b"".join(encoded for _spec, encoded in draw(streams)))
    if not buf:
        return bytes(buf)
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(buf) - 1))
        buf[pos] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(buf)))

    return bytes(buf[:cut])


def _check_types(events: list[RawEvent]) -> None:
    for index, got in enumerate(events):
        assert isinstance(got.malformed, (str, type(None)))
        assert all(type(v) is int for v in (got.mask, got.fd, got.pid))
        for name in (got.name, got.old_name, got.new_name):
            assert name is None or (type(name) is bytes and b"\0" not in name)
        for fid in (got.fid, got.dir_fid, got.old_dir_fid, got.new_dir_fid):
            assert fid is None or type(fid.handle) is bytes
        assert all(fd >= 0 for fd in got.fds())
        repr(got)
        # A malformed info record spoils only its event; any other
        # malformed entry ends the batch and carries nothing to close.
        if got.malformed and "info record" not in got.malformed:
            assert index == len(events) - 1
            assert (got.mask, got.fd, got.fds()) == (0, -1, [])


@EXAMPLES
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(data):
    _check_types(parse_events(data))


@EXAMPLES
@given(corrupted_streams())
def test_corrupted_streams_never_raise(data):
    _check_types(parse_events(data))


@EXAMPLES
@given(st.lists(st.tuples(u64, s32, s32), max_size=8), st.binary(max_size=40))
def test_version_prefixed_garbage_never_raises(heads, tail):
    """Valid-looking metadata heads with random lengths, then garbage."""
    buf = b"".join(
        struct.pack(
            "=IBBHQii", 24 + (m % 64), FANOTIFY_METADATA_VERSION, 0, 24, m, f, p
        )
        for m, f, p in heads
    )
    _check_types(parse_events(buf + tail))


@EXAMPLES
@given(streams)
def test_round_trip(specs):
    got = parse_events(b"".join(encoded for _spec, encoded in specs))

    assert len(got) == len(specs)
    for parsed, (spec, _encoded) in zip(got, specs):
        assert parsed.malformed is None
        for field in RawEvent.__slots__:
            if field == "malformed":
                continue
            assert getattr(parsed, field) == spec.get(field), field

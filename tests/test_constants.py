"""The fanotify ABI values and record layouts, checked against the C headers
(compiled with gcc) and, for values newer than the headers, the running kernel."""

from __future__ import annotations

import errno
import os
import re
import subprocess

import pytest

from fanwatch import constants, group, parser, syscalls
from fanwatch.constants import (
    FAN_CLASS_NOTIF,
    FAN_CLOEXEC,
    FAN_DENY,
    FAN_MARK_ADD,
    FAN_MARK_MNTNS,
    FAN_MNT_ATTACH,
    FAN_REPORT_FD_ERROR,
    FAN_REPORT_MNT,
    Event,
    InitFlag,
    MarkFlag,
    MarkType,
)

HEADER = "/usr/include/linux/fanotify.h"

# Struct sizes and offsets the parser and Group rely on, as C expressions.
LAYOUTS = {
    "metadata": "sizeof(struct fanotify_event_metadata)",
    "metadata.mask": "offsetof(struct fanotify_event_metadata, mask)",
    "metadata.fd": "offsetof(struct fanotify_event_metadata, fd)",
    "info_header": "sizeof(struct fanotify_event_info_header)",
    "fid": "sizeof(struct fanotify_event_info_fid) + sizeof(struct file_handle)",
    "pidfd": "sizeof(struct fanotify_event_info_pidfd)",
    "error": "sizeof(struct fanotify_event_info_error)",
    "response": "sizeof(struct fanotify_response)",
}


def header_names() -> list[str]:
    """Object-like FAN_* macros of the installed header."""
    with open(HEADER) as header:
        text = header.read()
    names = re.findall(r"^#define\s+(FAN\w*|FANOTIFY\w*)\s", text, re.MULTILINE)

    # FAN_ALL_* are deprecated catch-alls the kernel keeps only for old
    # userspace; they are not part of the ABI fanwatch uses.
    return [name for name in names if not name.startswith("FAN_ALL_")]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, int]:
    """Every header macro and layout expression, evaluated by the C compiler."""
    exprs = {name: name for name in header_names()} | LAYOUTS
    lines = [
        "#define _GNU_SOURCE",
        "#include <fcntl.h>",
        "#include <stddef.h>",
        "#include <stdio.h>",
        "#include <sys/fanotify.h>",
        "int main(void) {",
        *(
            f'printf("{key} %lld\\n", (long long)({expr}));'
            for key, expr in exprs.items()
        ),
        "return 0; }",
    ]
    work = tmp_path_factory.mktemp("abi")
    source, program = work / "abi.c", work / "abi"
    source.write_text("\n".join(lines))
    subprocess.run(["gcc", "-o", str(program), str(source)], check=True)
    output = subprocess.run([str(program)], capture_output=True, text=True, check=True)

    return {
        key: int(value)
        for key, value in (line.split() for line in output.stdout.splitlines())
    }


def test_every_header_value_matches(compiled):
    names = header_names()
    assert len(names) > 60  # the header was found and read

    mismatched = {
        name: (getattr(constants, name, None), compiled[name])
        for name in names
        if not name.startswith("FAN_EVENT_")  # sizes and function-like helpers
        and getattr(constants, name, None) != compiled[name]
    }
    assert mismatched == {}


def test_record_layouts_match_the_kernel_structs(compiled):
    assert (
        parser.METADATA.size
        == compiled["metadata"]
        == compiled["FAN_EVENT_METADATA_LEN"]
    )
    assert compiled["metadata.mask"] == 8 and compiled["metadata.fd"] == 16
    assert parser.INFO_HEADER.size == compiled["info_header"]
    assert parser.INFO_HEADER.size + parser.FID_HEAD.size == compiled["fid"]
    assert parser.INFO_HEADER.size + parser.PIDFD_BODY.size == compiled["pidfd"]
    assert parser.INFO_HEADER.size + parser.ERROR_BODY.size == compiled["error"]
    assert group.RESPONSE.size == compiled["response"]


def test_records_newer_than_the_header_keep_natural_alignment():
    # struct fanotify_event_info_range: hdr, __u32 pad, __u64 offset, count.
    assert parser.INFO_HEADER.size + parser.RANGE_BODY.size == 24
    # struct fanotify_event_info_mnt: hdr, (4 bytes of alignment), __u64 mnt_id.
    assert parser.INFO_HEADER.size + parser.MNT_BODY.size == 16


def test_values_newer_than_the_header_are_accepted_by_this_kernel():
    # The installed header may predate 6.14; the running kernel (6.18 here)
    # knows these values, and an unknown bit would be EINVAL instead.
    fd = syscalls.fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_REPORT_FD_ERROR)
    os.close(fd)
    fd = syscalls.fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_REPORT_MNT)
    try:
        syscalls.fanotify_mark(
            fd, FAN_MARK_ADD | FAN_MARK_MNTNS, FAN_MNT_ATTACH, -100, "/proc/self/ns/mnt"
        )
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("enum", "prefix"),
    [
        (InitFlag, "FAN_"),
        (Event, "FAN_"),
        (MarkFlag, "FAN_MARK_"),
        (MarkType, "FAN_MARK_"),
    ],
)
def test_enum_members_equal_the_module_constants(enum, prefix):
    for member in enum:
        assert member.value == getattr(constants, prefix + member.name), member


def test_every_named_event_is_an_enum_member_and_back():
    members = {member.value for member in Event}
    # These two only qualify other events; they are never an event alone.
    qualifiers = {constants.FAN_EVENT_ON_CHILD, constants.FAN_ONDIR}

    assert set(constants.EVENT_NAMES.values()) == members - qualifiers


def test_event_names_lowest_bit_first():
    mask = (
        constants.FAN_RENAME
        | constants.FAN_CREATE
        | constants.FAN_ACCESS
        | constants.FAN_ONDIR
    )

    assert constants.event_names(mask) == ["access", "create", "rename"]
    assert constants.event_names(0) == []
    assert constants.event_names(constants.FAN_Q_OVERFLOW) == ["overflow"]


def test_event_names_are_unique_single_bits():
    values = list(constants.EVENT_NAMES.values())

    assert len(set(values)) == len(values)
    assert all(v & (v - 1) == 0 for v in values)


def test_deny_errno_places_the_errno_in_the_top_byte():
    value = constants.FAN_DENY_ERRNO(errno.EIO)

    assert value == FAN_DENY | errno.EIO << 24
    assert value >> constants.FAN_ERRNO_SHIFT == errno.EIO
    assert value & 0xFF == FAN_DENY


def test_permission_and_dirent_masks():
    perm = constants.PERMISSION_EVENTS

    assert perm == sum(
        (
            constants.FAN_OPEN_PERM,
            constants.FAN_ACCESS_PERM,
            constants.FAN_OPEN_EXEC_PERM,
            constants.FAN_PRE_ACCESS,
        )
    )
    assert not perm & (
        constants.FAN_OPEN | constants.FAN_ACCESS | constants.FAN_OPEN_EXEC
    )
    assert constants.DIRENT_EVENTS & constants.FAN_RENAME
    assert (
        constants.FAN_MARK_TYPE_MASK
        == constants.FAN_MARK_MOUNT | constants.FAN_MARK_FILESYSTEM
    )
    assert (
        constants.FAN_MARK_MNTNS & constants.FAN_MARK_TYPE_MASK
        == constants.FAN_MARK_MNTNS
    )

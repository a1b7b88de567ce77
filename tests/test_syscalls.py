"""The ctypes syscall layer against the real kernel, each test on its own tmpfs."""

from __future__ import annotations

import errno
import os
import subprocess
import textwrap

import pytest
from conftest import REPO, python_cmd, without_sys_admin

from fanwatch import syscalls
from fanwatch.constants import (
    AT_FDCWD,
    FAN_CLASS_CONTENT,
    FAN_CLASS_NOTIF,
    FAN_CLOEXEC,
    FAN_CREATE,
    FAN_MARK_ADD,
    FAN_MARK_REMOVE,
    FAN_NONBLOCK,
    FAN_ONDIR,
    FAN_OPEN,
    FAN_OPEN_PERM,
    FAN_RENAME,
    FAN_REPORT_DFID_NAME,
    FAN_REPORT_FID,
)
from fanwatch.parser import fsid_key, parse_events

FID_FLAGS = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_FID


@pytest.fixture
def fid_group():
    fd = syscalls.fanotify_init(FID_FLAGS | FAN_REPORT_DFID_NAME)
    yield fd
    os.close(fd)


def run_child(code: str, *, drop_sys_admin: bool = True) -> subprocess.CompletedProcess:
    """Run *code* in a fresh interpreter, by default without CAP_SYS_ADMIN."""
    argv = python_cmd(textwrap.dedent(code))
    if drop_sys_admin:
        argv = without_sys_admin(argv)

    return subprocess.run(
        argv, capture_output=True, text=True, timeout=30, cwd=REPO, check=False
    )


def mark_masks(group_fd: int) -> list[int]:
    """The inode mark masks the kernel holds for a group, from fdinfo."""
    with open(f"/proc/self/fdinfo/{group_fd}") as fdinfo:
        lines = [line for line in fdinfo if line.startswith("fanotify ino:")]

    return [int(line.split(" mask:")[1].split()[0], 16) for line in lines]


# -- fanotify_init -----------------------------------------------------------


def test_init_returns_an_fd_with_the_requested_flags():
    fd = syscalls.fanotify_init(FID_FLAGS)
    try:
        with open(f"/proc/self/fdinfo/{fd}") as fdinfo:
            text = fdinfo.read()
    finally:
        os.close(fd)

    assert "fanotify flags:" in text
    flags = int(text.split("fanotify flags:")[1].split()[0], 16)
    assert flags & FAN_REPORT_FID


def test_init_unknown_flag_is_einval():
    with pytest.raises(OSError) as caught:
        syscalls.fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID | 0x8000_0000)

    assert caught.value.errno == errno.EINVAL
    assert caught.value.filename is None


def test_fd_mode_init_without_cap_sys_admin_is_eperm():
    child = run_child(
        """
        import errno
        from fanwatch import syscalls
        from fanwatch.constants import FAN_CLASS_NOTIF, FAN_CLASS_CONTENT
        for flags in (FAN_CLASS_NOTIF, FAN_CLASS_CONTENT):
            try:
                syscalls.fanotify_init(flags)
            except OSError as exc:
                print(errno.errorcode[exc.errno])
        """
    )

    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["EPERM", "EPERM"]


def test_fid_init_without_cap_sys_admin_works():
    child = run_child(
        f"""
        from fanwatch import syscalls
        print(syscalls.fanotify_init({FID_FLAGS}) >= 0)
        """
    )

    assert (child.returncode, child.stdout.strip()) == (0, "True"), child.stderr


# -- fanotify_mark -----------------------------------------------------------


def test_permission_event_on_notif_group_is_einval(tmpfs):
    fd = syscalls.fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC)
    try:
        with pytest.raises(OSError) as caught:
            syscalls.fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, tmpfs)
    finally:
        os.close(fd)

    assert caught.value.errno == errno.EINVAL
    assert caught.value.filename == tmpfs


def test_permission_mark_on_content_group_works(tmpfs):
    fd = syscalls.fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC)
    try:
        syscalls.fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, tmpfs)
        assert mark_masks(fd) == [FAN_OPEN_PERM]
    finally:
        os.close(fd)


def test_rename_without_report_name_is_einval(tmpfs):
    fd = syscalls.fanotify_init(FID_FLAGS)
    try:
        with pytest.raises(OSError) as caught:
            syscalls.fanotify_mark(fd, FAN_MARK_ADD, FAN_RENAME, AT_FDCWD, tmpfs)
    finally:
        os.close(fd)

    assert caught.value.errno == errno.EINVAL


@pytest.mark.parametrize("encode", [str, os.fsencode])
def test_missing_path_is_enoent_naming_the_path(fid_group, tmpfs, encode):
    missing = os.path.join(tmpfs, "no such dir")

    with pytest.raises(FileNotFoundError) as caught:
        syscalls.fanotify_mark(
            fid_group, FAN_MARK_ADD, FAN_CREATE, AT_FDCWD, encode(missing)
        )

    assert caught.value.errno == errno.ENOENT
    assert caught.value.filename == missing
    assert missing in str(caught.value)


def test_high_event_bits_reach_the_kernel(fid_group, tmpfs):
    mask = FAN_CREATE | FAN_ONDIR | FAN_RENAME
    syscalls.fanotify_mark(fid_group, FAN_MARK_ADD, mask, AT_FDCWD, tmpfs)

    assert mark_masks(fid_group) == [mask]


def test_mask_is_passed_as_64_bits(fid_group, tmpfs):
    # No event bit above 31 exists, so the kernel refuses one. A mask
    # truncated to 32 bits would turn this into a valid FAN_OPEN mark.
    with pytest.raises(OSError) as caught:
        syscalls.fanotify_mark(
            fid_group, FAN_MARK_ADD, FAN_OPEN | 1 << 40, AT_FDCWD, tmpfs
        )

    assert caught.value.errno == errno.EINVAL
    assert mark_masks(fid_group) == []


def test_mark_by_fd_without_path(fid_group, tmpfs):
    dirfd = os.open(tmpfs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        syscalls.fanotify_mark(fid_group, FAN_MARK_ADD, FAN_CREATE, dirfd, None)
    finally:
        os.close(dirfd)

    assert mark_masks(fid_group) == [FAN_CREATE]


def test_remove_mark(fid_group, tmpfs):
    syscalls.fanotify_mark(fid_group, FAN_MARK_ADD, FAN_CREATE, AT_FDCWD, tmpfs)
    syscalls.fanotify_mark(fid_group, FAN_MARK_REMOVE, FAN_CREATE, AT_FDCWD, tmpfs)

    assert mark_masks(fid_group) == []
    with pytest.raises(OSError) as caught:
        syscalls.fanotify_mark(fid_group, FAN_MARK_REMOVE, FAN_CREATE, AT_FDCWD, tmpfs)
    assert caught.value.errno == errno.ENOENT


# -- file handles ------------------------------------------------------------


def test_directory_handle_matches_the_one_in_events(fid_group, tmpfs):
    watched = os.path.join(tmpfs, "dir")
    os.mkdir(watched)
    syscalls.fanotify_mark(fid_group, FAN_MARK_ADD, FAN_CREATE, AT_FDCWD, watched)
    handle_type, handle, mount_id = syscalls.name_to_handle_at(AT_FDCWD, watched)

    open(os.path.join(watched, "child"), "w").close()
    (got,) = parse_events(os.read(fid_group, 65536))

    assert got.name == b"child"
    assert got.dir_fid.handle == handle
    assert got.dir_fid.handle_type == handle_type
    assert got.dir_fid.fsid == fsid_key_of(watched)
    assert mount_id > 0


def fsid_key_of(path: str) -> int:
    fsid = os.statvfs(path).f_fsid

    return fsid_key(fsid & 0xFFFFFFFF, fsid >> 32)


def test_name_to_handle_at_missing_path(tmpfs):
    missing = os.path.join(tmpfs, "gone")

    with pytest.raises(FileNotFoundError) as caught:
        syscalls.name_to_handle_at(AT_FDCWD, missing)

    assert caught.value.filename == missing


def test_open_by_handle_at_opens_the_directory(tmpfs):
    watched = os.path.join(tmpfs, "dir")
    os.mkdir(watched)
    handle_type, handle, _mount_id = syscalls.name_to_handle_at(AT_FDCWD, watched)
    mount_fd = os.open(tmpfs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = syscalls.open_by_handle_at(mount_fd, handle_type, handle)
    finally:
        os.close(mount_fd)
    try:
        opened = os.fstat(fd)
        assert os.get_inheritable(fd) is False
        assert os.readlink(f"/proc/self/fd/{fd}") == watched
    finally:
        os.close(fd)

    assert (opened.st_dev, opened.st_ino) == (
        os.stat(watched).st_dev,
        os.stat(watched).st_ino,
    )


def test_open_by_handle_at_stale_handle(tmpfs):
    watched = os.path.join(tmpfs, "dir")
    os.mkdir(watched)
    handle_type, handle, _mount_id = syscalls.name_to_handle_at(AT_FDCWD, watched)
    os.rmdir(watched)
    mount_fd = os.open(tmpfs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as caught:
            syscalls.open_by_handle_at(mount_fd, handle_type, handle)
    finally:
        os.close(mount_fd)

    assert caught.value.errno == errno.ESTALE


def test_open_by_handle_at_without_dac_read_search_is_eperm(tmpfs):
    watched = os.path.join(tmpfs, "dir")
    os.mkdir(watched)
    child = run_child(
        f"""
        import errno, os
        from fanwatch import syscalls
        handle_type, handle, _ = syscalls.name_to_handle_at(-100, {watched!r})
        mount_fd = os.open({tmpfs!r}, os.O_RDONLY | os.O_DIRECTORY)
        try:
            syscalls.open_by_handle_at(mount_fd, handle_type, handle)
        except OSError as exc:
            print(errno.errorcode[exc.errno])
        """
    )

    assert (child.returncode, child.stdout.strip()) == (0, "EPERM"), child.stderr


def test_pidfd_open():
    fd = syscalls.pidfd_open(os.getpid())
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]"
    finally:
        os.close(fd)

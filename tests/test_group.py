"""Group against the real kernel: fd ownership, marks, reads, responses, overflow.

Permission marks are placed only on the test's own tmpfs, and every test
that starts a process which may block on a permission event kills it by pid
in a finally block (closing the group also releases it).
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import subprocess
import sys
import time
import warnings

import pytest

from fanwatch.constants import (
    FAN_ALLOW,
    FAN_CLASS_CONTENT,
    FAN_CLASS_NOTIF,
    FAN_CLOSE_WRITE,
    FAN_CREATE,
    FAN_DENY,
    FAN_EVENT_ON_CHILD,
    FAN_MARK_FILESYSTEM,
    FAN_MODIFY,
    FAN_NOFD,
    FAN_ONDIR,
    FAN_OPEN,
    FAN_OPEN_PERM,
    FAN_Q_OVERFLOW,
    FAN_REPORT_DFID_NAME,
    FAN_REPORT_FID,
    FAN_REPORT_PIDFD,
)
from fanwatch.group import Batch, Group, close_event_fds

FID_FLAGS = FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_REPORT_DFID_NAME


def open_fds() -> set[int]:
    """The fds open now; the one listdir used is closed again by the filter."""
    listed = (int(name) for name in os.listdir("/proc/self/fd"))

    return {fd for fd in listed if fd_target(fd) is not None}


def fd_target(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        return None


def fdinfo(fd: int) -> str:
    with open(f"/proc/self/fdinfo/{fd}") as info:
        return info.read()


def inode_marks(group: Group) -> list[int]:
    lines = fdinfo(group.fileno()).splitlines()

    return [
        int(line.split(" mask:")[1].split()[0], 16)
        for line in lines
        if line.startswith("fanotify ino:")
    ]


def touch(path: str) -> None:
    with open(path, "w") as f:
        f.write("x")


# -- the group owns its fd like a file ----------------------------------------


def test_fileno_closed_and_idempotent_close():
    group = Group(FID_FLAGS)
    fd = group.fileno()

    assert fd_target(fd) == "anon_inode:[fanotify]"
    assert not group.closed
    assert f"fd={fd}" in repr(group)
    group.close()
    group.close()
    assert group.closed
    assert "closed" in repr(group)
    assert fd_target(fd) != "anon_inode:[fanotify]"
    with pytest.raises(ValueError):
        group.fileno()


def test_context_manager_closes_on_exception():
    with pytest.raises(RuntimeError):
        with Group(FID_FLAGS) as group:
            assert not group.closed
            raise RuntimeError("inside")

    assert group.closed


def test_group_fd_is_close_on_exec_and_nonblocking():
    with Group(FID_FLAGS) as group:
        fd = group.fileno()
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        flags = int(fdinfo(fd).split("flags:")[1].split()[0], 8)
        assert flags & os.O_CLOEXEC and flags & os.O_NONBLOCK
        # A child really does not inherit it.
        child = subprocess.run(
            ["ls", f"/proc/self/fd/{fd}"], capture_output=True, check=False
        )
        assert child.returncode != 0


def test_leaked_group_warns_and_closes_its_fd():
    group = Group(FID_FLAGS)
    fd = group.fileno()

    with pytest.warns(ResourceWarning, match=f"fd={fd}"):
        del group
        gc.collect()

    assert fd_target(fd) != "anon_inode:[fanotify]"


def test_failed_init_raises_and_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with pytest.raises(OSError) as caught:
            Group(FAN_CLASS_NOTIF | FAN_REPORT_FID | 0x8000_0000)
        gc.collect()

    assert caught.value.errno == errno.EINVAL


def test_closed_group_refuses_marks_reads_and_waits(tmpfs):
    group = Group(FID_FLAGS)
    group.close()

    for call in (
        lambda: group.mark(tmpfs, FAN_CREATE),
        lambda: group.read(timeout=0),
        lambda: group.read(timeout=None),
        lambda: group.wait(None),
        group.read_raw,
    ):
        with pytest.raises(ValueError):
            call()


# -- marks --------------------------------------------------------------------


def test_mark_unmark_and_flush(tmpfs):
    first, second = os.path.join(tmpfs, "a"), os.path.join(tmpfs, "b")
    os.mkdir(first)
    os.mkdir(second)
    with Group(FID_FLAGS) as group:
        group.mark(first, FAN_CREATE | FAN_MODIFY | FAN_ONDIR)
        group.mark(second, FAN_CREATE)
        assert sorted(inode_marks(group)) == [
            FAN_CREATE,
            FAN_CREATE | FAN_MODIFY | FAN_ONDIR,
        ]

        group.unmark(first, FAN_MODIFY)
        assert sorted(inode_marks(group)) == [FAN_CREATE, FAN_CREATE | FAN_ONDIR]

        group.flush()
        assert inode_marks(group) == []
        touch(os.path.join(first, "after-flush"))
        assert group.read(timeout=0) == []


def test_mark_fd(tmpfs):
    with Group(FID_FLAGS) as group:
        dirfd = os.open(tmpfs, os.O_RDONLY | os.O_DIRECTORY)
        try:
            group.mark_fd(dirfd, FAN_CREATE)
        finally:
            os.close(dirfd)
        touch(os.path.join(tmpfs, "child"))

        with group.read(timeout=5) as batch:
            assert [(e.mask, e.name) for e in batch] == [(FAN_CREATE, b"child")]


def test_flush_filesystem_marks(tmpfs):
    with Group(FID_FLAGS) as group:
        group.mark(tmpfs, FAN_CREATE, kind=FAN_MARK_FILESYSTEM)
        group.mark(tmpfs, FAN_CREATE)
        group.flush(FAN_MARK_FILESYSTEM)
        assert "fanotify sdev:" not in fdinfo(group.fileno())
        assert inode_marks(group) == [FAN_CREATE]


def test_mark_error_names_the_path(tmpfs):
    missing = os.path.join(tmpfs, "missing")
    with Group(FID_FLAGS) as group:
        with pytest.raises(FileNotFoundError) as caught:
            group.mark(missing, FAN_CREATE)

    assert caught.value.filename == missing


# -- reads --------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, 0.2])
def test_read_timeout_returns_empty_batch(tmpfs, timeout):
    with Group(FID_FLAGS) as group:
        group.mark(tmpfs, FAN_CREATE)
        started = time.monotonic()
        batch = group.read(timeout=timeout)
        waited = time.monotonic() - started

    assert isinstance(batch, Batch) and batch == []
    assert timeout <= waited < timeout + 1


def test_read_returns_events_in_order(tmpfs):
    with Group(FID_FLAGS) as group:
        group.mark(tmpfs, FAN_CREATE | FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD)
        touch(os.path.join(tmpfs, "one"))
        touch(os.path.join(tmpfs, "two"))
        with group.read(timeout=5) as batch:
            got = [(e.mask, e.name) for e in batch]

    assert got == [
        (FAN_CREATE, b"one"),
        (FAN_CLOSE_WRITE, b"one"),
        (FAN_CREATE, b"two"),
        (FAN_CLOSE_WRITE, b"two"),
    ]


def test_read_buffer_too_small_is_einval(tmpfs):
    with Group(FID_FLAGS, read_size=16) as group:
        group.mark(tmpfs, FAN_CREATE)
        touch(os.path.join(tmpfs, "x"))
        with pytest.raises(OSError) as caught:
            group.read(timeout=5)

    assert caught.value.errno == errno.EINVAL


def test_overflow_with_the_default_queue(tmpfs):
    with open("/proc/sys/fs/fanotify/max_queued_events") as limit:
        queue = int(limit.read())
    with Group(FID_FLAGS) as group:
        group.mark(tmpfs, FAN_CREATE)
        # Each distinct name is its own event: nothing merges.
        for number in range(queue + 100):
            os.close(
                os.open(os.path.join(tmpfs, str(number)), os.O_CREAT | os.O_WRONLY)
            )
        events = []
        while True:
            with group.read(timeout=0) as batch:
                if not batch:
                    break
                events.extend(batch)

    overflows = [e for e in events if e.is_overflow]
    assert len(overflows) == 1
    assert events[-1] is overflows[0]
    assert (overflows[0].mask, overflows[0].fd) == (FAN_Q_OVERFLOW, FAN_NOFD)
    assert overflows[0].name is None and overflows[0].dir_fid is None
    assert len(events) - 1 == queue
    assert [e.name for e in events[:3]] == [b"0", b"1", b"2"]
    assert all(e.malformed is None for e in events)


# -- the batch closes every descriptor ------------------------------------------


def fd_mode_events(tmpfs: str, group: Group, count: int = 3) -> None:
    """Queue *count* open events, on distinct files so that none merge."""
    for number in range(count):
        target = os.path.join(tmpfs, f"target{number}")
        touch(target)
        group.mark(target, FAN_OPEN)
        os.close(os.open(target, os.O_RDONLY))


def test_batch_closes_event_fds_and_pidfds(tmpfs):
    with Group(FAN_CLASS_NOTIF | FAN_REPORT_PIDFD) as group:
        fd_mode_events(tmpfs, group)
        before = open_fds()
        with group.read(timeout=5) as batch:
            carried = [fd for event in batch for fd in event.fds()]
            assert len(batch) == 3 and len(carried) == 6
            assert set(carried) == open_fds() - before
            assert all(
                fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC for fd in carried
            )
            assert fd_target(batch[0].fd) == os.path.join(tmpfs, "target0")
            assert fd_target(batch[0].pidfd) == "anon_inode:[pidfd]"

        assert open_fds() == before
        assert all(e.fd == -1 and e.pidfd == -1 for e in batch)


def test_batch_closes_fds_when_the_caller_raises(tmpfs):
    with Group(FAN_CLASS_NOTIF | FAN_REPORT_PIDFD) as group:
        fd_mode_events(tmpfs, group)
        before = open_fds()
        with pytest.raises(KeyError):
            with group.read(timeout=5) as batch:
                assert len(batch) == 3
                raise KeyError("handler failed")

        assert open_fds() == before


def test_batch_close_is_idempotent_and_survives_closed_fds(tmpfs):
    with Group(FAN_CLASS_NOTIF | FAN_REPORT_PIDFD) as group:
        fd_mode_events(tmpfs, group, count=2)
        before = open_fds()
        batch = group.read(timeout=5)
        # The caller already closed one fd itself, and the first event's
        # pidfd through the helper.
        os.close(batch[1].fd)
        close_event_fds(batch[0])
        batch.close()
        batch.close()

        assert open_fds() == before


# -- permission responses ------------------------------------------------------


def start_opener(path: str) -> subprocess.Popen:
    """A child that opens *path* and prints "ok" or the errno name."""
    code = (
        "import errno, sys\n"
        f"try:\n    open({path!r}).close()\n    print('ok')\n"
        "except OSError as exc:\n    print(errno.errorcode[exc.errno])\n"
    )

    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )


def answer_one(
    group: Group, path: str, response: int, **extra: object
) -> tuple[str, int]:
    """Start an opener, answer its open with *response*; its output and the fd."""
    child = start_opener(path)
    try:
        with group.read(timeout=10) as batch:
            assert [e.mask for e in batch] == [FAN_OPEN_PERM]
            assert batch[0].pid == child.pid
            event_fd = batch[0].fd
            group.respond(event_fd, response, **extra)
            # A second answer to the same event is refused.
            with pytest.raises(OSError) as again:
                group.respond(event_fd, response)
            assert again.value.errno == errno.ENOENT
        out, _err = child.communicate(timeout=10)
    finally:
        child.kill()
        child.wait()

    return out.strip(), event_fd


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("response", "extra", "outcome"),
    [
        (FAN_DENY, {}, "EPERM"),
        (FAN_ALLOW, {}, "ok"),
        (FAN_ALLOW, {"audit_rule": 7}, "ok"),
        (FAN_DENY, {"audit_rule": 7}, "EPERM"),
    ],
)
def test_respond(tmpfs, response, extra, outcome):
    path = os.path.join(tmpfs, "guarded")
    touch(path)
    group = Group(FAN_CLASS_CONTENT)
    try:
        group.mark(path, FAN_OPEN_PERM)
        got, _fd = answer_one(group, path, response, **extra)
    finally:
        group.close()

    assert got == outcome


@pytest.mark.timeout(30)
def test_closing_the_group_allows_pending_opens(tmpfs):
    path = os.path.join(tmpfs, "guarded")
    touch(path)
    group = Group(FAN_CLASS_CONTENT)
    child = None
    try:
        group.mark(path, FAN_OPEN_PERM)
        child = start_opener(path)
        assert group.wait(timeout=10)
        group.close()
        out, _err = child.communicate(timeout=10)
    finally:
        group.close()
        if child is not None:
            child.kill()
            child.wait()

    assert out.strip() == "ok"


@pytest.mark.timeout(30)
def test_respond_to_unknown_fd_is_enoent(tmpfs):
    unrelated = os.open(tmpfs, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Group(FAN_CLASS_CONTENT) as group:
            with pytest.raises(OSError) as caught:
                group.respond(unrelated, FAN_ALLOW)
    finally:
        os.close(unrelated)

    assert caught.value.errno == errno.ENOENT

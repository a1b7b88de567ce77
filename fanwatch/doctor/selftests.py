"""Live self-tests: each fanotify level really triggered and its event received.

Every self-test runs in a forked child (see :mod:`fanwatch.doctor.child`)
with a hard timeout. The file that triggers the event is made by a
grandchild, so the event's pid shows whether process ids are reported.
Results are dicts with ``outcome``: "ok", "refused" (with ``step`` and
``errno``), "no-event" (the calls were accepted but nothing arrived in
time), "skipped", or how the child ended ("killed", "timeout", "crashed").

Safety: the permission self-test marks only a file inside a tmpfs that it
mounts in its own private mount namespace. Without the privilege to do that
it marks a single temporary file in a private directory that only the
self-test opens. Every event is answered, and the group is closed in
``finally`` (closing a group allows whatever is still pending).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import secrets
import shutil
import tempfile
import time

from .. import syscalls
from ..constants import (
    AT_FDCWD,
    FAN_ALLOW,
    FAN_CLASS_CONTENT,
    FAN_CLOSE_WRITE,
    FAN_CREATE,
    FAN_MARK_FILESYSTEM,
    FAN_MARK_INODE,
    FAN_MARK_MOUNT,
    FAN_OPEN_PERM,
    FAN_REPORT_DFID_NAME,
    FAN_REPORT_FID,
    FAN_REPORT_PIDFD,
    FAN_UNLIMITED_QUEUE,
    PERMISSION_EVENTS,
)
from ..group import Group
from .child import errno_result, run_in_child

SELFTEST_NAMES = (
    "inode-mark",
    "mount-mark",
    "filesystem-mark",
    "permission",
    "pidfd",
    "unlimited-queue",
)

DEFAULT_EVENT_TIMEOUT = 2.0
# Time the child gets beyond waiting for its event, before it is killed.
CHILD_GRACE = 3.0

PREFIX = "fanwatch-doctor-"


# -- where the self-tests run ------------------------------------------------


def choose_workdir(path: str | None) -> tuple[str, str | None]:
    """A new private directory for the self-tests, and a note if not under *path*.

    Under *path* when it is writable; otherwise on the same filesystem if a
    writable parent directory is there; otherwise in the temporary directory.
    """
    if path is None:
        return tempfile.mkdtemp(prefix=PREFIX), None
    try:
        return tempfile.mkdtemp(prefix="." + PREFIX, dir=path), None
    except OSError as exc:
        reason = f"{path} is not writable ({exc.strerror})"

    same_fs = _writable_on_same_fs(path)
    if same_fs is not None:
        return same_fs, f"{reason}; self-tests ran in {same_fs} on the same filesystem"
    workdir = tempfile.mkdtemp(prefix=PREFIX)

    return workdir, f"{reason}; self-tests ran in {workdir} on another filesystem"


def _writable_on_same_fs(path: str) -> str | None:
    try:
        device = os.stat(path).st_dev
    except OSError:
        return None
    candidates = [tempfile.gettempdir()]
    parent = os.path.dirname(os.path.abspath(path))
    while True:
        candidates.append(parent)
        if parent == "/":
            break
        parent = os.path.dirname(parent)
    for candidate in candidates:
        try:
            if os.stat(candidate).st_dev == device:
                return tempfile.mkdtemp(prefix="." + PREFIX, dir=candidate)
        except OSError:
            continue

    return None


# -- helpers run inside the self-test child ----------------------------------


class Grandchild:
    """A process that does one file action, then waits to be released.

    It stays alive until :meth:`release` so that a pidfd for it can still
    be made when the event is read.
    """

    def __init__(self, action) -> None:
        self._release_r, self._release_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 0
            try:
                os.close(self._release_w)
                action()
                os.read(self._release_r, 1)
            except BaseException:  # noqa: BLE001 - a forked child must not return
                code = 1
            finally:
                os._exit(code)
        os.close(self._release_r)

    def release(self) -> int:
        """Let it exit; its exit code, or -1 if it was killed."""
        os.close(self._release_w)
        _, status = os.waitpid(self.pid, 0)

        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else -1


def _create_file(path: str) -> None:
    with open(path, "w") as file:
        file.write("fanwatch doctor self-test\n")


def _await_event(group: Group, match, timeout: float):
    """The first event for which *match* is true, or None at the deadline.

    Every fd the events carry is closed here; the returned copy keeps only
    what the caller needs: ``(pid, has_pidfd)``.
    """
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        with group.read(timeout=left) as batch:
            for event in batch:
                if match(event):
                    has_pidfd = event.pidfd is not None and event.pidfd >= 0
                    return event.pid, has_pidfd

    return None


def _notification_test(
    workdir: str,
    init_flags: int,
    kind: int,
    mask: int,
    timeout: float,
    by_handle: bool = False,
    path: str | None = None,
) -> dict:
    """Mark *workdir* (or its mount or filesystem), make a file, await its event.

    *path*, when given, is marked the same way first: the directory judged,
    when the self-test could not run under it.
    """
    name = PREFIX + secrets.token_hex(4)
    target = os.path.join(workdir, name)
    try:
        group = Group(init_flags)
    except OSError as exc:
        return errno_result(exc, "fanotify_init")

    try:
        try:
            if path is not None:
                group.mark(path, mask, kind=kind)
            group.mark(workdir, mask, kind=kind)
        except OSError as exc:
            return errno_result(exc, "fanotify_mark")
        maker = Grandchild(lambda: _create_file(target))
        try:
            match = _matcher(name, target, by_handle)
            found = _await_event(group, match, timeout)
        finally:
            maker.release()
        if found is None:
            return {"outcome": "no-event", "timeout": timeout}
        pid, has_pidfd = found

        return {"outcome": "ok", "pid_reported": pid == maker.pid, "pidfd": has_pidfd}
    finally:
        group.close()
        _remove(target)


def _matcher(name: str, target: str, by_handle: bool):
    if not by_handle:
        encoded = name.encode()
        return lambda event: event.name == encoded

    state: dict = {}

    def match(event) -> bool:
        # The handle is looked up once the file exists (the event is queued).
        if "handle" not in state:
            try:
                state["handle"] = syscalls.name_to_handle_at(AT_FDCWD, target)[1]
            except OSError:
                state["handle"] = None
        return event.fid is not None and event.fid.handle == state["handle"]

    return match


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- the notification self-tests ---------------------------------------------


def inode_mark(workdir: str, timeout: float, path: str | None = None) -> dict:
    """An unprivileged-capable FID group with a directory (inode) mark."""
    return _notification_test(
        workdir, FAN_REPORT_DFID_NAME, FAN_MARK_INODE, FAN_CREATE, timeout, path=path
    )


def mount_mark(workdir: str, timeout: float, path: str | None = None) -> dict:
    """A FID group with a mark on the mount under *workdir* (close-write)."""
    return _notification_test(
        workdir,
        FAN_REPORT_FID,
        FAN_MARK_MOUNT,
        FAN_CLOSE_WRITE,
        timeout,
        by_handle=True,
        path=path,
    )


def filesystem_mark(workdir: str, timeout: float, path: str | None = None) -> dict:
    """A FID group with a mark on the whole filesystem under *workdir*."""
    return _notification_test(
        workdir,
        FAN_REPORT_DFID_NAME,
        FAN_MARK_FILESYSTEM,
        FAN_CREATE,
        timeout,
        path=path,
    )


def pidfd(workdir: str, timeout: float) -> dict:
    """FAN_REPORT_PIDFD: the event carries a pidfd for the process."""
    result = _notification_test(
        workdir,
        FAN_REPORT_DFID_NAME | FAN_REPORT_PIDFD,
        FAN_MARK_INODE,
        FAN_CREATE,
        timeout,
    )
    if result["outcome"] == "ok" and not result["pidfd"]:
        return {"outcome": "no-event", "detail": "the event came without a pidfd"}

    return result


def unlimited_queue(workdir: str, timeout: float) -> dict:
    """FAN_UNLIMITED_QUEUE: a group whose queue the kernel never truncates."""
    return _notification_test(
        workdir,
        FAN_REPORT_DFID_NAME | FAN_UNLIMITED_QUEUE,
        FAN_MARK_INODE,
        FAN_CREATE,
        timeout,
    )


# -- the permission self-test ------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2


def _check(result: int) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def mount_private_tmpfs() -> str:
    """A tmpfs mounted in a new mount namespace of this process only.

    Raises OSError when this process may not unshare or mount. All mounts
    are made private first, so the tmpfs cannot propagate to the mount
    namespace the rest of the machine sees. It covers the temporary
    directory in this namespace only, so no mount point is left behind on
    disk even if the self-test is killed.
    """
    _check(_libc.unshare(CLONE_NEWNS))
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None))
    where = tempfile.gettempdir()
    options = b"size=1m,mode=0700"
    _check(_libc.mount(b"fanwatch-doctor", where.encode(), b"tmpfs", 0, options))

    return where


def unmount(where: str) -> None:
    _libc.umount2(where.encode(), MNT_DETACH)


def permission(content_probe: dict | None, timeout: float) -> dict:
    """FAN_OPEN_PERM on a private file: the open waits for our answer.

    On a private tmpfs when one can be mounted; else, if fanotify_init
    (FAN_CLASS_CONTENT) was refused in its probe, that answer is the result;
    else a temporary file in a private directory.
    """
    try:
        where, mounted = mount_private_tmpfs(), True
    except OSError:
        if content_probe is not None and content_probe.get("outcome") != "ok":
            return {**content_probe, "where": "probe"}
        where, mounted = tempfile.mkdtemp(prefix=PREFIX), False

    target = os.path.join(where, PREFIX + "perm")
    _create_file(target)
    try:
        result = _permission_on(target, timeout)
    finally:
        if mounted:
            unmount(where)
        else:
            shutil.rmtree(where, ignore_errors=True)

    return {**result, "where": "private tmpfs" if mounted else "private file"}


def _permission_on(target: str, timeout: float) -> dict:
    try:
        group = Group(FAN_CLASS_CONTENT)
    except OSError as exc:
        return errno_result(exc, "fanotify_init")

    try:
        try:
            group.mark(target, FAN_OPEN_PERM)
        except OSError as exc:
            return errno_result(exc, "fanotify_mark")
        inode = os.stat(target).st_ino
        opener = Grandchild(lambda: open(target).close())
        try:
            answered = _answer_until_seen(group, inode, timeout)
        finally:
            # Closing the group first lets a still-waiting opener go on.
            group.close()
            status = opener.release()
        if not answered:
            return {"outcome": "no-event", "timeout": timeout}

        return {"outcome": "ok", "opener_status": status}
    finally:
        group.close()


def _answer_until_seen(group: Group, inode: int, timeout: float) -> bool:
    """Allow every permission event; True once one for *inode* was answered."""
    seen = False
    deadline = time.monotonic() + timeout
    while not seen and (left := deadline - time.monotonic()) > 0:
        with group.read(timeout=left) as batch:
            for event in batch:
                if event.fd >= 0 and os.fstat(event.fd).st_ino == inode:
                    seen = True
                if event.mask & PERMISSION_EVENTS:
                    group.respond(event.fd, FAN_ALLOW)

    return seen


# -- all of them --------------------------------------------------------------


def run_selftests(
    workdir: str,
    probes: dict,
    event_timeout: float = DEFAULT_EVENT_TIMEOUT,
    path: str | None = None,
) -> dict:
    """Every self-test, each in its own child with a hard timeout.

    *path* is the directory judged when *workdir* is not under it: the mark
    self-tests mark it too, since whether a mark is allowed depends on the
    mount and filesystem (a user namespace may mark its own tmpfs, never a
    host bind mount).
    """
    limit = event_timeout + CHILD_GRACE
    tests = {
        "inode-mark": lambda: inode_mark(workdir, event_timeout, path),
        "mount-mark": lambda: mount_mark(workdir, event_timeout, path),
        "filesystem-mark": lambda: filesystem_mark(workdir, event_timeout, path),
        "permission": lambda: permission(probes.get("init-content"), event_timeout),
        "pidfd": lambda: pidfd(workdir, event_timeout),
        "unlimited-queue": lambda: unlimited_queue(workdir, event_timeout),
    }

    return {name: run_in_child(test, limit) for name, test in tests.items()}

"""Who caused an event: process details read from /proc, early and safely.

The kernel reports a pid (and, with ``FAN_REPORT_PIDFD``, a pidfd). A pid can
be reused as soon as its process exits, so details are read while the event's
pidfd pins the process, and cached under the pidfd's identity where the
kernel gives one (pidfs inode numbers are unique per process since 6.9) or
under the pid plus its start time otherwise. A process that is already gone
is reported as gone, never guessed.
"""

from __future__ import annotations

import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass


# Container ids as runtimes write them into cgroup paths: docker-<id>.scope,
# /docker/<id>, cri-containerd-<id>, crio-<id>, libpod-<id>, /lxc/<name>.
_CONTAINER_ID = re.compile(
    rb"(?:docker|libpod|crio|cri-containerd|containerd)[-/]([0-9a-f]{64})"
)
_HEX_ID = re.compile(rb"/([0-9a-f]{64})(?:\.scope)?$")


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What is known of the process behind an event.

    ``gone`` is True when the process exited before it could be inspected;
    then only ``pid`` is meaningful. ``pid`` 0 means the kernel did not say
    (unprivileged listeners see 0 for other processes).
    """

    pid: int
    comm: str | None = None
    exe: str | None = None
    uid: int | None = None
    gid: int | None = None
    ppid: int | None = None
    container_id: str | None = None
    gone: bool = False

    @property
    def known(self) -> bool:
        return self.pid > 0 and not self.gone


UNKNOWN = ProcessInfo(pid=0)


def read_process(pid: int, proc: str = "/proc") -> ProcessInfo:
    """Read the details of *pid* from *proc*; ``gone=True`` if it has exited."""
    base = f"{proc}/{pid}"
    try:
        with open(f"{base}/stat", "rb") as f:
            stat = f.read()
        with open(f"{base}/status", "rb") as f:
            status = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return ProcessInfo(pid=pid, gone=True)

    comm, ppid = _parse_stat(stat)
    uid, gid = _parse_ids(status)

    return ProcessInfo(
        pid=pid,
        comm=comm,
        exe=_read_exe(base),
        uid=uid,
        gid=gid,
        ppid=ppid,
        container_id=_read_container_id(base),
    )


def start_time(pid: int, proc: str = "/proc") -> int | None:
    """The start time of *pid* in clock ticks since boot, None if gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()

    return int(fields[19]) if len(fields) > 19 else None


def _parse_stat(stat: bytes) -> tuple[str, int | None]:
    # comm sits between the first "(" and the last ")": it may itself
    # contain spaces and parentheses.
    open_at = stat.find(b"(")
    close_at = stat.rfind(b")")
    comm = stat[open_at + 1 : close_at].decode("utf-8", "surrogateescape")
    fields = stat[close_at + 2 :].split()
    ppid = int(fields[1]) if len(fields) > 1 else None

    return comm, ppid


def _parse_ids(status: bytes) -> tuple[int | None, int | None]:
    uid = gid = None
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            uid = int(line.split()[1])
        elif line.startswith(b"Gid:"):
            gid = int(line.split()[1])
            break

    return uid, gid


def _read_exe(base: str) -> str | None:
    # Unreadable for other users' processes without CAP_SYS_PTRACE, and
    # empty for kernel threads: both are "unknown", not errors.
    try:
        return os.readlink(f"{base}/exe")
    except OSError:
        return None


def _read_container_id(base: str) -> str | None:
    try:
        with open(f"{base}/cgroup", "rb") as f:
            cgroups = f.read()
    except OSError:
        return None
    match = _CONTAINER_ID.search(cgroups)
    if match is None:
        for line in cgroups.splitlines():
            match = _HEX_ID.search(line)
            if match:
                break
    return match.group(1).decode() if match else None


def pidfd_identity(pidfd: int) -> int | None:
    """A number that names the process behind *pidfd* for its whole life.

    On kernels with pidfs (6.9+) every pidfd of one process shares an inode
    number never given to another process; before that all pidfds share one
    anonymous inode, which is useless as an identity, so None is returned.
    """
    try:
        st = os.fstat(pidfd)
    except OSError:
        return None

    return st.st_ino if st.st_ino > 1 and _pidfs_dev(st.st_dev) else None


_ANON_INODE_DEV: int | None = None


def _pidfs_dev(dev: int) -> bool:
    """True if *dev* is not the device of the shared anonymous inode."""
    global _ANON_INODE_DEV
    if _ANON_INODE_DEV is None:
        _ANON_INODE_DEV = _anon_inode_dev()

    return dev != _ANON_INODE_DEV


def _anon_inode_dev() -> int:
    import select

    ep = select.epoll()  # an anon_inode fd, on the device pidfds used before pidfs
    try:
        return os.fstat(ep.fileno()).st_dev
    finally:
        ep.close()


class ProcessCache:
    """Bounded cache of :class:`ProcessInfo`, safe against pid reuse.

    :meth:`lookup` takes the pid and the pidfd the event carried: None when
    the group does not report pidfds, negative when the kernel had none.
    With a pidfd the cache key is the process identity behind it; without,
    the pid plus its start time read from /proc. Entries live *ttl* seconds
    because a process keeps its identity across execve() while its comm and
    exe change.
    """

    def __init__(self, size: int = 4096, proc: str = "/proc", ttl: float = 1.0) -> None:
        self.size = size
        self.proc = proc
        self.ttl = ttl
        self._entries: OrderedDict[tuple, tuple[float, ProcessInfo]] = OrderedDict()

    def lookup(self, pid: int, pidfd: int | None = None) -> ProcessInfo:
        if pid <= 0:
            return UNKNOWN
        if pidfd is not None and pidfd < 0:
            # The group reports pidfds but got none (FAN_NOPIDFD) or could
            # not make one (FAN_EPIDFD): the process had exited, and its pid
            # may already name another process.
            return ProcessInfo(pid=pid, gone=True)

        key = self._key(pid, pidfd)
        if key is None:
            return ProcessInfo(pid=pid, gone=True)

        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]

        info = read_process(pid, self.proc)
        if pidfd is not None and pidfd >= 0 and not info.gone and not _alive(pidfd):
            # The pid may already name another process: do not trust what
            # we read under it.
            info = ProcessInfo(pid=pid, gone=True)
        if not info.gone:
            self._store(key, now + self.ttl, info)

        return info

    def forget(self, pid: int) -> None:
        """Drop what is cached for *pid* (for example after it ran execve)."""
        for key in [k for k, (_, info) in self._entries.items() if info.pid == pid]:
            del self._entries[key]

    def _key(self, pid: int, pidfd: int | None) -> tuple | None:
        if pidfd is not None and pidfd >= 0:
            identity = pidfd_identity(pidfd)
            if identity is not None:
                return ("pidfs", identity)
        started = start_time(pid, self.proc)

        return None if started is None else (pid, started)

    def _store(self, key: tuple, expires: float, info: ProcessInfo) -> None:
        self._entries[key] = (expires, info)
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def _alive(pidfd: int) -> bool:
    import signal

    try:
        signal.pidfd_send_signal(pidfd, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True

    return True

"""The syscalls each fanwatch job makes, and whether a profile lets them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .profile import Profile
from .verdict import Verdict


@dataclass(frozen=True)
class Need:
    """One thing a job does, by any of *names* (the first is the one to
    allow when none is: libc picks among them by version and arch).

    A job cannot run without a *required* need; an optional one is used
    when the profile allows it (``open_by_handle_at`` turns file handles
    back into paths when allowed, the directory table is used otherwise).
    """

    names: tuple[str, ...]
    purpose: str
    required: bool = True


def _needs(*rows: tuple[str, str] | tuple[str, str, bool]) -> list[Need]:
    return [Need(tuple(row[0].split()), *row[1:]) for row in rows]


# What the Python process of a monitor calls beyond fanotify itself. A
# profile that refuses these breaks every program, not only fanwatch, but
# custom allow-lists do get them wrong.
_PROCESS = (
    ("brk mmap", "allocate memory"),
    ("munmap", "free memory"),
    ("mprotect", "load shared libraries (ctypes, libc)"),
    ("rt_sigaction", "install the SIGINT/SIGTERM handlers"),
    ("rt_sigprocmask", "block signals around the event loop"),
    ("rt_sigreturn", "return from a signal handler"),
    ("futex", "lock between Python threads"),
    ("fcntl", "set close-on-exec and non-blocking flags"),
    ("ioctl", "ask whether stdout is a terminal"),
    ("lseek", "seek in files Python opens"),
    ("getpid", "drop events the monitor caused itself"),
    ("exit_group", "exit"),
)

_WATCH = (
    ("fanotify_init", "create the fanotify group"),
    ("fanotify_mark", "mark the watched directories"),
    ("name_to_handle_at", "build the table from directory handle to path"),
    ("read", "read events from the group"),
    ("close", "close the group and every event file descriptor"),
    ("openat open", "open directories to walk and mark them"),
    ("getdents64 getdents", "list directories to mark the whole tree"),
    ("newfstatat fstat statx fstatat64 stat lstat", "stat files and directories"),
    ("fstatfs statfs fstatfs64 statfs64", "read the filesystem id (fsid) of a mark"),
    ("readlinkat readlink", "resolve paths of /proc/self/fd entries"),
    ("ppoll poll pselect6 epoll_pwait epoll_wait", "wait for events with a timeout"),
    ("write writev", "print events"),
    (
        "pidfd_open",
        "pin the process that caused an event (pid is 0 unprivileged)",
        False,
    ),
    ("open_by_handle_at", "resolve file handles of files not in the table", False),
)

JOB_SYSCALLS: dict[str, list[Need]] = {
    "watch": _needs(*_WATCH, *_PROCESS),
    "watch-mount": _needs(*_WATCH, *_PROCESS),
    "guard": _needs(
        *_WATCH[:-1],
        ("write", "answer permission events (struct fanotify_response)"),
        *_PROCESS,
    ),
}
"""Job -> the syscalls it needs. ``watch`` watches directory trees with no
capability (FID group, inode marks); ``watch-mount`` uses mount and
filesystem marks; ``guard`` answers permission events."""

# The capabilities the kernel demands for each job, whatever seccomp says.
JOB_CAPS: dict[str, frozenset[str]] = {
    "watch": frozenset(),
    "watch-mount": frozenset({"CAP_SYS_ADMIN"}),
    "guard": frozenset({"CAP_SYS_ADMIN"}),
}


@dataclass(frozen=True)
class JobReport:
    """How a profile treats one job for one capability set.

    ``rows`` pairs every Need with the verdicts for its names;
    ``missing_caps`` are capabilities the job needs that the set lacks.
    """

    job: str
    rows: tuple[tuple[Need, tuple[Verdict, ...]], ...]
    missing_caps: frozenset[str]

    @property
    def blocked(self) -> list[Need]:
        """Required needs none of whose syscalls the profile allows."""
        return [
            need
            for need, verdicts in self.rows
            if need.required and not any(verdict.allowed for verdict in verdicts)
        ]

    @property
    def ok(self) -> bool:
        """True when the profile lets the job run with this capability set."""
        return not self.blocked and not self.missing_caps

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "capabilities": sorted(JOB_CAPS[self.job]),
            "missing_capabilities": sorted(self.missing_caps),
            "ok": self.ok,
            "blocked": [need.names[0] for need in self.blocked],
            "syscalls": [
                {
                    "names": list(need.names),
                    "required": need.required,
                    "purpose": need.purpose,
                    "satisfied": any(verdict.allowed for verdict in verdicts),
                    "verdicts": [verdict.to_dict() for verdict in verdicts],
                }
                for need, verdicts in self.rows
            ],
        }


def check_job(
    profile: Profile,
    job: str,
    caps: Iterable[str],
    arch: str | None = None,
    kernel: str | tuple[int, int, int] | None = None,
) -> JobReport:
    """Evaluate every syscall *job* needs under *profile* for bounding set
    *caps*. Raises KeyError for an unknown job, ValueError for a bad arch
    or kernel."""
    caps = frozenset(caps)
    rows = tuple(
        (need, tuple(profile.evaluate(name, caps, arch, kernel) for name in need.names))
        for need in JOB_SYSCALLS[job]
    )

    return JobReport(job, rows, JOB_CAPS[job] - caps)

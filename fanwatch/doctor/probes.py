"""Probes: single syscalls, each tried in a child process, answer recorded.

A probe tells what the kernel (or a seccomp filter in front of it) answers,
not whether events then arrive; :mod:`fanwatch.doctor.selftests` does that.
Each result is a dict with ``outcome`` "ok", "refused" (with ``errno``),
"killed" (with ``signal``), "timeout" or "crashed".
"""

from __future__ import annotations

import os

from .. import syscalls
from ..constants import (
    FAN_CLASS_CONTENT,
    FAN_CLASS_NOTIF,
    FAN_CLOEXEC,
    FAN_REPORT_DFID_NAME,
    FAN_REPORT_FID,
    FAN_REPORT_PIDFD,
    FAN_UNLIMITED_QUEUE,
)
from .child import errno_result, run_in_child

# No kernel defines this fanotify_init flag. A 5.13+ kernel refuses it with
# EINVAL before any capability check when FAN_REPORT_FID is set, while a
# seccomp filter answers EPERM or ENOSYS without looking at the arguments.
UNUSED_INIT_FLAG = 0x80000000

# name -> fanotify_init flags; the probe names are part of the JSON report.
INIT_PROBES = {
    "init-unknown-flag": FAN_CLASS_NOTIF | FAN_REPORT_FID | UNUSED_INIT_FLAG,
    "init-fid": FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME,
    "init-fd": FAN_CLASS_NOTIF,
    "init-content": FAN_CLASS_CONTENT,
    "init-pidfd": FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_REPORT_PIDFD,
    "init-unlimited-queue": FAN_CLASS_NOTIF
    | FAN_REPORT_DFID_NAME
    | FAN_UNLIMITED_QUEUE,
}

PROBE_NAMES = (*INIT_PROBES, "name-to-handle")

DEFAULT_TIMEOUT = 5.0


def try_init(flags: int) -> dict:
    """fanotify_init(*flags*) in this process; the group is closed at once."""
    try:
        fd = syscalls.fanotify_init(flags | FAN_CLOEXEC, os.O_RDONLY)
    except OSError as exc:
        return errno_result(exc, "fanotify_init")
    os.close(fd)

    return {"outcome": "ok"}


def try_name_to_handle(path: str) -> dict:
    """name_to_handle_at(*path*): can this filesystem give file handles?"""
    try:
        handle_type, handle, _ = syscalls.name_to_handle_at(syscalls.AT_FDCWD, path)
    except OSError as exc:
        return errno_result(exc, "name_to_handle_at", path=path)

    return {"outcome": "ok", "handle_type": handle_type, "handle_bytes": len(handle)}


def run_probes(path: str, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Every probe, each in its own child, keyed by probe name."""
    results = {}
    for name, flags in INIT_PROBES.items():
        results[name] = run_in_child(lambda flags=flags: try_init(flags), timeout)
    results["name-to-handle"] = run_in_child(lambda: try_name_to_handle(path), timeout)

    return results

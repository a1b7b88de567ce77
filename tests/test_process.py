"""Process details from /proc, and a cache that never trusts a reused pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import as_unprivileged_user
from fanwatch.process import (
    ProcessCache,
    _parse_stat,
    pidfd_identity,
    read_process,
    start_time,
)

CONTAINER = "a" * 64


def test_read_a_live_process():
    child = subprocess.Popen(
        as_unprivileged_user(["sleep", "30"]), stdin=subprocess.DEVNULL
    )
    try:
        # setpriv execs sleep in place, so wait until it has.
        deadline = time.monotonic() + 5
        info = read_process(child.pid)
        while info.comm != "sleep" and time.monotonic() < deadline:
            time.sleep(0.01)
            info = read_process(child.pid)
    finally:
        child.kill()
        child.wait(timeout=5)
    assert info.comm == "sleep" and not info.gone
    assert (info.uid, info.gid, info.ppid) == (65534, 65534, os.getpid())
    assert info.exe == os.path.realpath(
        subprocess.check_output(["which", "sleep"], text=True).strip()
    )


def test_read_a_gone_process():
    child = subprocess.Popen(["true"])
    child.wait(timeout=5)
    info = read_process(child.pid)
    assert info.gone and info.comm is None and info.pid == child.pid


def test_comm_with_parentheses_and_spaces():
    stat = b"12 (a) b (c) S 7 12 12 0 -1"
    assert _parse_stat(stat) == ("a) b (c", 7)


def test_container_id_from_a_recorded_proc_tree(tmp_path):
    proc = tmp_path / "proc" / "99"
    proc.mkdir(parents=True)
    (proc / "stat").write_bytes(b"99 (app) S 1 99 99 0 -1 " + b"0 " * 20)
    (proc / "status").write_bytes(b"Name:\tapp\nUid:\t5\t5\t5\t5\nGid:\t6\t6\t6\t6\n")
    (proc / "cgroup").write_bytes(
        f"0::/system.slice/docker-{CONTAINER}.scope\n".encode()
    )
    info = read_process(99, proc=str(tmp_path / "proc"))
    assert (info.comm, info.uid, info.gid, info.ppid) == ("app", 5, 6, 1)
    assert info.container_id == CONTAINER and info.exe is None


def test_cache_with_pidfd():
    child = subprocess.Popen(["sleep", "30"])
    pidfd = os.pidfd_open(child.pid)
    try:
        cache = ProcessCache()
        first = cache.lookup(child.pid, pidfd)
        assert first.comm == "sleep" and len(cache) == 1
        assert cache.lookup(child.pid, pidfd) is first
        assert pidfd_identity(pidfd) is not None  # pidfs on this kernel
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=5)
        cache.forget(child.pid)
        # The pidfd outlives the process: the details are not trusted.
        assert cache.lookup(child.pid, pidfd).gone
    finally:
        os.close(pidfd)
        child.kill()
        child.wait(timeout=5)


def test_cache_without_pidfd_keys_on_start_time():
    cache = ProcessCache()
    me = cache.lookup(os.getpid())
    assert me.comm and not me.gone
    assert start_time(os.getpid()) is not None
    assert cache.lookup(os.getpid()) is me


def test_cache_reports_missing_pidfd_as_gone():
    cache = ProcessCache()
    assert cache.lookup(os.getpid(), -1).gone
    assert cache.lookup(0).pid == 0 and not cache.lookup(0).known


def test_exited_process_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=5)
    info = ProcessCache().lookup(child.pid)
    assert info.gone and info.comm is None

"""Helpers the benchmarks share: the machine, private tmpfs mounts, C
builds, and measuring child processes (start, pause, resource usage)."""

from __future__ import annotations

import contextlib
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    return {
        "cpu": cpu,
        "nproc": str(len(os.sched_getaffinity(0))),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "memory": f"{meminfo('MemTotal') // 1024} MiB",
    }


def meminfo(key: str) -> int:
    """A /proc/meminfo field in KiB."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


@contextlib.contextmanager
def private_tmpfs(size: str = "4g") -> Iterator[str]:
    """A tmpfs mounted for the caller only, unmounted (lazily) afterwards."""
    path = tempfile.mkdtemp(prefix="fanwatch-bench-")
    subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={size},mode=0755",
            "fanwatch-bench",
            path,
        ],
        check=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)
        os.rmdir(path)


def build_c(source: str, output_dir: str) -> str:
    """Compile *source* with gcc -O2 into *output_dir*; the binary's path."""
    if shutil.which("gcc") is None:
        sys.exit("bench: gcc is needed to build the C baseline (apt-get install gcc)")
    binary = os.path.join(output_dir, os.path.splitext(os.path.basename(source))[0])
    subprocess.run(["gcc", "-O2", "-Wall", "-o", binary, source], check=True)

    return binary


@contextlib.contextmanager
def sysctl(path: str, value: int) -> Iterator[None]:
    """Set a /proc/sys value for the duration, then restore it."""
    with open(path) as f:
        saved = f.read().strip()
    with open(path, "w") as f:
        f.write(str(value))
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write(saved)


def read_line(stream, timeout: float, want: str = "") -> str:
    """The first line of *stream* containing *want*, within *timeout* seconds.

    Raises RuntimeError with what was read if it does not come.
    """
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], deadline - time.monotonic())
        if not ready:
            break
        line = stream.readline()
        if not line:
            break
        text = line.decode(errors="replace") if isinstance(line, bytes) else line
        seen.append(text)
        if want in text:
            return text
    raise RuntimeError(f"expected a line with {want!r}, got: {''.join(seen)[-2000:]}")


def stop(pid: int) -> None:
    """SIGSTOP *pid* and wait until the kernel shows it stopped."""
    os.kill(pid, signal.SIGSTOP)
    while proc_state(pid) not in ("T", "t"):
        time.sleep(0.001)


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return stat[stat.rfind(")") + 2]


def cpu_ticks(pid: int) -> int:
    """utime + stime of *pid*, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def status_kib(pid: int, key: str) -> int:
    """A /proc/PID/status field (VmRSS, VmHWM) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def wait_exit(
    proc: subprocess.Popen, idle_after: float = 5.0
) -> tuple[float, int, bool]:
    """Wait for *proc* to exit: (monotonic exit time, peak RSS in KiB, done).

    The peak RSS is VmHWM sampled every 50 ms (the rusage of a child would
    include the memory of this process it was forked from). If *proc* uses
    no CPU for *idle_after* seconds it is waiting for events that will not
    come: it is interrupted (SIGINT) and ``done`` is False.
    """
    pidfd = os.pidfd_open(proc.pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    done = True
    peak = 0
    try:
        ticks, idle_since = cpu_ticks(proc.pid), time.monotonic()
        while not poller.poll(50):
            with contextlib.suppress(KeyError, OSError):
                peak = max(peak, status_kib(proc.pid, "VmHWM"))
            now_ticks = cpu_ticks(proc.pid)
            if now_ticks != ticks:
                ticks, idle_since = now_ticks, time.monotonic()
            elif time.monotonic() - idle_since > idle_after and done:
                done = False
                proc.send_signal(signal.SIGINT)
        ended = time.monotonic()
        _, status = os.waitpid(proc.pid, 0)
    finally:
        os.close(pidfd)
    proc.returncode = os.waitstatus_to_exitcode(status)

    return ended, peak, done

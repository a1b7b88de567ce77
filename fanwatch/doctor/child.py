"""Run a function in a forked child with a hard timeout, and report how it ended.

A seccomp filter may kill the caller of a blocked syscall (SCMP_ACT_KILL),
and a self-test may hang on a permission event; neither may take doctor
down with it. The child sends its result back as JSON through a pipe.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import time
from collections.abc import Callable

# How a child ended, beside the outcome its function returned itself.
KILLED = "killed"  # died by a signal (a seccomp kill filter sends SIGSYS)
TIMEOUT = "timeout"  # still running at the deadline; doctor killed it
CRASHED = "crashed"  # exited without a result (an exception in the child)


def errno_result(exc: OSError, step: str, **extra: object) -> dict:
    """The record of a syscall the kernel (or a filter) refused."""
    code = exc.errno or 0
    return {
        "outcome": "refused",
        "step": step,
        "errno": errno.errorcode.get(code, str(code)),
        **extra,
    }


def run_in_child(func: Callable[[], dict], timeout: float) -> dict:
    """Call *func* in a forked child; its dict result, or how the child ended.

    Never raises for anything the child does. The child is killed by pid
    when *timeout* seconds pass.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child_main(func, write_end)

    os.close(write_end)
    try:
        data, finished = _read_until(read_end, time.monotonic() + timeout)
    finally:
        os.close(read_end)
    if not finished:
        _kill(pid)

    return _judge(pid, data, finished)


def _child_main(func: Callable[[], dict], write_end: int) -> None:
    code = 0
    try:
        result = func()
        os.write(write_end, json.dumps(result).encode())
    except BaseException as exc:  # noqa: BLE001 - must never return to the caller
        try:
            os.write(
                write_end,
                json.dumps({"outcome": CRASHED, "detail": repr(exc)}).encode(),
            )
        except BaseException:  # noqa: BLE001
            code = 1
    finally:
        os._exit(code)


def _read_until(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything written to *fd* until EOF; False as second value on timeout."""
    chunks = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            return b"".join(chunks), False
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _judge(pid: int, data: bytes, finished: bool) -> dict:
    _, status = os.waitpid(pid, 0)
    if not finished:
        return {"outcome": TIMEOUT}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"outcome": KILLED, "signal": signal.Signals(sig).name}
    try:
        result = json.loads(data)
    except ValueError:
        return {
            "outcome": CRASHED,
            "detail": f"exit status {os.waitstatus_to_exitcode(status)}",
        }

    return result

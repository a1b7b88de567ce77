"""Shared helpers for the Watcher and ``fanwatch watch`` tests.

Workloads run in child processes so that their events carry a pid other
than the watcher's own (a watcher drops its own events). Every wait has a
deadline; every child is killed in a finally by the code that started it.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from fanwatch.events import FileEvent
from fanwatch.watcher import Watcher

DEADLINE = 5.0
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_py(code: str, *, prefix: Sequence[str] = (), timeout: float = 10) -> None:
    """Run Python *code* in a child (optionally under *prefix*, e.g. setpriv)
    and wait for it; raise if it fails."""
    subprocess.run(
        [*prefix, sys.executable, "-c", code], check=True, timeout=timeout, cwd="/"
    )


def collect(
    watcher: Watcher,
    until: Callable[[list[FileEvent]], bool],
    deadline: float = DEADLINE,
) -> list[FileEvent]:
    """Read events until *until(events)* holds or *deadline* seconds pass.

    Returns every event read; the caller asserts on them (a missed
    condition shows up as a failed assertion with the events in view).
    """
    events: list[FileEvent] = []
    end = time.monotonic() + deadline
    while not until(events):
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        events.extend(watcher.read(min(remaining, 0.5)))

    return events


def drain(watcher: Watcher, quiet: float = 0.3) -> list[FileEvent]:
    """Read until nothing arrives for *quiet* seconds."""
    events: list[FileEvent] = []
    while batch := watcher.read(quiet):
        events.extend(batch)

    return events


def has(kind: str, path: bytes) -> Callable[[list[FileEvent]], bool]:
    """A condition for :func:`collect`: an event of *kind* on *path* arrived."""
    return lambda events: any(kind in e.kinds and e.path == path for e in events)


def find(events: list[FileEvent], kind: str, path: bytes) -> list[FileEvent]:
    return [e for e in events if kind in e.kinds and e.path == path]


class _Child:
    """A child process with pipes, killed and reaped on leaving ``with``."""

    proc: subprocess.Popen

    def __enter__(self) -> _Child:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)
        self.proc.stdin.close()
        self.proc.stdout.close()


class HeldOpen(_Child):
    """A child that opens *path* (for reading), then waits on its stdin
    before exiting, so that it is alive while its event is read."""

    CODE = (
        "import sys\n"
        "f = open(sys.argv[1], 'rb')\n"
        "f.read()\n"
        "print('done', flush=True)\n"
        "sys.stdin.read()\n"
    )

    def __init__(self, path: str | bytes, prefix: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", self.CODE, os.fsdecode(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",
        )
        line = self.proc.stdout.readline()
        assert line == b"done\n", f"child did not open {path!r}"

    @property
    def pid(self) -> int:
        return self.proc.pid


def watch_argv(args: Sequence[str], prefix: Sequence[str] = ()) -> list[str]:
    return [*prefix, sys.executable, "-m", "fanwatch", "watch", *args]


class WatchCli:
    """``fanwatch watch`` in a child process, its output read by threads.

    :meth:`wait_ready` waits for the "fanwatch: watching" line, which the
    command prints once its marks are in place.
    """

    def __init__(
        self, args: Sequence[str], prefix: Sequence[str] = (), cwd: str = "/"
    ) -> None:
        self.proc = subprocess.Popen(
            watch_argv(args, prefix),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": REPO},
        )
        self.stdout: queue.Queue[bytes | None] = queue.Queue()
        self.stderr_lines: list[bytes] = []
        self._stderr_changed = threading.Condition()
        self.out_lines: list[bytes] = []
        self._threads = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump_stdout(self) -> None:
        for line in self.proc.stdout:
            self.stdout.put(line)
        self.stdout.put(None)

    def _pump_stderr(self) -> None:
        for line in self.proc.stderr:
            with self._stderr_changed:
                self.stderr_lines.append(line)
                self._stderr_changed.notify_all()
        with self._stderr_changed:
            self._stderr_changed.notify_all()

    @property
    def stderr(self) -> str:
        return b"".join(self.stderr_lines).decode("utf-8", "replace")

    def wait_ready(self, timeout: float = 10) -> None:
        end = time.monotonic() + timeout
        with self._stderr_changed:
            while not any(
                line.startswith(b"fanwatch: watching") for line in self.stderr_lines
            ):
                remaining = end - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"fanwatch watch did not start: {self.stderr}")
                self._stderr_changed.wait(min(remaining, 0.1))

    def lines_until(
        self, until: Callable[[list[bytes]], bool], timeout: float = DEADLINE
    ) -> list[bytes]:
        """Read stdout lines until *until(all lines so far)* holds, the
        output ends, or *timeout* passes; return all lines read so far."""
        end = time.monotonic() + timeout
        while not until(self.out_lines):
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self.stdout.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                self.stdout.put(None)
                break
            self.out_lines.append(line)

        return self.out_lines

    def records_until(
        self, until: Callable[[list[dict]], bool], timeout: float = DEADLINE
    ) -> list[dict]:
        """Like :meth:`lines_until` for ``--json`` output, parsed."""
        self.lines_until(lambda lines: until([json.loads(x) for x in lines]), timeout)

        return [json.loads(line) for line in self.out_lines]

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        """Send *sig*, wait for the exit, read the rest; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 10) -> int:
        code = self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout)
        self.lines_until(lambda _lines: False, timeout=0.5)

        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def __enter__(self) -> WatchCli:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def error_lines(stderr: str) -> list[str]:
    """The lines of *stderr* other than hints."""
    return [
        line
        for line in stderr.splitlines()
        if line and not line.startswith("fanwatch: hint:")
    ]


def send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class Puppet(_Child):
    """A child that writes the files named on its stdin, one per line, and
    answers "ok" after each: its pid is known before it does anything."""

    CODE = (
        "import sys\n"
        "for line in sys.stdin:\n"
        "    open(line.rstrip('\\n'), 'ab').write(b'x')\n"
        "    print('ok', flush=True)\n"
    )

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def write(self, path: str) -> None:
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "ok\n"

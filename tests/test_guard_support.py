"""Helpers for the guard tests: start a real guard, wait for it, stop it.

Every guard started here is stopped by its pid in a ``finally`` (SIGTERM,
then SIGKILL), and every child process runs with a timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import REPO

START_TIMEOUT = 15.0


class RunningGuard:
    """``fanwatch guard`` as a child process; use as a context manager."""

    def __init__(
        self,
        workdir,
        guarded,
        policy=None,
        args=(),
        env=None,
        log=True,
        policy_path=None,
    ):
        self.workdir = str(workdir)
        self.guarded = guarded
        self.policy_path = policy_path or os.path.join(self.workdir, "policy.toml")
        self.ready_path = os.path.join(self.workdir, "ready")
        self.log_path = os.path.join(self.workdir, "decisions.jsonl")
        self.err_path = os.path.join(self.workdir, "guard.err")
        self.out_path = os.path.join(self.workdir, "guard.out")
        if policy is not None:
            self.write_policy(policy)
        argv = [
            sys.executable,
            "-m",
            "fanwatch",
            "guard",
            "--ready-file",
            self.ready_path,
        ]
        if policy is not None or policy_path:
            argv += ["--policy", self.policy_path]
        if log is True:
            argv += ["--log", self.log_path]
        elif log:
            argv += ["--log", log]
        self.argv = argv + list(args) + ([guarded] if guarded else [])
        self.env = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def write_policy(self, text: str) -> None:
        with open(self.policy_path, "w") as f:
            f.write(text)

    def __enter__(self) -> RunningGuard:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.kill()

    def start(self) -> None:
        out = open(self.out_path, "wb")
        err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, env=self.env)
        out.close()
        err.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(self.ready_path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"guard did not get ready: {self.stderr()}")
            time.sleep(0.02)

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stderr(self) -> str:
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def stdout(self) -> str:
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def records(self) -> list[dict]:
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def wait_for_records(self, predicate, timeout: float = 5.0) -> list[dict]:
        """The log once *predicate(records)* holds (the writer is lazy)."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.records()
            if predicate(records) or time.monotonic() > deadline:
                return records
            time.sleep(0.02)

    def wait_for_stderr(self, text: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in (err := self.stderr()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return err


OPEN_SCRIPT = """
import errno, os, sys
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDONLY))
        print("OK")
    except OSError as e:
        print(errno.errorcode[e.errno])
"""


def try_open(*paths: str, prefix=(), timeout: float = 10.0) -> list[str]:
    """Open each path in a child process: "OK" or the errno name, per path."""
    argv = [*prefix, sys.executable, "-c", OPEN_SCRIPT, *paths]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=True
    )
    return done.stdout.split()


def make_file(path: str, text: str = "data\n") -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path

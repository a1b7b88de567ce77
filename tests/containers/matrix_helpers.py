"""Helpers for the container matrix: seccomp filters made by the fanwatch CLI,
doctor's JSON verdict from inside a container, and a driver that runs
``fanwatch watch --json`` while the host and the container write files."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass

from .harness import REPO, Bind, python_args

PROFILES = os.path.join(REPO, "tests", "profiles")
DOCKER_PROFILE = os.path.join(PROFILES, "docker-default.json")
PODMAN_PROFILE = os.path.join(PROFILES, "podman-default.json")

# Podman's default set (containers.conf(5), default_capabilities): Docker's
# without AUDIT_WRITE, MKNOD and NET_RAW.
PODMAN_DROPPED_CAPS = ("AUDIT_WRITE", "MKNOD", "NET_RAW")

# Where the host's directory appears in every matrix container.
DATA = "/data"


def fanwatch_on_host(*argv: str) -> subprocess.CompletedProcess:
    """Run ``fanwatch *argv`` on the host, as a user of the CLI would."""
    return subprocess.run(
        [sys.executable, "-m", "fanwatch", *argv],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
        cwd=REPO,
    )


@functools.cache
def resolved(profile: str, cap_add: tuple = (), cap_drop: tuple = ()) -> dict:
    """The OCI ``linux.seccomp`` object ``fanwatch seccomp resolve`` writes for
    *profile* and Docker's default capabilities plus *cap_add*, minus
    *cap_drop*."""
    argv = ["seccomp", "resolve", profile, "-o", "-"]
    for cap in cap_add:
        argv += ["--cap-add", cap]
    for cap in cap_drop:
        argv += ["--cap-drop", cap]
    done = fanwatch_on_host(*argv)
    assert done.returncode == 0, done.stderr

    return json.loads(done.stdout)


def patched(profile: str, job: str, out: str) -> str:
    """Write ``fanwatch seccomp patch PROFILE --for JOB -o OUT``; return OUT."""
    done = fanwatch_on_host("seccomp", "patch", profile, "--for", job, "-o", out)
    assert done.returncode == 0, done.stderr

    return out


def doctor(container, job: str, path: str | None = None, **spec) -> dict:
    """Doctor's JSON report for *job*, run inside a container of *spec*.

    Fails the test unless the report parses and the exit status is the one
    documented for its verdict (0 when the job can run, 3 when not).
    """
    argv = [sys.executable, "-m", "fanwatch", "doctor", "--json", "--for", job]
    result = container.run([*argv, *([path] if path else [])], **spec)
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    assert report["job"] == job
    assert result.returncode == (0 if report["verdict"]["ok"] else 3), result

    return report


def finding(report: dict, finding_id: str) -> dict:
    """The finding *finding_id* of *report* (the test fails if it is absent)."""
    found = [item for item in report["findings"] if item["id"] == finding_id]
    assert found, f"no {finding_id} in {[item['id'] for item in report['findings']]}"

    return found[0]


# Runs ``fanwatch watch --json -t 10 ARGV[2:]``. Prints "ready" once watch
# says it is watching. On SIGUSR1 (sent after the host wrote its file) it
# writes ARGV[1] from inside the container, relays watch's events until one
# for that file arrives, stops watch with SIGINT and prints a last line
# {"driver_pid": ..., "watch_status": ...}. Watch's stderr goes to stderr.
WATCH_DRIVER = r"""
import json, os, signal, subprocess, sys, threading
inside, args = sys.argv[1], sys.argv[2:]
go = threading.Event()
signal.signal(signal.SIGUSR1, lambda *_: go.set())
watch = subprocess.Popen(
    [sys.executable, "-m", "fanwatch", "watch", "--json", "-t", "10", *args],
    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
)
status = watch.stderr.readline()
sys.stderr.write(status)
if not status.startswith("fanwatch: watching"):
    sys.stderr.write(watch.stderr.read())
    sys.exit(watch.wait())
threading.Thread(target=lambda: sys.stderr.write(watch.stderr.read())).start()
print("ready", flush=True)
if not go.wait(10):
    watch.kill()
    sys.exit(5)
with open(inside, "w") as new:
    new.write("inside")
for line in watch.stdout:
    print(line, end="", flush=True)
    if json.loads(line).get("path") == inside:
        break
watch.send_signal(signal.SIGINT)
code = watch.wait(5)
print(json.dumps({"driver_pid": os.getpid(), "watch_status": code}), flush=True)
"""


@dataclass
class WatchRun:
    """What ``fanwatch watch --json`` reported in a container."""

    events: list[dict]
    driver_pid: int
    watch_status: int
    stderr: str

    def for_path(self, path: str) -> list[dict]:
        """The events whose path is exactly *path*."""
        return [event for event in self.events if event["path"] == path]


def watch_writes(container, host_dir: str, watch_argv: list[str], **spec) -> WatchRun:
    """Run ``fanwatch watch --json WATCH_ARGV`` in a container with *host_dir*
    bound writable at /data; once it watches, the host writes
    ``host.txt`` there, then the container writes ``inside.txt``.

    Fails the test when watch does not start or stop cleanly.
    """
    running = container.start(
        [*python_args(WATCH_DRIVER), f"{DATA}/inside.txt", *watch_argv],
        binds=[Bind(host_dir, DATA, writable=True)],
        **spec,
    )
    running.wait_for_output("ready", timeout=15)
    with open(os.path.join(host_dir, "host.txt"), "w") as new:
        new.write("host")
    container.runtime.runc("kill", running.id, "USR1")
    result = running.wait(15)

    assert result.returncode == 0, result
    *lines, last = result.stdout.splitlines()[1:]
    summary = json.loads(last)
    # 130: watch stopped by SIGINT, as documented (clean stop, no traceback).
    assert summary["watch_status"] == 130, result
    assert "Traceback" not in result.stderr, result.stderr

    return WatchRun(
        [json.loads(line) for line in lines],
        summary["driver_pid"],
        summary["watch_status"],
        result.stderr,
    )

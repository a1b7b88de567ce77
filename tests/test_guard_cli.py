"""fanwatch guard's command line and start-up failures, on the real kernel.

Each guard here runs as a child process on a private tmpfs, with a hard
timeout, and is killed by its pid in a finally if it is still running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from conftest import REPO, without_sys_admin

pytestmark = pytest.mark.timeout(60)

PIDS_CGROUP = "/sys/fs/cgroup/pids"


def run_guard(*args: str, prefix=(), timeout: float = 20.0):
    """Run ``fanwatch guard ARGS``; (exit code, stderr). A guard that is
    still running after *timeout* is killed and the test fails."""
    argv = [*prefix, sys.executable, "-m", "fanwatch", "guard", *args]
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the guard kept running: {' '.join(args)}")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    return proc.returncode, err


def test_too_many_workers_is_a_usage_error(tmpfs):
    code, err = run_guard("--workers", "100000", tmpfs)
    assert code == 2
    assert err == "fanwatch: --workers must be between 1 and 64\n"


@pytest.mark.parametrize("count", ["0", "65"])
def test_workers_outside_the_range_are_refused(tmpfs, count):
    assert run_guard("--workers", count, tmpfs)[0] == 2


def test_a_thread_that_cannot_start_releases_the_group_before_ready(tmpfs, tmp_path):
    # A pids cgroup that allows the interpreter and two more tasks: the log
    # writer and one worker start, the second worker cannot.
    if not os.path.isdir(PIDS_CGROUP):
        pytest.skip("no pids cgroup controller at /sys/fs/cgroup/pids")
    cgroup = f"{PIDS_CGROUP}/fanwatch-test-{os.getpid()}"
    os.mkdir(cgroup)
    try:
        with open(f"{cgroup}/pids.max", "w") as f:
            f.write("3")
        enter = f'echo $$ > {cgroup}/cgroup.procs && exec "$@"'
        ready = tmp_path / "ready"
        code, err = run_guard(
            "--ready-file", str(ready), tmpfs, prefix=["sh", "-c", enter, "sh"]
        )
    finally:
        os.rmdir(cgroup)
    assert code == 1
    assert err.startswith("fanwatch: cannot start the guard's threads: ")
    assert "ready" not in err and "Traceback" not in err
    assert not ready.exists()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--deadline", "nan"),
        ("--deadline", "inf"),
        ("--deadline", "-inf"),
        ("--deadline", "0"),
        ("--deadline", "1e12"),
        ("--watchdog", "nan"),
        ("--watchdog", "inf"),
        ("--watchdog", "0.01"),
        ("--watchdog", "1e9"),
    ],
)
def test_non_finite_or_absurd_times_are_usage_errors(tmpfs, option, value):
    code, err = run_guard(f"{option}={value}", tmpfs)
    assert code == 2
    assert f"argument {option}: must be between" in err


def test_without_cap_sys_admin_permission_events_are_not_supported(tmpfs):
    code, err = run_guard(tmpfs, prefix=without_sys_admin([]))
    assert code == 3
    lines = err.splitlines()
    assert lines[0].startswith("fanwatch: permission events are not supported here")
    assert "fanwatch doctor --for guard" in lines[1]
    assert len(lines) == 2


def test_root_of_a_user_namespace_cannot_guard_its_own_tmpfs(tmp_path):
    # CAP_SYS_ADMIN inside a user namespace, over a tmpfs that namespace
    # mounted: still no permission events (initial user namespace only).
    guarded = tmp_path / "mnt"
    guarded.mkdir()
    inner = f'mount -t tmpfs x {guarded} && exec "$@"'
    prefix = ["unshare", "-Urm", "sh", "-c", inner, "sh"]
    code, err = run_guard(str(guarded), prefix=prefix)
    assert code == 3
    assert "permission events are not supported here" in err


def test_a_missing_path_is_a_usage_error(tmpfs):
    missing = f"{tmpfs}/missing"
    code, err = run_guard(tmpfs, missing)
    assert code == 2
    assert err == f"fanwatch: {missing}: no such file or directory\n"

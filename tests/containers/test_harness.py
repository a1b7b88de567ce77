"""The container harness applies what it claims, and the fanotify facts the
container tests rely on hold inside its containers."""

from __future__ import annotations

import errno
import os
import platform
import re
import subprocess
import sys

import pytest

from fanwatch.constants import (
    FAN_CLASS_NOTIF,
    FAN_MARK_INODE,
    FAN_REPORT_DFID_NAME,
    FAN_REPORT_FID,
)

from .harness import (
    DOCKER_DEFAULT_CAPS,
    Bind,
    ContainerTimeout,
    REPO,
    IdMap,
    Runtime,
    capability_mask,
    cgroup_dirs,
    host_mount_points,
    proc_status,
    python_args,
)

FID_GROUP = FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_REPORT_FID

# Prints "ok" or "errno N" for fanotify_init(int(argv[1])).
INIT_PROBE = """
import sys
from fanwatch import syscalls
try:
    fd = syscalls.fanotify_init(int(sys.argv[1]))
except OSError as exc:
    print("errno", exc.errno)
else:
    print("ok")
"""

# An FID group with a mark of kind argv[2] on argv[1]; prints "ready", then
# "event <name> <pid>" per event until one for argv[3] arrives (10 s at most).
WATCH_FOR_NAME = """
import sys, time
from fanwatch.constants import *
from fanwatch.group import Group
path, kind, wanted = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
with Group(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_REPORT_FID) as group:
    group.mark(path, FAN_CREATE | FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD, kind=kind)
    print("ready", flush=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with group.read(timeout=1) as batch:
            for event in batch:
                print("event", event.name.decode(), event.pid, flush=True)
                if event.name == wanted:
                    sys.exit(0)
sys.exit(3)
"""

# Tries a filesystem mark from an FID group on each of argv[1:]; prints
# "<path> ok" or "<path> errno N".
FILESYSTEM_MARKS = """
import sys
from fanwatch.constants import *
from fanwatch.group import Group
with Group(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_REPORT_FID) as group:
    for path in sys.argv[1:]:
        try:
            group.mark(path, FAN_CREATE, kind=FAN_MARK_FILESYSTEM)
        except OSError as exc:
            print(path, "errno", exc.errno)
        else:
            print(path, "ok")
"""


def status_of(result) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    return proc_status(result.stdout)


def kernel_at_least(*wanted: int) -> bool:
    numbers = re.match(r"(\d+)\.(\d+)", platform.release())
    return tuple(int(part) for part in numbers.groups()) >= wanted


# -- what the harness applies ------------------------------------------------


@pytest.mark.parametrize(
    "options, expected",
    [
        ({}, DOCKER_DEFAULT_CAPS),
        ({"cap_add": ["SYS_ADMIN"]}, (*DOCKER_DEFAULT_CAPS, "SYS_ADMIN")),
        ({"caps": ()}, ()),
    ],
    ids=["docker-default", "cap-add-sys-admin", "drop-all"],
)
def test_capability_sets_match_the_request(container, options, expected):
    status = status_of(container.run(["cat", "/proc/self/status"], **options))

    mask = capability_mask(expected)
    assert int(status["CapEff"], 16) == mask
    assert int(status["CapPrm"], 16) == mask
    assert int(status["CapBnd"], 16) == mask
    assert int(status["CapInh"], 16) == 0
    assert int(status["CapAmb"], 16) == 0


def test_docker_default_caps_are_dockers_known_mask():
    # The mask `docker run` shows in CapEff for root with default caps.
    assert capability_mask(DOCKER_DEFAULT_CAPS) == 0xA80425FB


def test_non_root_user_keeps_no_effective_caps(container):
    result = container.run(
        ["sh", "-c", "id -u; id -g; cat /proc/self/status"], user=(1000, 1000)
    )
    assert result.returncode == 0, result.stderr
    uid, gid, status = result.stdout.split("\n", 2)
    fields = proc_status(status)

    assert (uid, gid) == ("1000", "1000")
    assert int(fields["CapEff"], 16) == 0
    assert int(fields["CapBnd"], 16) == capability_mask(DOCKER_DEFAULT_CAPS)


@pytest.mark.parametrize("enabled", [False, True])
def test_no_new_privileges_is_an_option(container, enabled):
    status = status_of(
        container.run(["cat", "/proc/self/status"], no_new_privileges=enabled)
    )

    assert status["NoNewPrivs"] == str(int(enabled))


@pytest.mark.parametrize("errno_ret", [errno.EPERM, errno.ENOSYS])
def test_seccomp_filter_refuses_fanotify_init(container, errno_ret):
    seccomp = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["fanotify_init"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno_ret,
            },
        ],
    }
    status = status_of(container.run(["cat", "/proc/self/status"], seccomp=seccomp))
    # FID group: the kernel would allow it, so the errno is the filter's.
    probe = container.run([*python_args(INIT_PROBE), str(FID_GROUP)], seccomp=seccomp)

    assert status["Seccomp"] == "2"
    assert probe.stdout == f"errno {errno_ret}\n", probe.stderr


def test_no_seccomp_filter_when_none(container):
    status = status_of(container.run(["cat", "/proc/self/status"], seccomp=None))

    assert status["Seccomp"] == "0"


def test_user_namespace_mapping_is_visible(container):
    mapping = IdMap(container_id=0, host_id=100000, size=65536)
    result = container.run(
        ["cat", "/proc/self/uid_map", "/proc/self/gid_map"], userns=mapping
    )

    assert result.returncode == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["0", "100000", "65536"],
        ["0", "100000", "65536"],
    ]


def test_user_namespace_root_can_mount_its_own_tmpfs(container):
    result = container.run(
        [
            "sh",
            "-c",
            "mkdir /tmp/own && mount -t tmpfs own /tmp/own && "
            "grep ' /tmp/own ' /proc/self/mounts",
        ],
        userns=IdMap(),
        cap_add=["SYS_ADMIN"],
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("own /tmp/own tmpfs")


def test_without_user_namespace_the_map_is_the_initial_one(container):
    result = container.run(["cat", "/proc/self/uid_map"])

    assert result.stdout.split() == ["0", "0", "4294967295"]


@pytest.mark.parametrize(
    "marker, check",
    [
        (
            "docker",
            "test -e /.dockerenv && test ! -e /run/.containerenv "
            '&& test -z "$container"',
        ),
        (
            "podman",
            "test -e /run/.containerenv && test ! -e /.dockerenv "
            '&& test "$container" = podman',
        ),
        (None, "test ! -e /.dockerenv && test ! -e /run/.containerenv"),
    ],
)
def test_runtime_marker(container, marker, check):
    result = container.run(["sh", "-c", check], marker=marker)

    assert result.returncode == 0, result.stderr


def test_host_write_into_rw_bind_is_seen_inside(container, tmpfs):
    script = (
        "echo ready; while [ ! -e /data/flag ]; do sleep 0.05; done; "
        "cat /data/flag; echo inside > /data/reply"
    )
    running = container.start(
        ["sh", "-c", script], binds=[Bind(tmpfs, "/data", writable=True)]
    )
    running.wait_for_output("ready")
    with open(os.path.join(tmpfs, "flag"), "w") as flag:
        flag.write("from the host\n")
    result = running.wait(10)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "ready\nfrom the host\n"
    with open(os.path.join(tmpfs, "reply")) as reply:
        assert reply.read() == "inside\n"


def test_ro_bind_refuses_writes(container, tmpfs):
    result = container.run(["touch", "/data/file"], binds=[Bind(tmpfs, "/data")])

    assert result.returncode != 0
    assert "Read-only file system" in result.stderr


def test_interpreter_and_repo_reachable_as_non_root(container):
    result = container.run(
        python_args("import fanwatch, sys; print(fanwatch.__file__)"),
        user=(1000, 1000),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == os.path.join(REPO, "fanwatch", "__init__.py") + "\n"


def test_container_mounts_never_appear_on_the_host(container, container_runtime):
    running = container.start(["sh", "-c", "echo ready; sleep 30"])
    running.wait_for_output("ready")

    points = host_mount_points()
    running.remove()

    assert running.bundle.startswith(container_runtime.base)
    assert not [p for p in points if p.startswith(container_runtime.base)]


def test_stop_sends_the_signal_to_a_process_that_handles_it(container):
    running = container.start(
        ["sh", "-c", "trap 'exit 7' TERM; echo ready; sleep 30 & wait"]
    )
    running.wait_for_output("ready")

    assert running.stop("TERM", grace=5).returncode == 7


def test_stop_escalates_to_sigkill(container):
    # pid 1 without a handler ignores SIGTERM, as in any container.
    running = container.start(["sh", "-c", "echo ready; sleep 30"])
    running.wait_for_output("ready")

    assert running.stop("TERM", grace=0.5).returncode == 128 + 9


def test_timeout_kills_and_removes_everything(container, container_runtime):
    running = container.start(["sleep", "60"])
    with pytest.raises(ContainerTimeout) as raised:
        running.wait(timeout=1)

    assert raised.value.result.returncode != 0
    assert running.id not in container_runtime.list_ids()
    assert not os.path.exists(running.bundle)
    assert not cgroup_dirs(f"{container_runtime.cgroup_parent}/{running.id}")
    assert not [p for p in host_mount_points() if p.startswith(running.bundle)]


# -- fanotify facts inside containers ---------------------------------------


def test_fid_inode_mark_sees_host_write_with_docker_defaults(container, tmpfs):
    running = container.start(
        [*python_args(WATCH_FOR_NAME), "/data", str(FAN_MARK_INODE), "hello.txt"],
        binds=[Bind(tmpfs, "/data", writable=True)],
    )
    running.wait_for_output("ready")
    with open(os.path.join(tmpfs, "hello.txt"), "w") as new:
        new.write("hi")
    result = running.wait(15)

    assert result.returncode == 0, result.stdout + result.stderr
    # The writer is outside the container's pid namespace: pid 0.
    assert "event hello.txt 0\n" in result.stdout


def test_fd_group_needs_sys_admin_under_docker_defaults(container):
    result = container.run([*python_args(INIT_PROBE), str(FAN_CLASS_NOTIF)])

    assert result.stdout == f"errno {errno.EPERM}\n", result.stderr


def test_fid_group_allowed_for_non_root_without_filter(container):
    result = container.run(
        [*python_args(INIT_PROBE), str(FID_GROUP)], user=(1000, 1000)
    )

    assert result.stdout == "ok\n", result.stderr


@pytest.mark.skipif(
    not kernel_at_least(6, 16),
    reason="filesystem marks for a user-namespace admin need Linux 6.16",
)
def test_user_namespace_filesystem_mark_only_on_own_tmpfs(container, tmpfs):
    script = 'mkdir /tmp/own && mount -t tmpfs own /tmp/own && exec "$@"'
    result = container.run(
        ["sh", "-c", script, "sh", *python_args(FILESYSTEM_MARKS), "/tmp/own", "/data"],
        userns=IdMap(),
        cap_add=["SYS_ADMIN"],
        binds=[Bind(tmpfs, "/data", writable=True)],
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"/tmp/own ok\n/data errno {errno.EPERM}\n"


# -- cleanup after a killed session and the runc requirement ------------------

# Starts a container from a fresh Runtime, prints its base directory and
# container id, then sleeps until it is killed.
ABANDONED_SESSION = """
import sys, time
sys.path.insert(0, sys.argv[1])
from containers.harness import Runtime, Spec
runtime = Runtime()
running = runtime.start(Spec(args=["sh", "-c", "echo ready; sleep 60"]))
running.wait_for_output("ready")
print(runtime.base, running.id, flush=True)
time.sleep(60)
"""


def test_runtime_sweeps_what_a_killed_session_left(container_runtime):
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    session = subprocess.Popen(
        [sys.executable, "-c", ABANDONED_SESSION, tests_dir],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base, container_id = session.stdout.readline().split()
    finally:
        session.kill()
        session.wait()
        session.stdout.close()
    state = os.path.join(base, "state")
    listed = subprocess.run(
        ["runc", "--root", state, "list", "--quiet"], capture_output=True, text=True
    ).stdout.split()

    Runtime().close()

    assert listed == [container_id]
    assert not os.path.exists(base)
    assert not cgroup_dirs(os.path.basename(base))


def run_pytest_without_runc(ci: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": "/nonexistent", "CI": ci}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rs",
            f"{__file__}::test_no_seccomp_filter_when_none",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def test_missing_runc_fails_in_ci():
    done = run_pytest_without_runc("true")

    assert done.returncode == 1, done.stdout
    assert "runc is required for the container tests in CI" in done.stdout


def test_missing_runc_skips_outside_ci_naming_runc():
    done = run_pytest_without_runc("")

    assert done.returncode == 0, done.stdout
    assert "SKIPPED" in done.stdout
    assert "runc is not available ('runc --version' failed)" in done.stdout

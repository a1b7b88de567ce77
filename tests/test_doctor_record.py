"""``fanwatch doctor --record DIR`` on this machine: replaying what it wrote
gives the report of the live run, and the tree holds no more than doctor read."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from conftest import as_unprivileged_user
from fanwatch.cli import exitcodes
from fanwatch.doctor import replay

DOCTOR = [sys.executable, "-m", "fanwatch", "doctor"]
SECRET = "hunter2-not-for-the-tree"

# Holds an FID group with an inode mark on argv[1]; prints its pid when ready.
LISTENER = """
import os, sys, time
from fanwatch.constants import FAN_CREATE, FAN_REPORT_DFID_NAME
from fanwatch.group import Group
group = Group(FAN_REPORT_DFID_NAME)
group.mark(sys.argv[1], FAN_CREATE)
print(group.fileno(), flush=True)
time.sleep(30)
"""


def doctor(*args: str, prefix=lambda argv: argv, env=None) -> tuple[int, dict]:
    result = subprocess.run(
        prefix([*DOCTOR, "--json", *args]),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.stderr == "", result.stderr

    return result.returncode, json.loads(result.stdout)


def assert_same_judgement(live: dict, replayed: dict) -> None:
    for key in ("verdict", "findings", "facts", "probes", "selftests"):
        assert replayed[key] == live[key], key


def tree_files(tree: str) -> dict[str, bytes]:
    found = {}
    for top, _, names in os.walk(tree):
        for name in names:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                with open(path, "rb") as file:
                    found[os.path.relpath(path, tree)] = file.read()

    return found


@pytest.fixture
def listener(tmpfs):
    """(pid, fd) of another process holding a fanotify group."""
    child = subprocess.Popen(
        [sys.executable, "-c", LISTENER, tmpfs], stdout=subprocess.PIPE, text=True
    )
    try:
        yield child.pid, int(child.stdout.readline())
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_replay_of_a_recording_is_the_live_report(tmpfs, tmp_path, listener):
    tree = str(tmp_path / "tree")
    env = dict(os.environ, container="fanwatch-test", FANWATCH_SECRET=SECRET)

    code, live = doctor("--record", tree, tmpfs, env=env)
    replay_code, replayed = doctor("--replay", tree)

    assert replay_code == code == exitcodes.OK
    assert_same_judgement(live, replayed)
    pid, fd = listener
    assert [g["pid"] for g in live["facts"]["listeners"]].count(pid) == 1
    assert (
        "container=fanwatch-test in own environment"
        in (live["facts"]["runtime"]["evidence"])
    )


def test_recording_keeps_only_what_the_facts_use(tmpfs, tmp_path, listener):
    tree = str(tmp_path / "tree")
    env = dict(os.environ, container="fanwatch-test", FANWATCH_SECRET=SECRET)
    _, live = doctor("--record", tree, tmpfs, env=env)
    files = tree_files(tree)

    pid, fd = listener
    link = os.path.join(tree, f"proc/{pid}/fd/{fd}")
    assert os.readlink(link) == "anon_inode:[fanotify]"
    assert os.listdir(os.path.dirname(link)) == [str(fd)]
    assert files["proc/self/environ"] == b"container=fanwatch-test\0"
    assert not [name for name, data in files.items() if SECRET.encode() in data]
    config = gzip.decompress(files["proc/config.gz"]).splitlines()
    assert config and all(b"CONFIG_FANOTIFY" in line for line in config)
    # Per-process directories only for listeners (and pid 1's environ).
    listeners = {str(group["pid"]) for group in live["facts"]["listeners"]}
    top = {name.split("/")[1] for name in files if name.startswith("proc/")}
    assert top - listeners <= {"self", "sys", "version", "config.gz", "1"}
    assert json.loads(files["recorded.json"])["path"] == tmpfs


def test_unlistable_fd_dirs_stay_unlistable(tmpfs, listener):
    # As nobody, the fd directories of root's processes cannot be listed.
    tree = os.path.join(tmpfs, "tree")
    prefix = as_unprivileged_user

    code, live = doctor("--for", "guard", "--record", tree, tmpfs, prefix=prefix)
    replay_code, replayed = doctor("--for", "guard", "--replay", tree)

    assert replay_code == code == exitcodes.NOT_SUPPORTED
    assert_same_judgement(live, replayed)
    assert live["facts"]["listeners_complete"] is False
    pid, _ = listener
    assert os.path.isfile(os.path.join(tree, f"proc/{pid}/fd"))
    assert live["verdict"]["blocked_by"][0] == "no-cap-sys-admin"


@pytest.mark.parametrize("existing", ["file-inside", "a-file"])
def test_record_refuses_a_directory_that_is_not_empty(tmp_path, existing):
    target = tmp_path / "tree"
    if existing == "file-inside":
        target.mkdir()
        (target / "keep").write_text("keep me")
        why = "exists and is not empty"
    else:
        target.write_text("keep me")
        why = "File exists"

    result = subprocess.run(
        [*DOCTOR, "--record", str(target)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == exitcodes.FAILURE
    assert result.stdout == ""
    assert result.stderr == f"fanwatch: doctor: --record {target}: {why}\n"
    kept = target / "keep" if existing == "file-inside" else target
    assert kept.read_text() == "keep me"


def test_record_with_replay_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [*DOCTOR, "--record", str(tmp_path / "a"), "--replay", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == exitcodes.USAGE
    assert result.stderr.count("\n") == 1
    assert "--record and --replay cannot be used together" in result.stderr
    assert not (tmp_path / "a").exists()


# -- trees recorded in runc containers (tests/fixtures/proc/record_runc.py) ---

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "proc")

# fixture -> job, (ok, mode, blocked_by), finding ids in order, runtime, uid_map.
RECORDED = {
    "runc-docker-default": (
        "watch",
        (False, "none", ["seccomp-blocks-fanotify-init"]),
        ["seccomp-blocks-fanotify-init", "no-cap-sys-admin", "no-cap-dac-read-search"],
        "docker",
        ["0 0 4294967295"],
    ),
    "runc-docker-sys-admin": (
        "guard",
        (True, "full", []),
        ["no-cap-dac-read-search"],
        "docker",
        ["0 0 4294967295"],
    ),
    "runc-podman-5.5": (
        "watch",
        (True, "unprivileged", []),
        ["no-cap-sys-admin", "queue-limit", "no-cap-dac-read-search"],
        "podman",
        ["0 0 4294967295"],
    ),
    "runc-userns": (
        "watch-mount",
        (False, "limited", ["user-namespace"]),
        ["user-namespace", "queue-limit", "no-cap-dac-read-search"],
        "docker",
        ["0 100000 65536"],
    ),
}


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_runc_tree_verdict_and_findings(name):
    job, (ok, mode, blocked_by), finding_ids, runtime, uid_map = RECORDED[name]

    report = replay(os.path.join(FIXTURES, name), job)

    verdict = report["verdict"]
    assert (verdict["ok"], verdict["mode"], verdict["blocked_by"]) == (
        ok,
        mode,
        blocked_by,
    )
    assert [finding["id"] for finding in report["findings"]] == finding_ids
    facts = report["facts"]
    assert facts["runtime"]["name"] == runtime
    assert facts["user_namespace"]["uid_map"] == uid_map
    # The judged directory was recorded, and so were the self-tests.
    assert facts["path"]["exists"] is True
    assert report["selftests"]


def test_recorded_docker_default_probe_shows_the_filter():
    report = replay(os.path.join(FIXTURES, "runc-docker-default"), "watch")

    # A filter's EPERM where the kernel would have said EINVAL.
    assert report["probes"]["init-unknown-flag"]["errno"] == "EPERM"
    assert report["facts"]["seccomp"]["mode"] == 2

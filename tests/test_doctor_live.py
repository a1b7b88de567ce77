"""fanwatch doctor on this machine: as root, without CAP_SYS_ADMIN, as an
unprivileged uid, and under seccomp filters that refuse fanotify_init."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

from conftest import as_unprivileged_user, without_sys_admin
from fanwatch.cli import exitcodes
from seccomp_launcher import under_seccomp

DOCTOR = [sys.executable, "-m", "fanwatch", "doctor"]


def doctor(*args: str, prefix=lambda argv: argv) -> tuple[int, dict]:
    """Run doctor --json (through *prefix*); its exit code and report."""
    result = subprocess.run(
        prefix([*DOCTOR, "--json", *args]), capture_output=True, text=True, timeout=90
    )
    assert result.stderr == "", result.stderr

    return result.returncode, json.loads(result.stdout)


def ids(report: dict) -> set[str]:
    return {f["id"] for f in report["findings"]}


def private_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as file:
        return [line for line in file if "fanwatch-doctor" in line]


def test_root_everything_works(tmpfs):
    code, report = doctor(tmpfs, "--for", "guard")

    assert code == exitcodes.OK
    assert report["verdict"]["summary"] == "everything works: full privilege"
    assert all(r["outcome"] == "ok" for r in report["selftests"].values()), report[
        "selftests"
    ]
    assert report["selftests"]["permission"]["where"] == "private tmpfs"
    assert report["selftests"]["inode-mark"]["pid_reported"] is True
    assert report["probes"]["init-unknown-flag"]["errno"] == "EINVAL"
    assert report["facts"]["path"]["fs_type"] == "tmpfs"
    # The self-tests cleaned up under PATH, and their tmpfs died with them.
    assert os.listdir(tmpfs) == []
    assert private_mounts() == []


def test_root_text_output_starts_with_the_verdict(tmpfs):
    result = subprocess.run(
        [*DOCTOR, tmpfs], capture_output=True, text=True, timeout=90
    )

    assert result.returncode == exitcodes.OK
    assert result.stdout.splitlines()[0] == "verdict: everything works: full privilege"
    assert "permission       ok" in result.stdout


@pytest.mark.parametrize(
    ("job", "code"),
    [
        ("watch", exitcodes.OK),
        ("watch-mount", exitcodes.NOT_SUPPORTED),
        ("guard", exitcodes.NOT_SUPPORTED),
    ],
)
def test_without_sys_admin(tmpfs, job, code):
    rc, report = doctor(tmpfs, "--for", job, prefix=without_sys_admin)

    assert rc == code
    assert report["verdict"]["jobs"] == {
        "watch": True,
        "watch-mount": False,
        "guard": False,
    }
    assert "no-cap-sys-admin" in ids(report)
    if job == "watch":
        assert report["verdict"]["summary"] == (
            "fanwatch watch works here in unprivileged mode: directory marks, no process ids"
        )
    else:
        assert report["verdict"]["blocked_by"][0] == "no-cap-sys-admin"
    assert report["selftests"]["mount-mark"]["errno"] == "EPERM"


def test_unprivileged_user(tmpfs):
    rc, report = doctor(tmpfs, prefix=as_unprivileged_user)

    assert rc == exitcodes.OK
    assert report["facts"]["uid"] == 65534
    assert report["selftests"]["inode-mark"] == {
        "outcome": "ok",
        "pid_reported": False,
        "pidfd": False,
    }
    assert report["selftests"]["permission"]["where"] == "probe"
    assert report["selftests"]["permission"]["errno"] == "EPERM"
    assert os.listdir(tmpfs) == []


def test_unprivileged_user_with_unwritable_path(tmpfs):
    os.chmod(tmpfs, 0o755)
    rc, report = doctor(tmpfs, prefix=as_unprivileged_user)

    assert rc == exitcodes.OK
    assert "path-not-writable" in ids(report)
    assert not report["selftest_dir"].startswith(tmpfs)
    note = next(f for f in report["findings"] if f["id"] == "path-not-writable")
    assert note["message"].startswith(f"{tmpfs} is not writable")


@pytest.mark.parametrize("action", ["errno:EPERM", "errno:ENOSYS"])
def test_seccomp_filter_is_named_not_the_kernel(tmpfs, action):
    rc, report = doctor(tmpfs, prefix=lambda argv: under_seccomp(argv, action))

    assert rc == exitcodes.NOT_SUPPORTED
    assert report["verdict"]["blocked_by"][0] == "seccomp-blocks-fanotify-init"
    assert "seccomp" in report["verdict"]["summary"]
    assert report["facts"]["seccomp"]["mode"] == 2
    assert not ids(report) & {"kernel-too-old-for-unprivileged", "fanotify-not-built"}


def leftovers() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if "fanwatch-doctor" in n}


def test_seccomp_kill_filter(tmpfs):
    before = leftovers()
    rc, report = doctor(tmpfs, prefix=lambda argv: under_seccomp(argv, "kill"))

    assert rc == exitcodes.NOT_SUPPORTED
    assert report["probes"]["init-unknown-flag"] == {
        "outcome": "killed",
        "signal": "SIGSYS",
    }
    assert report["verdict"]["blocked_by"][0] == "seccomp-kills-fanotify-init"
    # The killed permission self-test left no mount point behind.
    assert leftovers() == before
    assert private_mounts() == []


def test_seccomp_on_fanotify_mark_only_fails_the_selftests(tmpfs):
    rc, report = doctor(
        tmpfs,
        prefix=lambda argv: under_seccomp(argv, "errno:EACCES", ("fanotify_mark",)),
    )

    assert rc == exitcodes.NOT_SUPPORTED
    assert report["selftests"]["inode-mark"]["errno"] == "EACCES"
    assert report["verdict"]["blocked_by"] == ["selftest-failed"]


def test_bad_path_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [*DOCTOR, str(tmp_path / "missing")], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == exitcodes.USAGE
    assert (
        result.stderr.strip()
        == f"fanwatch: doctor: {tmp_path / 'missing'}: not an existing directory"
    )

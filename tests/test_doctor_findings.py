"""Every finding and verdict of doctor, on recorded trees of container environments."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from fanwatch.cli import exitcodes
from fanwatch.doctor import build_report, replay

from conftest import REPO

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "proc")


def tree(name: str) -> str:
    return os.path.join(FIXTURES, name)


def ids(report: dict) -> set[str]:
    return {finding["id"] for finding in report["findings"]}


def finding(report: dict, finding_id: str) -> dict:
    return next(f for f in report["findings"] if f["id"] == finding_id)


# scenario, job -> the verdict sentence, the job map, the findings that must be there.
CASES = [
    (
        "host-root",
        "guard",
        "everything works: full privilege",
        (True, True, True),
        set(),
    ),
    (
        "docker-privileged",
        "watch",
        "everything works: full privilege",
        (True, True, True),
        set(),
    ),
    (
        "docker-default",
        "watch",
        "fanotify_init is blocked by this container's seccomp profile",
        (False, False, False),
        {"seccomp-blocks-fanotify-init", "no-cap-sys-admin", "no-cap-dac-read-search"},
    ),
    (
        "docker-seccomp-kill",
        "watch",
        "fanotify_init is blocked by this container's seccomp profile (it kills the caller)",
        (False, False, False),
        {"seccomp-kills-fanotify-init"},
    ),
    (
        "docker-privileged-overlay-root",
        "watch-mount",
        "fanwatch watch-mount cannot run here: mount marks with file handles are refused on overlayfs",
        (True, False, True),
        {"overlayfs-no-fid-mount-marks"},
    ),
    (
        "docker-desktop",
        "guard",
        "fanwatch guard cannot run here: this kernel has no fanotify permission events",
        (True, True, False),
        {"permission-events-not-built"},
    ),
    (
        "podman-rootless",
        "watch",
        "fanotify_init is blocked by this container's seccomp profile",
        (False, False, False),
        {"seccomp-blocks-fanotify-init", "user-namespace"},
    ),
    (
        "podman-rootless-5.5",
        "watch",
        "fanwatch watch works here in unprivileged mode: directory marks, no process ids",
        (True, False, False),
        {"user-namespace", "no-cap-sys-admin", "queue-limit"},
    ),
    (
        "podman-rootless-5.5",
        "guard",
        "fanwatch guard cannot run here: this process is in a user namespace, so "
        "privileged fanotify (mount marks, permission events) is impossible",
        (True, False, False),
        {"user-namespace", "no-cap-sys-admin"},
    ),
    (
        "kubernetes-pod",
        "watch",
        "fanotify_init is blocked by this container's seccomp profile",
        (False, False, False),
        {"seccomp-blocks-fanotify-init"},
    ),
    (
        "gvisor",
        "watch",
        "fanotify does not exist here: this is a gVisor sandbox",
        (False, False, False),
        {"gvisor"},
    ),
    (
        "old-kernel",
        "watch",
        "this kernel (5.4.0-150-generic) is too old for unprivileged fanotify and this "
        "process lacks CAP_SYS_ADMIN",
        (False, False, False),
        {"kernel-too-old-for-unprivileged", "no-cap-sys-admin"},
    ),
    (
        "no-fanotify",
        "watch",
        "this kernel has no fanotify",
        (False, False, False),
        {"fanotify-not-built"},
    ),
    (
        "fuse-path",
        "watch",
        "fanwatch watch cannot run here: the filesystem under the path (fuse.sshfs) "
        "cannot report file handles",
        (False, False, False),
        {"fs-no-file-handles"},
    ),
    (
        "host-busy",
        "watch",
        "fanwatch watch works here in unprivileged mode: directory marks, no process ids",
        (True, False, False),
        {
            "group-limit-near",
            "mark-limit-near",
            "selinux-enforcing",
            "other-listeners",
            "nofile-limit-low",
        },
    ),
    (
        "path-not-writable",
        "watch",
        "fanwatch watch works here in unprivileged mode: directory marks, no process ids",
        (True, False, False),
        {"path-not-writable"},
    ),
]


@pytest.mark.parametrize(("scenario", "job", "summary", "jobs", "expected"), CASES)
def test_verdict_and_findings(scenario, job, summary, jobs, expected):
    report = replay(tree(scenario), job)

    assert report["verdict"]["summary"] == summary
    assert tuple(report["verdict"]["jobs"].values()) == jobs
    assert report["verdict"]["ok"] == report["verdict"]["jobs"][job]
    assert expected <= ids(report)


@pytest.mark.parametrize(("scenario", "job", "summary", "jobs", "expected"), CASES)
def test_blockers_are_errors_and_come_first(scenario, job, summary, jobs, expected):
    report = replay(tree(scenario), job)
    severities = [f["severity"] for f in report["findings"]]

    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    errors = {f["id"] for f in report["findings"] if f["severity"] == "error"}
    assert errors == set(report["verdict"]["blocked_by"])
    assert bool(errors) != report["verdict"]["ok"]


def test_every_finding_id_is_documented():
    with open(os.path.join(REPO, "docs", "DOCTOR.md"), encoding="utf-8") as file:
        docs = file.read()
    seen = set()
    for scenario, job, *_ in CASES:
        seen |= ids(replay(tree(scenario), job))
    seen |= {
        "selftest-no-event",
        "selftest-failed",
        "no-cap-audit-write",
        "btrfs-subvolume",
    }

    missing = [fid for fid in seen if f"`{fid}`" not in docs]
    assert not missing


def test_docker_default_watch_fix_adds_no_capability():
    report = replay(tree("docker-default"), "watch")
    fixes = finding(report, "seccomp-blocks-fanotify-init")["fixes"]
    first = fixes[0]

    assert first["runtime"] == "docker"
    assert first["snippet"] == (
        "# default.json: your runtime's default seccomp profile\n"
        "fanwatch seccomp patch default.json --for watch -o fanwatch-seccomp.json\n"
        "docker run --security-opt seccomp=./fanwatch-seccomp.json IMAGE"
    )
    assert "No capability is added" in first["cost"]
    compose = next(f for f in fixes if f["runtime"] == "compose")
    assert "security_opt: [seccomp=./fanwatch-seccomp.json]" in compose["snippet"]
    assert {f["runtime"] for f in fixes} == {"docker", "compose"}


def test_docker_default_cap_add_is_costed_as_the_new_root():
    report = replay(tree("docker-default"), "watch")
    fixes = finding(report, "seccomp-blocks-fanotify-init")["fixes"]
    cap_add = next(f for f in fixes if "--cap-add SYS_ADMIN" in f["snippet"])

    assert cap_add["summary"].startswith("not recommended")
    for word in ("the new root", "mount", "unshare", "setns", "bpf"):
        assert word in cap_add["cost"]


def test_docker_default_guard_fix_adds_sys_admin_and_states_the_cost():
    report = replay(tree("docker-default"), "guard")
    docker = finding(report, "seccomp-blocks-fanotify-init")["fixes"][0]

    # Docker's default profile opens fanotify_init to CAP_SYS_ADMIN itself.
    assert docker["snippet"] == "docker run --cap-add SYS_ADMIN IMAGE"
    assert "mount, umount2, unshare, setns, bpf" in docker["cost"]
    assert "no-cap-sys-admin" in report["verdict"]["blocked_by"]


def test_kubernetes_fix_is_a_localhost_profile_for_a_non_root_pod():
    report = replay(tree("kubernetes-pod"), "watch")
    fixes = finding(report, "seccomp-blocks-fanotify-init")["fixes"]
    kube = next(f for f in fixes if f["runtime"] == "kubernetes")

    for line in (
        "type: Localhost",
        "localhostProfile: fanwatch-seccomp.json",
        "drop: [ALL]",
        "runAsNonRoot: true",
    ):
        assert line in kube["snippet"]
    assert "SYS_ADMIN" not in kube["snippet"]
    assert report["facts"]["runtime"]["name"] == "kubernetes"


def test_old_podman_is_told_to_upgrade_or_use_the_profile():
    report = replay(tree("podman-rootless"), "watch")
    podman = finding(report, "seccomp-blocks-fanotify-init")["fixes"]

    assert [f["runtime"] for f in podman] == ["podman"]
    assert "Podman 4.9.4" in podman[0]["summary"]
    assert "5.5" in podman[0]["summary"]
    assert (
        "podman run --security-opt seccomp=./fanwatch-seccomp.json"
        in podman[0]["snippet"]
    )


def test_rootless_podman_user_namespace_evidence():
    report = replay(tree("podman-rootless-5.5"), "guard")
    userns = finding(report, "user-namespace")

    assert userns["severity"] == "error"
    assert any("0 1000 1" in item for item in userns["evidence"])
    assert any("rootless=1" in item for item in userns["evidence"])
    assert any("sudo podman run" in (f["snippet"] or "") for f in userns["fixes"])


def test_no_sys_admin_is_info_for_watch_and_error_for_guard():
    watch = finding(replay(tree("podman-rootless-5.5"), "watch"), "no-cap-sys-admin")
    guard = finding(replay(tree("host-busy"), "guard"), "no-cap-sys-admin")

    assert (watch["severity"], watch["fixes"]) == ("info", [])
    assert guard["severity"] == "error"
    assert guard["blocks"] == ["watch-mount", "guard"]
    assert any(
        "AmbientCapabilities=CAP_SYS_ADMIN" in (f["snippet"] or "")
        for f in guard["fixes"]
    )


def test_old_kernel_is_blamed_not_seccomp():
    report = replay(tree("old-kernel"), "watch")

    assert "seccomp-blocks-fanotify-init" not in ids(report)
    assert any(
        "older than 5.13" in e
        for e in finding(report, "kernel-too-old-for-unprivileged")["evidence"]
    )


def test_eperm_with_sys_admin_on_an_old_kernel_is_seccomp():
    report = replay(tree("old-kernel"), "watch")
    facts = copy.deepcopy(report["facts"])
    facts["capabilities"]["sys_admin"]["effective"] = True

    rebuilt = build_report(facts, report["probes"], report["selftests"], "watch")
    assert rebuilt["verdict"]["blocked_by"][0] == "seccomp-blocks-fanotify-init"


def test_enosys_from_a_filter_is_seccomp_and_without_one_is_no_fanotify():
    report = replay(tree("no-fanotify"), "watch")
    facts = copy.deepcopy(report["facts"])
    facts["kernel_config"] = {
        "source": None,
        "fanotify": None,
        "access_permissions": None,
    }

    plain = build_report(facts, report["probes"], report["selftests"], "watch")
    facts["seccomp"]["mode"] = 2
    filtered = build_report(facts, report["probes"], report["selftests"], "watch")

    assert plain["verdict"]["blocked_by"] == ["fanotify-not-built"]
    assert filtered["verdict"]["blocked_by"] == ["seccomp-blocks-fanotify-init"]
    assert (
        filtered["verdict"]["summary"]
        == "fanotify_init is blocked by a seccomp filter on this process"
    )


def test_a_missing_event_is_reported_as_selftest_no_event():
    report = replay(tree("host-root"), "watch")
    selftests = dict(
        report["selftests"], **{"inode-mark": {"outcome": "no-event", "timeout": 2.0}}
    )

    rebuilt = build_report(report["facts"], report["probes"], selftests, "watch")
    assert rebuilt["verdict"]["ok"] is False
    assert rebuilt["verdict"]["blocked_by"] == ["selftest-no-event"]
    assert rebuilt["verdict"]["summary"] == (
        "fanwatch watch cannot run here: the inode-mark self-test received no event"
    )


def test_an_unexplained_refusal_is_reported_as_selftest_failed():
    report = replay(tree("host-root"), "guard")
    selftests = dict(
        report["selftests"],
        permission={"outcome": "refused", "step": "fanotify_mark", "errno": "EACCES"},
    )

    rebuilt = build_report(report["facts"], report["probes"], selftests, "guard")
    assert rebuilt["verdict"]["blocked_by"] == ["selftest-failed"]
    assert "EACCES" in rebuilt["verdict"]["summary"]


def test_btrfs_subvolume_and_audit_write():
    report = replay(tree("host-busy"), "guard")
    selftests = dict(
        report["selftests"],
        **{
            "mount-mark": {
                "outcome": "refused",
                "step": "fanotify_mark",
                "errno": "EXDEV",
            }
        },
    )

    rebuilt = build_report(report["facts"], report["probes"], selftests, "guard")
    assert {"btrfs-subvolume", "no-cap-audit-write"} <= ids(rebuilt)


def test_listeners_come_from_fdinfo():
    listeners = replay(tree("host-busy"))["facts"]["listeners"]
    fapolicyd = next(g for g in listeners if g["comm"] == "fapolicyd")

    assert len(listeners) == 4
    assert (fapolicyd["pid"], fapolicyd["fd"], fapolicyd["class"]) == (
        812,
        7,
        "content",
    )
    assert fapolicyd["marks"] == {"inode": 0, "mount": 1, "filesystem": 1}


def test_json_report_schema_version_1():
    report = replay(tree("docker-default"), "watch")
    data = json.loads(json.dumps(report))

    assert data["version"] == 1
    assert set(data) == {
        "version",
        "job",
        "path",
        "selftest_dir",
        "verdict",
        "findings",
        "facts",
        "probes",
        "selftests",
    }
    assert set(data["verdict"]) == {
        "job",
        "ok",
        "summary",
        "mode",
        "jobs",
        "blocked_by",
    }
    for row in data["findings"]:
        assert set(row) == {"id", "severity", "blocks", "message", "evidence", "fixes"}
        for fix in row["fixes"]:
            assert set(fix) == {"runtime", "summary", "snippet", "cost"}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fanwatch", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("scenario", "job", "code"),
    [
        ("podman-rootless-5.5", "watch", exitcodes.OK),
        ("podman-rootless-5.5", "guard", exitcodes.NOT_SUPPORTED),
        ("docker-default", "watch", exitcodes.NOT_SUPPORTED),
        ("host-root", "guard", exitcodes.OK),
    ],
)
def test_replay_exit_codes(scenario, job, code):
    result = run_cli("--replay", tree(scenario), "--for", job)

    assert result.returncode == code, result.stderr
    assert result.stdout.startswith("verdict: ")


def test_replay_json_is_the_report():
    result = run_cli("--replay", tree("gvisor"), "--json")

    assert result.returncode == exitcodes.NOT_SUPPORTED
    assert json.loads(result.stdout)["verdict"]["blocked_by"] == ["gvisor"]


def test_bad_recording_is_a_one_line_usage_error(tmp_path):
    result = run_cli("--replay", str(tmp_path))

    assert result.returncode == exitcodes.USAGE
    assert result.stderr.startswith("fanwatch: doctor: ")
    assert "Traceback" not in result.stderr

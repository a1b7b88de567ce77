"""The facts doctor reads, from recorded trees and from this machine."""

from __future__ import annotations

import os
import signal
import time

from fanwatch.doctor.child import run_in_child
from fanwatch.doctor.facts import (
    Host,
    collect,
    mount_for,
    parse_fanotify_fdinfo,
    parse_mountinfo,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "proc")


def facts_of(scenario: str, path: str = "/data") -> dict:
    return collect(Host.from_tree(os.path.join(FIXTURES, scenario)), path)


def test_docker_default_capabilities_seccomp_and_runtime():
    facts = facts_of("docker-default")

    assert facts["capabilities"]["sys_admin"] == {"effective": False, "bounding": False}
    assert facts["capabilities"]["audit_write"] == {"effective": True, "bounding": True}
    assert facts["seccomp"] == {"mode": 2, "filters": 1, "no_new_privs": 0}
    assert facts["runtime"]["name"] == "docker"
    assert "/.dockerenv exists" in facts["runtime"]["evidence"]
    assert facts["path"]["fs_type"] == "ext4"
    assert facts["path"]["mount_point"] == "/data"
    assert facts["path"]["root_fs_type"] == "overlay"


def test_rootless_podman_user_namespace_and_version():
    facts = facts_of("podman-rootless")

    assert facts["user_namespace"]["initial"] is False
    assert facts["runtime"]["name"] == "podman"
    assert facts["runtime"]["podman_version"] == "4.9.4"
    assert facts["runtime"]["rootless"] is True
    assert "container=podman in own environment" in facts["runtime"]["evidence"]


def test_kubernetes_wins_over_the_runtime_beneath():
    runtime = facts_of("kubernetes-pod")["runtime"]

    assert runtime["name"] == "kubernetes"
    assert "KUBERNETES_SERVICE_HOST is set" in runtime["evidence"]


def test_host_root_is_no_container_with_kernel_config():
    facts = facts_of("host-root", "/srv")

    assert facts["runtime"] == {
        "name": "none",
        "evidence": [],
        "podman_version": None,
        "rootless": None,
    }
    assert facts["user_namespace"]["initial"] is True
    assert facts["kernel_config"] == {
        "source": "/boot/config-6.8.0-45-generic",
        "fanotify": "y",
        "access_permissions": "y",
    }


def test_gvisor_and_old_kernel_signs():
    gvisor = facts_of("gvisor")["kernel"]
    old = facts_of("old-kernel")["kernel"]

    assert gvisor["gvisor"] is True and gvisor["release"] == "4.4.0"
    assert old["fanotify_sysctl"] is False and old["gvisor"] is False


def test_busy_host_limits_selinux_and_nofile():
    facts = facts_of("host-busy", "/home/user")
    limits = facts["limits"]

    assert (limits["groups_used"], limits["max_user_groups"]) == (3, 4)
    assert (limits["marks_used"], limits["max_user_marks"]) == (8, 10)
    assert limits["nofile"] == {"soft": 512, "hard": 4096}
    assert facts["lsm"]["selinux"] == {"present": True, "enforcing": True}
    assert "selinux" in facts["lsm"]["modules"]


def test_fdinfo_flags_and_marks():
    text = (
        "pos:\t0\nflags:\t02004002\n"
        "fanotify flags:c event-flags:88000\n"
        "fanotify sdev:fe00000 mflags:0 mask:8 ignored_mask:0\n"
        "fanotify mnt_id:1b mflags:0 mask:8 ignored_mask:0\n"
        "fanotify ino:20cfec sdev:fe00000 mflags:0 mask:8 ignored_mask:0 fhandle-bytes:8\n"
    )

    assert parse_fanotify_fdinfo(text) == {
        "flags": 0xC,
        "class": "unknown",
        "marks": {"inode": 1, "mount": 1, "filesystem": 1},
    }
    assert (
        parse_fanotify_fdinfo("fanotify flags:8 event-flags:0\n")["class"]
        == "pre-content"
    )


def test_mount_for_takes_the_longest_and_last_mount_point():
    mounts = parse_mountinfo(
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "2 1 0:30 / /mnt/a\\040b rw - tmpfs tmpfs rw\n"
        "3 1 0:31 / /mnt/a\\040b rw - fuse.sshfs host:/ rw\n"
    )

    assert mount_for(mounts, "/mnt/a b/x")["fs_type"] == "fuse.sshfs"
    assert mount_for(mounts, "/mnt/ab")["fs_type"] == "ext4"


def test_live_facts_see_our_own_fanotify_group(tmpfs):
    from fanwatch.constants import FAN_CREATE, FAN_REPORT_DFID_NAME
    from fanwatch.group import Group

    with Group(FAN_REPORT_DFID_NAME) as group:
        group.mark(tmpfs, FAN_CREATE)
        facts = collect(Host(), tmpfs)
        # Doctor's own process is skipped: its groups are not other listeners.
        assert all(g["pid"] != os.getpid() for g in facts["listeners"])
        assert facts["path"]["fs_type"] == "tmpfs"
        assert facts["kernel"]["release"] == os.uname().release


def test_live_listener_of_another_process_is_seen(tmpfs):
    from fanwatch.constants import FAN_CREATE, FAN_REPORT_DFID_NAME
    from fanwatch.group import Group

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        group = Group(FAN_REPORT_DFID_NAME)
        group.mark(tmpfs, FAN_CREATE)
        os.write(write_end, b"x")
        time.sleep(30)
        os._exit(0)
    try:
        os.close(write_end)
        assert os.read(read_end, 1) == b"x"
        listeners = collect(Host(), tmpfs)["listeners"]
        mine = [g for g in listeners if g["pid"] == pid]
        assert len(mine) == 1
        assert mine[0]["class"] == "notif"
        assert mine[0]["marks"]["inode"] == 1
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_end)


def test_child_timeout_and_signal_are_reported():
    started = time.monotonic()
    hung = run_in_child(lambda: time.sleep(30) or {}, timeout=0.3)
    killed = run_in_child(lambda: os.kill(os.getpid(), signal.SIGSYS) or {}, timeout=5)
    crashed = run_in_child(lambda: 1 / 0, timeout=5)

    assert hung == {"outcome": "timeout"}
    assert time.monotonic() - started < 5
    assert killed == {"outcome": "killed", "signal": "SIGSYS"}
    assert crashed["outcome"] == "crashed" and "ZeroDivisionError" in crashed["detail"]

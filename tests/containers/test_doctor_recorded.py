"""``fanwatch doctor --record`` inside real runc containers, replayed on the host.

For each confinement of the container matrix, doctor runs live inside the
container with ``--json --record /record/tree`` (a writable host directory
bound at /record); the host then replays the tree and must reach the
verdict and findings the live run printed. tests/fixtures/proc/record_runc.py
uses :data:`CASES` and :func:`record_in_container` to regenerate the
``runc-*`` fixtures.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import NamedTuple

import pytest

from fanwatch.doctor import replay

from .harness import Bind, IdMap, Result
from .matrix_helpers import (
    DOCKER_PROFILE,
    PODMAN_DROPPED_CAPS,
    PODMAN_PROFILE,
    patched,
    resolved,
)
from .test_matrix import PODMAN_CAPS

RECORD = "/record"


def docker_default(scratch: str) -> dict:
    return {"seccomp": resolved(DOCKER_PROFILE), "marker": "docker"}


def docker_patched(scratch: str) -> dict:
    profile = patched(DOCKER_PROFILE, "watch", os.path.join(scratch, "watch.json"))
    return {"seccomp": resolved(profile), "marker": "docker"}


def docker_sys_admin(scratch: str) -> dict:
    return {
        "cap_add": ["SYS_ADMIN"],
        "seccomp": resolved(DOCKER_PROFILE, cap_add=("SYS_ADMIN",)),
        "marker": "docker",
    }


def podman_default(scratch: str) -> dict:
    return {
        "caps": PODMAN_CAPS,
        "seccomp": resolved(PODMAN_PROFILE, cap_drop=PODMAN_DROPPED_CAPS),
        "marker": "podman",
    }


def userns_sys_admin(scratch: str) -> dict:
    """Root of a user namespace (container 0 is host 100000) with
    CAP_SYS_ADMIN there, which does not count for fanotify."""
    return {"userns": IdMap(), **docker_sys_admin(scratch)}


class Case(NamedTuple):
    """A confinement, the job judged there, and whether it can run."""

    job: str
    spec: Callable[[str], dict]  # given a scratch directory on the host
    can_run: bool
    path: str | None = None  # the PATH doctor judges (default /tmp)


# The fixtures tests/fixtures/proc/runc-<name> come from RECORDED_FIXTURES.
CASES = {
    "docker-default": Case("watch", docker_default, False),
    "docker-patched": Case("watch", docker_patched, True),
    "docker-sys-admin": Case("guard", docker_sys_admin, True),
    "podman-5.5": Case("watch", podman_default, True),
    # Its own /tmp would do (its user namespace mounted it); a host bind
    # mount does not.
    "userns": Case("watch-mount", userns_sys_admin, False, RECORD),
}
RECORDED_FIXTURES = ("docker-default", "docker-sys-admin", "podman-5.5", "userns")


def record_in_container(
    run: Callable[..., Result], case: Case, host_dir: str, scratch: str
) -> tuple[dict, str]:
    """Run ``doctor --json --for JOB --record /record/tree [PATH]`` in a
    container of *case* with *host_dir* bound writable at /record.

    *run* is :meth:`ContainerFactory.run` or a caller's equivalent. Returns
    the live report and the tree's path on the host. Fails (AssertionError)
    when doctor's exit status is not the one its verdict documents.
    """
    os.chmod(host_dir, 0o777)  # a user namespace's root is host uid 100000
    argv = [sys.executable, "-m", "fanwatch", "doctor", "--json", "--for", case.job]
    argv += ["--record", f"{RECORD}/tree", *([case.path] if case.path else [])]
    result = run(
        argv,
        binds=[Bind(host_dir, RECORD, writable=True)],
        timeout=30,
        **case.spec(scratch),
    )
    assert "Traceback" not in result.stderr, result.stderr
    live = json.loads(result.stdout)
    assert result.returncode == (0 if live["verdict"]["ok"] else 3), result

    return live, os.path.join(host_dir, "tree")


def ids(report: dict) -> list[str]:
    return [finding["id"] for finding in report["findings"]]


@pytest.mark.parametrize("name", CASES)
def test_replay_on_the_host_matches_the_live_run_inside(container, tmp_path, name):
    case = CASES[name]
    host_dir = tmp_path / "record"
    host_dir.mkdir()

    live, tree = record_in_container(container.run, case, str(host_dir), str(tmp_path))
    replayed = replay(tree, case.job)

    assert live["verdict"]["ok"] is case.can_run, live["verdict"]
    assert replayed["verdict"] == live["verdict"]
    assert ids(replayed) == ids(live)
    assert replayed["findings"] == live["findings"]
    assert replayed["facts"] == live["facts"]
    # Nothing but the recorded files: no process of the container but pid 1.
    assert sorted(os.listdir(os.path.join(tree, "proc"))) == [
        "1",
        "config.gz",
        "self",
        "sys",
        "version",
    ]

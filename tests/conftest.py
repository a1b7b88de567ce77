"""Shared fixtures: a private tmpfs per test, and ways to drop privilege."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
from hypothesis import settings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mount_tmpfs(path: str, size: str = "64m") -> None:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "fanwatch-test", path],
        check=True,
    )


def unmount(path: str) -> None:
    # Lazy unmount: a test that failed may still hold a file open there.
    subprocess.run(["umount", "-l", path], check=False)


@pytest.fixture
def tmpfs():
    """A fresh tmpfs mounted for this test only, unmounted afterwards.

    Permission marks are only ever placed on such a mount, never on a
    shared one: a stuck listener could otherwise freeze the machine.
    """
    if os.geteuid() != 0:
        pytest.fail("the real-kernel tests must run as root (they mount tmpfs)")
    path = tempfile.mkdtemp(prefix="fanwatch-tmpfs-")
    mount_tmpfs(path)
    try:
        yield path
    finally:
        unmount(path)
        os.rmdir(path)


def python_cmd(code: str) -> list[str]:
    """Run *code* with this interpreter, fanwatch importable from the repo."""
    return [sys.executable, "-c", code]


def without_sys_admin(argv: list[str]) -> list[str]:
    """Prefix *argv* so that it runs as root but without CAP_SYS_ADMIN (and
    without CAP_DAC_READ_SEARCH), dropped from every capability set."""
    return [
        "setpriv",
        "--inh-caps=-sys_admin,-dac_read_search",
        "--bounding-set=-sys_admin,-dac_read_search",
        "--",
        *argv,
    ]


def as_unprivileged_user(argv: list[str], uid: int = 65534) -> list[str]:
    """Prefix *argv* so that it runs as an unprivileged uid with no capabilities."""
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        *argv,
    ]


# In CI the property tests draw the same examples on every run, so that a
# submission's result does not depend on luck; elsewhere they explore.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

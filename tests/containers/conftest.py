"""Fixtures for tests that run fanwatch inside real runc containers."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest

from .harness import (
    BASE_PREFIX,
    Container,
    Result,
    Runtime,
    Spec,
    host_mount_points,
    runc_available,
)


def in_ci() -> bool:
    """True when the CI environment variable says so (CI=true, CI=1, ...)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _harness_mounts() -> list[str]:
    return [point for point in host_mount_points() if BASE_PREFIX in point]


@pytest.fixture(scope="session")
def container_runtime():
    """One :class:`Runtime` for the session, checked clean at the end.

    Fails when runc is missing in CI; elsewhere skips, naming runc, only
    when ``runc --version`` fails.
    """
    if runc_available() is None:
        if in_ci():
            pytest.fail("runc is required for the container tests in CI")
        pytest.skip("runc is not available ('runc --version' failed)")
    if os.geteuid() != 0:
        pytest.fail("the container tests must run as root (runc needs it)")

    runtime = Runtime()
    yield runtime
    runtime.close()
    assert not os.path.exists(runtime.base)
    assert not _harness_mounts(), "mounts left behind by the container harness"


class ContainerFactory:
    """Runs or starts containers for one test and removes them afterwards.

    Keyword arguments are :class:`Spec` fields: ``caps``, ``cap_add``,
    ``seccomp``, ``no_new_privileges``, ``userns``, ``user``, ``binds``,
    ``env``, ``cwd``, ``marker``, ``repo``.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.started: list[Container] = []

    def run(self, args: Sequence[str], *, timeout: float = 20, **spec) -> Result:
        """Run *args* to completion (see :meth:`Runtime.run`)."""
        return self.runtime.run(Spec(args=args, **spec), timeout=timeout)

    def start(self, args: Sequence[str], **spec) -> Container:
        """Start *args* in the background (see :meth:`Runtime.start`)."""
        container = self.runtime.start(Spec(args=args, **spec))
        self.started.append(container)

        return container

    def remove_all(self) -> list[str]:
        """Remove this test's containers; return the ids runc still knows."""
        for container in self.started:
            container.remove()
        ids = {container.id for container in self.started}

        return sorted(ids & set(self.runtime.list_ids()))


@pytest.fixture
def container(container_runtime):
    """A :class:`ContainerFactory`; its containers are removed after the test,
    which then fails if runc still lists any of them."""
    factory = ContainerFactory(container_runtime)
    yield factory
    assert not factory.remove_all(), "runc containers left behind"

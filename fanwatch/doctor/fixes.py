"""The exact, minimal change that fixes a finding, for each container runtime.

A fix is data: which runtime it is for, what to do, the literal flags or
snippet, and what it costs in privilege. The seccomp profiles named here
are the ones ``fanwatch seccomp patch PROFILE --for watch`` writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

PROFILE = "fanwatch-seccomp.json"

# What CAP_SYS_ADMIN costs, said the same way in every fix that adds it.
SYS_ADMIN_COST = (
    "CAP_SYS_ADMIN is 'the new root': it also allows mounting, namespace "
    "changes, quota, swap and many other admin operations."
)
DOCKER_GATE_COST = (
    "With Docker's default profile, --cap-add SYS_ADMIN also opens about 25 "
    "syscalls through the seccomp gate (mount, umount2, unshare, setns, bpf, "
    "clone flags for namespaces, ...)."
)
PROFILE_ONLY_COST = (
    "No capability is added. Only fanotify_init is allowed; the kernel still "
    "limits an unprivileged caller to FID groups with inode (directory) marks."
)


@dataclass(frozen=True)
class Fix:
    """One way to fix a finding on one runtime.

    ``runtime``: docker, compose, podman, kubernetes, containerd, lxc,
    systemd-nspawn, host or any. ``snippet`` is literal text to run or
    paste (None when there is nothing to paste).
    """

    runtime: str
    summary: str
    snippet: str | None
    cost: str

    def to_dict(self) -> dict:
        return asdict(self)


def patch_command(job: str) -> str:
    """The command that writes the profile a fix names, from the runtime's
    own default profile (for Docker, moby's profiles/seccomp/default.json)."""
    return (
        "# default.json: your runtime's default seccomp profile\n"
        f"fanwatch seccomp patch default.json --for {job} -o {PROFILE}"
    )


def _kubernetes_context(job: str) -> str:
    """A container securityContext for *job* with a Localhost profile."""
    if job == "watch":
        identity = ["  runAsNonRoot: true", "  allowPrivilegeEscalation: false"]
        caps = ["  capabilities:", "    drop: [ALL]"]
    else:
        # Added capabilities reach a non-root process only as ambient ones,
        # which Kubernetes does not set: the job must run as uid 0.
        identity = ["  runAsUser: 0", "  allowPrivilegeEscalation: false"]
        caps = ["  capabilities:", "    drop: [ALL]", "    add: [SYS_ADMIN]"]
    profile = ["  seccompProfile:"]
    if job == "watch":
        profile += ["    type: Localhost", f"    localhostProfile: {PROFILE}"]
    else:
        profile += ["    type: RuntimeDefault"]

    return "\n".join(["securityContext:", *identity, *caps, *profile])


# -- fixes for a seccomp filter that refuses fanotify_init -------------------


def seccomp_fixes(runtime: dict, job: str) -> list[Fix]:
    """Allow fanotify_init; for privileged jobs, add CAP_SYS_ADMIN instead,
    which the runtimes' default profiles accept as the key to fanotify_init."""
    if job != "watch":
        return sys_admin_fixes(runtime, job)
    privileged = False
    cap = "--cap-add SYS_ADMIN " if privileged else ""
    cost = f"{SYS_ADMIN_COST} {DOCKER_GATE_COST}" if privileged else PROFILE_ONLY_COST
    name = runtime.get("name")

    fixes = [
        Fix(
            "docker",
            "run the container with a seccomp profile that allows fanotify_init",
            f"{patch_command(job)}\ndocker run {cap}--security-opt seccomp=./{PROFILE} IMAGE",
            cost,
        ),
        Fix(
            "compose",
            "the same in a compose file",
            _compose_snippet(privileged),
            cost,
        ),
        _podman_seccomp_fix(runtime, job, cost),
        Fix(
            "kubernetes",
            f"a Localhost seccomp profile: copy {PROFILE} into the kubelet's "
            "seccomp directory (/var/lib/kubelet/seccomp/) on each node",
            f"{patch_command(job)}\n{_kubernetes_context(job)}",
            cost + " The profile must be present on every node.",
        ),
    ]
    fixes += _other_runtime_seccomp_fixes(name, job, cost)
    if not privileged:
        fixes.append(_cap_add_alternative())

    return _for_runtime(fixes, name)


def _compose_snippet(privileged: bool) -> str:
    lines = ["services:", "  app:"]
    if privileged:
        lines += ["    cap_add: [SYS_ADMIN]"]
    lines += [f"    security_opt: [seccomp=./{PROFILE}]"]

    return "\n".join(lines)


def _podman_seccomp_fix(runtime: dict, job: str, cost: str) -> Fix:
    version = runtime.get("podman_version")
    cap = "--cap-add SYS_ADMIN " if job != "watch" else ""
    snippet = f"{patch_command(job)}\npodman run {cap}--security-opt seccomp=./{PROFILE} IMAGE"
    if job == "watch" and version and _version_at_least(version, (5, 5)):
        summary = (
            f"Podman {version} allows fanotify_init by default: this container "
            "runs another profile; drop it or use the patched one"
        )
    elif job == "watch":
        found = f"Podman {version}" if version else "Podman before 5.5"
        summary = (
            f"{found} gates fanotify_init on CAP_SYS_ADMIN: upgrade to Podman "
            "5.5+ (no change needed there) or use the patched profile"
        )
    else:
        summary = "rootful Podman with CAP_SYS_ADMIN and the patched profile"

    return Fix("podman", summary, snippet, cost)


def _other_runtime_seccomp_fixes(name: str | None, job: str, cost: str) -> list[Fix]:
    cap = "--cap-add SYS_ADMIN " if job != "watch" else ""
    return [
        Fix(
            "containerd",
            "nerdctl takes Docker's flags",
            f"{patch_command(job)}\nnerdctl run {cap}--security-opt seccomp=./{PROFILE} IMAGE",
            cost,
        ),
        Fix(
            "lxc",
            "allow fanotify_init in the profile that lxc.seccomp.profile names",
            "fanotify_init",
            cost,
        ),
        Fix(
            "systemd-nspawn",
            "add fanotify_init to the container's system call filter",
            "systemd-nspawn --system-call-filter=fanotify_init ...",
            cost,
        ),
        Fix(
            "host",
            "the filter comes from whatever started this process (a systemd "
            "unit's SystemCallFilter=, a sandbox): allow fanotify_init there",
            "SystemCallFilter=fanotify_init fanotify_mark  # in the unit's [Service]",
            cost,
        ),
    ]


def _cap_add_alternative() -> Fix:
    return Fix(
        "docker",
        "not recommended: --cap-add SYS_ADMIN also passes Docker's seccomp gate",
        "docker run --cap-add SYS_ADMIN IMAGE",
        f"{SYS_ADMIN_COST} {DOCKER_GATE_COST}",
    )


def _version_at_least(version: str, wanted: tuple[int, int]) -> bool:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)

    return tuple(parts) >= wanted


def _for_runtime(fixes: list[Fix], name: str | None) -> list[Fix]:
    """The detected runtime's fixes first; all of them for an unknown one.

    Docker's fixes come with the compose form; on the host (runtime "none")
    only the host fix applies.
    """
    groups = {
        "docker": {"docker", "compose"},
        "podman": {"podman"},
        "kubernetes": {"kubernetes"},
        "containerd": {"containerd", "kubernetes"},
        "lxc": {"lxc"},
        "systemd-nspawn": {"systemd-nspawn"},
        "none": {"host"},
    }
    wanted = groups.get(name or "")
    if wanted is None:
        return fixes

    return [fix for fix in fixes if fix.runtime in wanted]


# -- fixes that add privilege -------------------------------------------------


def sys_admin_fixes(runtime: dict, job: str) -> list[Fix]:
    """Give CAP_SYS_ADMIN (in the initial user namespace) for *job*."""
    cost = f"{SYS_ADMIN_COST} {DOCKER_GATE_COST}"
    fixes = [
        Fix(
            "docker",
            "add CAP_SYS_ADMIN; Docker's default profile then allows fanotify_init",
            "docker run --cap-add SYS_ADMIN IMAGE",
            cost,
        ),
        Fix(
            "compose",
            "the same in a compose file",
            "services:\n  app:\n    cap_add: [SYS_ADMIN]",
            cost,
        ),
        Fix(
            "podman",
            "rootful Podman only (rootless containers run in a user namespace)",
            "sudo podman run --cap-add SYS_ADMIN IMAGE",
            cost,
        ),
        Fix(
            "kubernetes",
            "add SYS_ADMIN and run as uid 0; the runtime's default profile then "
            "allows fanotify_init",
            _kubernetes_context(job),
            cost,
        ),
        Fix(
            "containerd",
            "nerdctl takes Docker's flags",
            "nerdctl run --cap-add SYS_ADMIN IMAGE",
            cost,
        ),
        Fix(
            "lxc",
            "a privileged container (no lxc.idmap) whose lxc.cap.drop leaves sys_admin",
            None,
            cost,
        ),
        Fix(
            "systemd-nspawn",
            "keep CAP_SYS_ADMIN in the container",
            "systemd-nspawn --capability=CAP_SYS_ADMIN ...",
            cost,
        ),
        Fix(
            "host",
            "run as root, or give only CAP_SYS_ADMIN (a systemd unit shown)",
            "AmbientCapabilities=CAP_SYS_ADMIN\nCapabilityBoundingSet=CAP_SYS_ADMIN",
            SYS_ADMIN_COST,
        ),
    ]

    return _for_runtime(fixes, runtime.get("name"))


def user_namespace_fixes(runtime: dict) -> list[Fix]:
    """Leave the user namespace: capabilities inside one do not count."""
    cost = "The container's root becomes the host's root. " + SYS_ADMIN_COST
    fixes = [
        Fix(
            "docker",
            "opt out of userns-remap for this container",
            "docker run --userns=host --cap-add SYS_ADMIN IMAGE",
            cost,
        ),
        Fix(
            "compose",
            "the same in a compose file",
            "services:\n  app:\n    userns_mode: host\n    cap_add: [SYS_ADMIN]",
            cost,
        ),
        Fix(
            "podman",
            "run rootful Podman instead of rootless",
            "sudo podman run --cap-add SYS_ADMIN IMAGE",
            cost,
        ),
        Fix(
            "kubernetes",
            "share the host's user namespace (the default)",
            "spec:\n  hostUsers: true",
            cost,
        ),
        Fix(
            "lxc",
            "a privileged container (no lxc.idmap)",
            "# remove lxc.idmap lines",
            cost,
        ),
        Fix(
            "systemd-nspawn",
            "do not use --private-users",
            "systemd-nspawn --private-users=no ...",
            cost,
        ),
        Fix(
            "host",
            "run outside the user namespace (unshare -U, a rootless sandbox)",
            None,
            cost,
        ),
    ]

    return _for_runtime(fixes, runtime.get("name"))

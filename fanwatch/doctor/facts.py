"""Facts about this process and machine that bear on fanotify, read without privilege.

Everything is read through a :class:`Host`, whose /proc, /sys and / roots and
environment can point at a recorded tree, so the findings can be tested
against container environments that this machine is not. Nothing here makes
a fanotify call; see :mod:`fanwatch.doctor.probes` for that.
"""

from __future__ import annotations

import gzip
import os
import resource
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

CAP_DAC_READ_SEARCH = 2
CAP_SYS_ADMIN = 21
CAP_AUDIT_WRITE = 29

# The fanotify class lives in these bits of the group's init flags.
CLASS_BITS = 0x0000000C
CLASS_NAMES = {0x0: "notif", 0x4: "content", 0x8: "pre-content"}

FANOTIFY_SYSCTLS = (
    "max_queued_events",
    "max_user_groups",
    "max_user_marks",
    "watchdog_timeout",
)

# The only environment variables the facts look at.
ENVIRON_KEYS = ("container", "KUBERNETES_SERVICE_HOST")

# gVisor reports this fixed kernel version in /proc/version.
GVISOR_VERSION_MARK = "#1 SMP Sun Jan 10 15:06:54 PST 2016"


@dataclass
class Host:
    """Where facts are read from: the live system by default.

    ``root`` holds /.dockerenv, /run/.containerenv and /boot; ``environ`` is
    this process's own environment.
    """

    proc: str = "/proc"
    sys: str = "/sys"
    root: str = "/"
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    live: bool = True

    @classmethod
    def from_tree(cls, tree: str) -> Host:
        """A host recorded under *tree* (``proc/``, ``sys/``, ``root/``).

        The environment comes from ``proc/self/environ`` in the tree.
        """
        host = cls(
            proc=os.path.join(tree, "proc"),
            sys=os.path.join(tree, "sys"),
            root=os.path.join(tree, "root"),
            environ={},
            live=False,
        )
        host.environ = parse_environ(host.read_bytes_proc("self/environ") or b"")

        return host

    def at_root(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    # Every file access of the fact collectors goes through the methods
    # below, so a subclass can watch them (see :mod:`.record`).

    def read_bytes(self, path: str) -> bytes | None:
        """The bytes of *path*, or None if it is missing or unreadable."""
        try:
            with open(path, "rb") as file:
                return file.read()
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def writable_dir(self, path: str) -> bool:
        """Whether files can be made in directory *path* (write and search)."""
        return os.access(path, os.W_OK | os.X_OK)

    def listdir(self, path: str) -> list[str]:
        """The names in directory *path*; raises OSError like os.listdir."""
        return os.listdir(path)

    def readlink(self, path: str) -> str:
        """The target of symlink *path*; raises OSError like os.readlink."""
        return os.readlink(path)

    def read_text(self, path: str) -> str | None:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def read_proc(self, name: str) -> str | None:
        return self.read_text(os.path.join(self.proc, name))

    def read_bytes_proc(self, name: str) -> bytes | None:
        return self.read_bytes(os.path.join(self.proc, name))

    def read_sys(self, name: str) -> str | None:
        return self.read_text(os.path.join(self.sys, name))


def parse_environ(data: bytes) -> dict[str, str]:
    """A NUL-separated environment block (``/proc/PID/environ``) as a dict."""
    env = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[os.fsdecode(key)] = os.fsdecode(value)

    return env


def parse_status(text: str) -> dict[str, str]:
    """``/proc/PID/status`` as a dict of field name to raw value."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()

    return fields


def has_cap(mask: int | None, bit: int) -> bool | None:
    return None if mask is None else bool(mask >> bit & 1)


# -- each group of facts -----------------------------------------------------


def kernel_facts(host: Host) -> dict:
    release = (host.read_proc("sys/kernel/osrelease") or "").strip() or None
    version = (host.read_proc("version") or "").strip() or None

    return {
        "release": release,
        "version": version,
        "fanotify_sysctl": host.is_dir(os.path.join(host.proc, "sys/fs/fanotify")),
        "gvisor": bool(version and GVISOR_VERSION_MARK in version),
    }


def kernel_config_facts(host: Host, release: str | None) -> dict:
    """CONFIG_FANOTIFY and CONFIG_FANOTIFY_ACCESS_PERMISSIONS where visible.

    Values are "y", "n" (present but not set), or None when no config is
    readable (most containers hide /boot and have no /proc/config.gz).
    """
    text, source = _read_kernel_config(host, release)
    values = {"source": source, "fanotify": None, "access_permissions": None}
    if text is None:
        return values

    options = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            options[key.strip()] = value.strip()
    values["fanotify"] = options.get("CONFIG_FANOTIFY", "n")
    values["access_permissions"] = options.get(
        "CONFIG_FANOTIFY_ACCESS_PERMISSIONS", "n"
    )

    return values


def _read_kernel_config(
    host: Host, release: str | None
) -> tuple[str | None, str | None]:
    packed = host.read_bytes_proc("config.gz")
    if packed is not None:
        try:
            text = gzip.decompress(packed).decode("utf-8", errors="replace")
            return text, "/proc/config.gz"
        except (OSError, EOFError, zlib.error):
            pass
    if release:
        name = f"/boot/config-{release}"
        text = host.read_text(host.at_root(name))
        if text is not None:
            return text, name

    return None, None


def process_facts(host: Host) -> dict:
    """Capabilities, seccomp state and ids from ``/proc/self/status``."""
    status = parse_status(host.read_proc("self/status") or "")
    eff = _hex_or_none(status.get("CapEff"))
    bnd = _hex_or_none(status.get("CapBnd"))
    uid = _first_int(status.get("Uid"), index=1)

    capabilities = {"effective": status.get("CapEff"), "bounding": status.get("CapBnd")}
    for name, bit in (
        ("sys_admin", CAP_SYS_ADMIN),
        ("dac_read_search", CAP_DAC_READ_SEARCH),
        ("audit_write", CAP_AUDIT_WRITE),
    ):
        capabilities[name] = {
            "effective": has_cap(eff, bit),
            "bounding": has_cap(bnd, bit),
        }

    seccomp = {
        "mode": _first_int(status.get("Seccomp")),
        "filters": _first_int(status.get("Seccomp_filters")),
        "no_new_privs": _first_int(status.get("NoNewPrivs")),
    }

    return {"uid": uid, "capabilities": capabilities, "seccomp": seccomp}


def _hex_or_none(value: str | None) -> int | None:
    try:
        return int(value, 16) if value else None
    except ValueError:
        return None


def _first_int(value: str | None, index: int = 0) -> int | None:
    parts = (value or "").split()
    try:
        return int(parts[index])
    except (IndexError, ValueError):
        return None


def user_namespace_facts(host: Host) -> dict:
    """Whether this process is in the initial user namespace.

    ``0 0 4294967295`` is the identity map of the initial namespace; any
    other map means capabilities here do not count for fanotify, which
    checks them in the initial namespace.
    """
    text = host.read_proc("self/uid_map")
    if text is None:
        return {"uid_map": None, "initial": None}

    rows = [line.split() for line in text.splitlines() if line.strip()]
    initial = rows == [["0", "0", "4294967295"]]

    return {"uid_map": [" ".join(row) for row in rows], "initial": initial}


def lsm_facts(host: Host) -> dict:
    text = host.read_sys("kernel/security/lsm")
    modules = [m for m in (text or "").strip().split(",") if m] if text else None
    enforce = host.read_sys("fs/selinux/enforce")
    selinux = {
        "present": enforce is not None or bool(modules and "selinux" in modules),
        "enforcing": None if enforce is None else enforce.strip() == "1",
    }

    return {"modules": modules, "selinux": selinux}


def nofile_facts(host: Host) -> dict:
    """RLIMIT_NOFILE, from /proc/self/limits (the live call when live)."""
    if host.live:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return {"soft": _limit(soft), "hard": _limit(hard)}

    for line in (host.read_proc("self/limits") or "").splitlines():
        if line.startswith("Max open files"):
            parts = line[len("Max open files") :].split()
            return {"soft": _limit_text(parts[0]), "hard": _limit_text(parts[1])}

    return {"soft": None, "hard": None}


def _limit(value: int) -> int | None:
    return None if value == resource.RLIM_INFINITY else value


def _limit_text(value: str) -> int | None:
    return None if value == "unlimited" else int(value)


# -- mounts and the filesystem under PATH ------------------------------------


def parse_mountinfo(text: str) -> list[dict]:
    """``/proc/PID/mountinfo`` rows: mount id, root, mount point, fs type, source."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        tail = right.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        mounts.append(
            {
                "mount_id": int(fields[0]),
                "root": _unescape(fields[3]),
                "mount_point": _unescape(fields[4]),
                "fs_type": tail[0],
                "source": _unescape(tail[1]) if len(tail) > 1 else None,
            }
        )

    return mounts


def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    for code in ("\\040", "\\011", "\\012", "\\134"):
        text = text.replace(code, chr(int(code[1:], 8)))

    return text


def mount_for(mounts: list[dict], path: str) -> dict | None:
    """The mount whose mount point is the longest prefix of *path*.

    The last of equal mount points wins: it is the one stacked on top.
    """
    best = None
    for mount in mounts:
        point = mount["mount_point"]
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best["mount_point"])):
            best = mount

    return best


def path_facts(host: Host, path: str, mounts: list[dict]) -> dict:
    real = os.path.realpath(path) if host.live else os.path.normpath(path)
    mount = mount_for(mounts, real)
    on_disk = host.at_root(real)

    return {
        "path": path,
        "resolved": real,
        "exists": host.is_dir(on_disk),
        "writable": host.writable_dir(on_disk),
        "fs_type": mount and mount["fs_type"],
        "mount_point": mount and mount["mount_point"],
        "mount_id": mount and mount["mount_id"],
        "root_fs_type": (mount_for(mounts, "/") or {}).get("fs_type"),
    }


# -- container runtime -------------------------------------------------------


def runtime_facts(host: Host, mounts: list[dict]) -> dict:
    """The container runtime, with every clue found.

    ``name`` is one of docker, podman, kubernetes, containerd, lxc,
    systemd-nspawn, container (some other ``container=`` value or an overlay
    root with no other clue) or none.
    """
    clues = _runtime_clues(host, mounts)
    evidence = [text for _, text in clues]
    names = [name for name, _ in clues]
    name = next((n for n in _RUNTIME_ORDER if n in names), "none")

    return {
        "name": name,
        "evidence": evidence,
        "podman_version": _podman_version(host),
        "rootless": _podman_rootless(host),
    }


# Kubernetes runs on top of a runtime whose clues also show, so it goes first.
_RUNTIME_ORDER = (
    "kubernetes",
    "podman",
    "docker",
    "containerd",
    "lxc",
    "systemd-nspawn",
    "container",
)


def _runtime_clues(host: Host, mounts: list[dict]) -> list[tuple[str, str]]:
    clues = []
    if host.exists(host.at_root("/.dockerenv")):
        clues.append(("docker", "/.dockerenv exists"))
    if host.exists(host.at_root("/run/.containerenv")):
        clues.append(("podman", "/run/.containerenv exists"))
    if "KUBERNETES_SERVICE_HOST" in host.environ:  # one of ENVIRON_KEYS
        clues.append(("kubernetes", "KUBERNETES_SERVICE_HOST is set"))
    clues += _container_env_clues(host)
    clues += _cgroup_clues(host.read_proc("self/cgroup") or "")
    root = mount_for(mounts, "/")
    if root and root["fs_type"] == "overlay":
        clues.append(("container", "the root filesystem is overlayfs"))

    return clues


def _container_env_clues(host: Host) -> list[tuple[str, str]]:
    clues = []
    sources = [("own environment", host.environ)]
    pid1 = host.read_bytes_proc("1/environ")
    if pid1 is not None:
        sources.append(("/proc/1/environ", parse_environ(pid1)))
    for where, env in sources:
        value = env.get("container")
        if value:
            name = value if value in _RUNTIME_ORDER else "container"
            if value == "oci":
                name = "container"
            clues.append((name, f"container={value} in {where}"))

    return clues


_CGROUP_MARKS = (
    ("kubepods", "kubernetes"),
    ("/docker/", "docker"),
    ("docker-", "docker"),
    ("libpod", "podman"),
    ("cri-containerd", "containerd"),
    ("containerd", "containerd"),
    ("/lxc/", "lxc"),
    ("lxc.payload", "lxc"),
    ("machine.slice/systemd-nspawn", "systemd-nspawn"),
)


def _cgroup_clues(text: str) -> list[tuple[str, str]]:
    clues = []
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for mark, name in _CGROUP_MARKS:
            if mark in path:
                clues.append((name, f"cgroup path {path}"))
                break

    return clues


def _containerenv(host: Host) -> dict[str, str]:
    text = host.read_text(host.at_root("/run/.containerenv")) or ""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')

    return values


def _podman_version(host: Host) -> str | None:
    engine = _containerenv(host).get("engine", "")
    return engine.partition("podman-")[2] or None


def _podman_rootless(host: Host) -> bool | None:
    value = _containerenv(host).get("rootless")
    return None if value is None else value == "1"


# -- fanotify groups on this machine -----------------------------------------

FANOTIFY_LINK = "anon_inode:[fanotify]"


def parse_fanotify_fdinfo(text: str) -> dict:
    """The ``fanotify flags:`` line and mark counts of one group's fdinfo.

    The kernel writes ``fanotify flags:%x event-flags:%x`` and then one
    line per mark: ``fanotify ino:`` (inode), ``fanotify mnt_id:`` (mount)
    or ``fanotify sdev:`` (filesystem).
    """
    flags = None
    marks = {"inode": 0, "mount": 0, "filesystem": 0}
    for line in text.splitlines():
        if not line.startswith("fanotify "):
            continue
        first = line.split()[1]
        if first.startswith("flags:"):
            flags = int(first[len("flags:") :], 16)
        elif first.startswith("ino:"):
            marks["inode"] += 1
        elif first.startswith("mnt_id:"):
            marks["mount"] += 1
        elif first.startswith("sdev:"):
            marks["filesystem"] += 1
    group_class = (
        None if flags is None else CLASS_NAMES.get(flags & CLASS_BITS, "unknown")
    )

    return {"flags": flags, "class": group_class, "marks": marks}


def fanotify_groups(host: Host, skip_pid: int | None = None) -> tuple[list[dict], bool]:
    """Every fanotify group fd visible under /proc, and whether all were visible.

    A process whose fd directory cannot be read (another user's, without
    privilege) makes the second value False.
    """
    groups = []
    complete = True
    for pid in _pids(host):
        if pid == skip_pid:
            continue
        fds = _fanotify_fds(host, pid)
        if fds is None:
            complete = False
            continue
        for fd in fds:
            group = _describe_group(host, pid, fd)
            if group is not None:
                groups.append(group)

    return groups, complete


def _pids(host: Host) -> list[int]:
    try:
        names = host.listdir(host.proc)
    except OSError:
        return []

    return sorted(int(name) for name in names if name.isdigit())


def _fanotify_fds(host: Host, pid: int) -> list[int] | None:
    fd_dir = os.path.join(host.proc, str(pid), "fd")
    try:
        names = host.listdir(fd_dir)
    except FileNotFoundError:
        return []
    except OSError:
        return None

    found = []
    for name in names:
        try:
            target = host.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target == FANOTIFY_LINK:
            found.append(int(name))

    return sorted(found)


def _describe_group(host: Host, pid: int, fd: int) -> dict | None:
    info = host.read_proc(f"{pid}/fdinfo/{fd}")
    if info is None:
        return None

    status = parse_status(host.read_proc(f"{pid}/status") or "")
    comm = (host.read_proc(f"{pid}/comm") or "").strip() or None
    group = {"pid": pid, "comm": comm, "uid": _first_int(status.get("Uid"), index=1)}
    group["fd"] = fd
    group.update(parse_fanotify_fdinfo(info))

    return group


def limit_facts(host: Host, uid: int | None, groups: list[dict]) -> dict:
    """The fanotify sysctls and how much of them this uid uses."""
    limits: dict = {}
    for name in FANOTIFY_SYSCTLS:
        text = host.read_proc(f"sys/fs/fanotify/{name}")
        limits[name] = int(text) if text and text.strip().isdigit() else None

    mine = [g for g in groups if g["uid"] == uid]
    limits["groups_used"] = len(mine)
    limits["marks_used"] = sum(sum(g["marks"].values()) for g in mine)
    limits["nofile"] = nofile_facts(host)

    return limits


# -- all of it ---------------------------------------------------------------


def collect(host: Host, path: str) -> dict:
    """Every fact doctor uses, as plain JSON-ready data.

    *path* is the directory the user asked about (the temporary directory
    if none). Never raises for missing or unreadable files: an unknown
    fact is None.
    """
    mounts = parse_mountinfo(host.read_proc("self/mountinfo") or "")
    kernel = kernel_facts(host)
    process = process_facts(host)
    skip = os.getpid() if host.live else None
    groups, complete = fanotify_groups(host, skip_pid=skip)

    return {
        "kernel": kernel,
        "kernel_config": kernel_config_facts(host, kernel["release"]),
        "uid": process["uid"],
        "capabilities": process["capabilities"],
        "seccomp": process["seccomp"],
        "user_namespace": user_namespace_facts(host),
        "runtime": runtime_facts(host, mounts),
        "lsm": lsm_facts(host),
        "path": path_facts(host, path, mounts),
        "limits": limit_facts(host, process["uid"], groups),
        "listeners": groups,
        "listeners_complete": complete,
    }

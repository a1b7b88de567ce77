"""Run commands in real runc containers assembled from this machine.

No image is downloaded: the container root is an empty directory in a
temporary bundle, filled with read-only bind mounts of the host's /usr,
/etc, the Python installation and the repository, plus a private /tmp,
/proc, /dev and a read-only /sys. The OCI config copies what Docker applies
by default (capability sets, masked /proc paths, namespaces) and lets a
test change the parts that decide whether fanotify works: capabilities,
the seccomp filter, a user namespace, the user, ``no_new_privileges``.

Every container lives in a :class:`Runtime`, which owns a private runc
state directory and bundle directory, so cleanup can find and remove
everything it started (and nothing else). Nothing is mounted on the host:
runc's mounts live in the container's own mount namespace and go away
with it.

Example::

    runtime = Runtime()
    try:
        result = runtime.run(Spec(args=["id", "-u"], user=(1000, 1000)))
        assert result.stdout == "1000\\n"
    finally:
        runtime.close()
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RUNC = "runc"

# Docker's default capability set (moby's oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
)

# Capability numbers from linux/capability.h, for reading CapEff and friends.
CAPABILITY_NUMBERS = {
    f"CAP_{name}": number
    for number, name in enumerate(
        """CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID
        SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW
        IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT
        SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD
        LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
        WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE""".split()
    )
}

# Docker's defaults for /proc and /sys (moby's oci/defaults.go).
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# Top-level host directories the container root is made of. A directory is
# bind-mounted read-only; a symlink (merged /usr: /bin -> usr/bin) is
# recreated as the same symlink.
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")

# Mount points of kernel_mounts() in the root; deeper ones (/dev/pts) are
# created by runc inside the /dev tmpfs.
KERNEL_MOUNT_POINTS = ("proc", "dev", "sys", "tmp")

# Directories created empty in the container root, as an image would have.
EMPTY_DIRS = ("root", "home", "run", "var/tmp", "mnt", "opt", "srv")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Evidence that container detectors look for, by runtime flavour.
MARKERS = ("docker", "podman")


# Runtime directories are named after the pid that made them, so that a
# later run can remove what a killed test session left behind.
BASE_PREFIX = "fanwatch-runc-"


class HarnessError(Exception):
    """The container could not be set up, started or cleaned up."""


class ContainerTimeout(HarnessError):
    """The container outlived its timeout; it was killed and removed.

    ``result`` holds the output collected until then.
    """

    def __init__(self, message: str, result: Result) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Bind:
    """A host path bind-mounted into the container, read-only by default."""

    source: str
    destination: str
    writable: bool = False


@dataclass(frozen=True)
class IdMap:
    """One user-namespace mapping, used for both uids and gids."""

    container_id: int = 0
    host_id: int = 100000
    size: int = 65536


@dataclass
class Spec:
    """What to run and under which confinement.

    ``caps`` is the full capability set (names with or without ``CAP_``),
    ``cap_add`` is added to it; both go to the bounding, effective and
    permitted sets while inheritable and ambient stay empty, as Docker
    does. A non-root ``user`` therefore ends up with no effective
    capabilities after exec, again as under Docker. ``seccomp`` is an OCI
    ``linux.seccomp`` object, or None for no filter. ``userns`` puts the
    container in a new user namespace with that mapping. ``marker`` makes
    the container look like Docker (``/.dockerenv``) or Podman
    (``/run/.containerenv`` and ``container=podman``), or neither (None).
    """

    args: Sequence[str]
    caps: Iterable[str] = DOCKER_DEFAULT_CAPS
    cap_add: Iterable[str] = ()
    seccomp: Mapping | None = None
    no_new_privileges: bool = False
    userns: IdMap | None = None
    user: tuple[int, int] = (0, 0)
    binds: Sequence[Bind] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "/"
    marker: str | None = "docker"
    repo: str | None = REPO

    def capabilities(self) -> list[str]:
        """The requested capability set, as sorted ``CAP_*`` names."""
        names = {_cap_name(name) for name in (*self.caps, *self.cap_add)}

        return sorted(names)


@dataclass(frozen=True)
class Result:
    """How a container ended, and its output.

    ``returncode`` is runc's: the process's exit status, 128 + N when a
    signal N ended it, or runc's own failure status (message in stderr)
    when the container could not be created.
    """

    returncode: int
    stdout: str
    stderr: str


def _cap_name(name: str) -> str:
    name = name.upper()
    full = name if name.startswith("CAP_") else "CAP_" + name
    if full not in CAPABILITY_NUMBERS:
        raise HarnessError(f"unknown capability {name!r}")

    return full


def capability_mask(names: Iterable[str]) -> int:
    """The bit mask /proc/<pid>/status shows for capability *names*.

    Raises :class:`HarnessError` for a name that is not a capability.
    """
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITY_NUMBERS[_cap_name(name)]

    return mask


def proc_status(text: str) -> dict[str, str]:
    """The fields of a /proc/<pid>/status text, values stripped."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()

    return fields


def python_args(code: str) -> list[str]:
    """Argv that runs *code* with this interpreter inside the container.

    fanwatch is importable as long as the spec keeps the repository (the
    default), which also puts it on ``PYTHONPATH``.
    """
    return [sys.executable, "-c", code]


def fanwatch_args(*argv: str) -> list[str]:
    """Argv that runs ``fanwatch *argv`` inside the container."""
    return [sys.executable, "-m", "fanwatch", *argv]


def runc_available() -> str | None:
    """``runc --version``'s first line, or None when runc cannot run."""
    try:
        done = subprocess.run(
            [RUNC, "--version"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None

    return done.stdout.splitlines()[0] if done.stdout else "runc"


class Runtime:
    """A private runc state root and bundle directory for a set of containers.

    Raises :class:`HarnessError` when not run as root (runc needs root to
    create namespaces and cgroups here).
    """

    def __init__(self, base: str | None = None) -> None:
        if os.geteuid() != 0:
            raise HarnessError("runc containers need root")
        # The bundles must be reachable by a user-namespaced root (host uid
        # 100000 or so), hence 0755 down to each container's root.
        parent = base or tempfile.gettempdir()
        sweep_stale(parent)
        self.base = tempfile.mkdtemp(prefix=f"{BASE_PREFIX}{os.getpid()}-", dir=parent)
        os.chmod(self.base, 0o755)
        self.state_root = os.path.join(self.base, "state")
        # Each container's cgroup is created below runc's own cgroup in every
        # hierarchy (relative cgroupsPath), grouped under this name.
        self.cgroup_parent = os.path.basename(self.base)
        os.mkdir(self.state_root, 0o700)
        self._containers: dict[str, Container] = {}

    def start(self, spec: Spec) -> Container:
        """Start a container in the background and return it.

        Raises :class:`OSError` if runc cannot be executed. A container
        that runc fails to create ends at once with runc's error in stderr.
        """
        container = Container(self, spec)
        self._containers[container.id] = container
        try:
            container.start()
        except BaseException:
            container.remove()
            raise

        return container

    def run(self, spec: Spec, timeout: float = 20) -> Result:
        """Run a container to completion and return its :class:`Result`.

        Raises :class:`ContainerTimeout` (after killing and removing the
        container) if it runs longer than *timeout* seconds.
        """
        container = self.start(spec)
        try:
            return container.wait(timeout)
        finally:
            container.remove()

    def runc(self, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess:
        """Run a runc command against this runtime's state root."""
        return subprocess.run(
            [RUNC, "--root", self.state_root, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def list_ids(self) -> list[str]:
        """Ids of the containers runc still knows in this state root."""
        done = self.runc("list", "--quiet")
        if done.returncode != 0:
            raise HarnessError(f"runc list failed: {done.stderr.strip()}")

        return done.stdout.split()

    def leftover_mounts(self) -> list[str]:
        """Host mount points inside this runtime's directory (should be none)."""
        return [point for point in host_mount_points() if _is_under(point, self.base)]

    def close(self) -> None:
        """Remove every container this runtime started, then its directory.

        Raises :class:`HarnessError` if something could not be removed.
        """
        for container in list(self._containers.values()):
            container.remove()
        # Containers started around this object (runc directly) go too.
        for leftover in self.list_ids():
            self.runc("delete", "--force", leftover)
        for point in reversed(self.leftover_mounts()):
            subprocess.run(["umount", "-l", point], check=False)

        problems = []
        if ids := self.list_ids():
            problems.append(f"runc containers left: {ids}")
        if mounts := self.leftover_mounts():
            problems.append(f"mounts left: {mounts}")
        for directory in cgroup_dirs(self.cgroup_parent):
            _remove_cgroup(directory, problems)
        if problems:
            raise HarnessError("; ".join(problems))

        shutil.rmtree(self.base, ignore_errors=True)


def sweep_stale(parent: str) -> None:
    """Remove runtime directories whose creating process is gone.

    A test session killed hard (SIGKILL, a thread-based timeout) cannot
    clean up; its runc containers, cgroups and bundles are removed here.
    Directories of live processes are left alone.
    """
    for entry in os.listdir(parent):
        if not entry.startswith(BASE_PREFIX):
            continue
        pid = entry[len(BASE_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or os.path.exists(f"/proc/{pid}"):
            continue
        _remove_stale(os.path.join(parent, entry))


def _remove_stale(base: str) -> None:
    state = os.path.join(base, "state")
    if os.path.isdir(state):
        for name in os.listdir(state):
            subprocess.run(
                [RUNC, "--root", state, "delete", "--force", name],
                capture_output=True,
                timeout=10,
            )
    for point in reversed(host_mount_points()):
        if _is_under(point, base):
            subprocess.run(["umount", "-l", point], check=False)
    for directory in cgroup_dirs(os.path.basename(base)):
        _remove_cgroup(directory, [])
    shutil.rmtree(base, ignore_errors=True)


def host_mount_points() -> list[str]:
    """Mount points of the caller's mount namespace, from /proc/self/mountinfo."""
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        fields = [line.split() for line in mountinfo]

    return [_unescape(parts[4]) for parts in fields if len(parts) > 4]


def cgroup_dirs(name: str) -> list[str]:
    """Existing cgroup directories called *name* below the caller's cgroups.

    Works for cgroup v1, v2 and hybrid layouts alike: every cgroup mount
    is combined with every path of /proc/self/cgroup.
    """
    with open("/proc/self/cgroup", encoding="utf-8") as own:
        paths = {line.rstrip("\n").split(":", 2)[2] for line in own if line.strip()}
    candidates = {
        os.path.join(mount, path.lstrip("/"), name)
        for mount in _cgroup_mounts()
        for path in paths
    }

    return sorted(path for path in candidates if os.path.isdir(path))


def _cgroup_mounts() -> list[str]:
    mounts = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            after = line.split(" - ", 1)[1].split()
            if after[0] in ("cgroup", "cgroup2"):
                mounts.append(_unescape(line.split()[4]))

    return mounts


def _remove_cgroup(directory: str, problems: list[str]) -> None:
    # A cgroup directory goes with rmdir once it has no tasks and no child
    # cgroups; its files cannot (and need not) be removed first.
    for path, _dirs, _files in os.walk(directory, topdown=False):
        try:
            os.rmdir(path)
        except OSError as exc:
            problems.append(f"cgroup {path} left: {exc.strerror}")


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return path.encode().decode("unicode_escape")


def _is_under(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


class Container:
    """One runc container: start it, talk to the host meanwhile, collect it.

    Use :meth:`wait_for_output` to synchronise with the process inside (for
    example until a watcher prints that it is ready), then :meth:`stop` or
    :meth:`wait`. :meth:`remove` always cleans up and is idempotent; the
    container is also a context manager that removes itself on exit.
    """

    def __init__(self, runtime: Runtime, spec: Spec) -> None:
        self.runtime = runtime
        self.spec = spec
        self.id = f"fanwatch-{uuid.uuid4().hex[:12]}"
        self.bundle = os.path.join(runtime.base, self.id)
        self._process: subprocess.Popen | None = None
        self._stdout = _Collector()
        self._stderr = _Collector()
        self._result: Result | None = None

    def start(self) -> None:
        """Write the bundle and start ``runc run`` in the foreground mode."""
        build_bundle(self.bundle, self.spec, f"{self.runtime.cgroup_parent}/{self.id}")
        self._process = subprocess.Popen(
            [
                RUNC,
                "--root",
                self.runtime.state_root,
                "run",
                "--bundle",
                self.bundle,
                self.id,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._stdout.follow(self._process.stdout)
        self._stderr.follow(self._process.stderr)

    @property
    def stdout(self) -> str:
        """Standard output received so far."""
        return self._stdout.text()

    @property
    def stderr(self) -> str:
        """Standard error received so far."""
        return self._stderr.text()

    def wait_for_output(self, text: str, timeout: float = 10) -> str:
        """Block until *text* appears in stdout; return stdout so far.

        Raises :class:`HarnessError` if the container exits first or
        :class:`ContainerTimeout` (container removed) after *timeout*.
        """
        deadline = time.monotonic() + timeout
        while not self._stdout.wait_for(text, min(0.1, timeout)):
            if self._process.poll() is not None and self._stdout.closed:
                raise HarnessError(
                    f"container exited ({self._process.returncode}) before "
                    f"printing {text!r}; stderr: {self.stderr.strip()}"
                )
            if time.monotonic() > deadline:
                self._time_out(f"no {text!r} in stdout after {timeout}s")

        return self.stdout

    def wait(self, timeout: float = 20) -> Result:
        """Wait for the process to exit and return its :class:`Result`.

        Raises :class:`ContainerTimeout` after *timeout* seconds, once the
        container is killed and removed.
        """
        try:
            returncode = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._time_out(f"container still running after {timeout}s")

        return self._finish(returncode)

    def stop(self, signal: str = "TERM", grace: float = 5) -> Result:
        """Send *signal*, then SIGKILL after *grace* seconds, as ``docker
        stop`` does; return the :class:`Result`.

        The process is the container's pid 1, which the kernel shields from
        signals it has no handler for: a shell without a ``trap`` only goes
        with the SIGKILL.
        """
        if self._process.poll() is None:
            self.runtime.runc("kill", self.id, signal)
        try:
            returncode = self._process.wait(grace)
        except subprocess.TimeoutExpired:
            self.runtime.runc("kill", self.id, "KILL")
            returncode = self._process.wait(10)

        return self._finish(returncode)

    def remove(self) -> None:
        """Kill and delete the container, reap runc and delete the bundle."""
        if self._process is None:
            shutil.rmtree(self.bundle, ignore_errors=True)
            return
        if self._process.poll() is None:
            self.runtime.runc("kill", self.id, "KILL")
        self.runtime.runc("delete", "--force", self.id)
        if self._process.poll() is None:
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                # runc itself is stuck: it is our child, end it by its pid.
                self._process.kill()
                self._process.wait(5)
        self._finish(self._process.returncode)
        shutil.rmtree(self.bundle, ignore_errors=True)
        self.runtime._containers.pop(self.id, None)

    def _time_out(self, message: str) -> None:
        self.remove()
        raise ContainerTimeout(message, self._result)

    def _finish(self, returncode: int) -> Result:
        if self._result is None:
            self._stdout.join(5)
            self._stderr.join(5)
            self._result = Result(returncode, self.stdout, self.stderr)

        return self._result

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


class _Collector:
    """Reads a pipe in a thread so a caller can wait for given text."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self.closed = False

    def follow(self, pipe) -> None:
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe) -> None:
        with pipe:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                with self._changed:
                    self._chunks.append(chunk)
                    self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return b"".join(self._chunks).decode(errors="replace")

    def wait_for(self, text: str, timeout: float) -> bool:
        with self._changed:
            return (
                self._changed.wait_for(
                    lambda: text in self.text() or self.closed, timeout
                )
                and text in self.text()
            )

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


def build_bundle(bundle: str, spec: Spec, cgroup: str) -> None:
    """Create the bundle directory: an empty root and ``config.json``."""
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(rootfs, mode=0o755)
    os.chmod(bundle, 0o755)
    mounts = [*system_mounts(rootfs), *kernel_mounts()]
    for name in KERNEL_MOUNT_POINTS:
        os.mkdir(os.path.join(rootfs, name), 0o755)
    # runc 1.1 gives a tmpfs the mode of its mount point, whatever mode=
    # says: /tmp must be 1777 here for a non-root user to write there.
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    for bind in _user_binds(spec):
        _make_mount_point(rootfs, bind.source, bind.destination)
        mounts.append(_bind_mount(bind))
    for name in EMPTY_DIRS:
        os.makedirs(os.path.join(rootfs, name), mode=0o755, exist_ok=True)
    _place_marker(rootfs, spec.marker)
    config = oci_config(spec, mounts, cgroup)
    with open(os.path.join(bundle, "config.json"), "w", encoding="utf-8") as out:
        json.dump(config, out, indent=1)


def system_mounts(rootfs: str) -> list[dict]:
    """Read-only binds of the host's system directories, symlinks mirrored."""
    mounts = []
    for name in SYSTEM_DIRS:
        host = os.path.join("/", name)
        inside = os.path.join(rootfs, name)
        if os.path.islink(host):
            os.symlink(os.readlink(host), inside)
        elif os.path.isdir(host):
            os.mkdir(inside, 0o755)
            mounts.append(_bind_mount(Bind(host, host)))

    return mounts


def kernel_mounts() -> list[dict]:
    """/proc, /dev, /sys and a private /tmp, with Docker's options."""
    return [
        _mount("/proc", "proc", "nosuid", "noexec", "nodev"),
        _mount("/dev", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        _mount(
            "/dev/pts",
            "devpts",
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ),
        _mount(
            "/dev/shm", "tmpfs", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"
        ),
        _mount("/dev/mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        _mount("/sys", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        _mount("/tmp", "tmpfs", "nosuid", "nodev", "mode=1777", "size=65536k"),
    ]


def _mount(destination: str, fstype: str, *options: str) -> dict:
    return {
        "destination": destination,
        "type": fstype,
        "source": fstype,
        "options": list(options),
    }


def _user_binds(spec: Spec) -> list[Bind]:
    """The interpreter, the repository, then the spec's own binds."""
    binds = []
    for prefix in _python_prefixes(spec.repo):
        binds.append(Bind(prefix, prefix))
    if spec.repo is not None:
        binds.append(Bind(spec.repo, spec.repo))

    return [*binds, *spec.binds]


def _python_prefixes(repo: str | None) -> list[str]:
    """Interpreter directories not already covered by /usr or the repo.

    The real path matters: a venv's python is a symlink into the base
    installation (under /root for pyenv), which must exist at the same path.
    """
    prefixes = []
    for path in {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}:
        covered = [os.path.join("/", name) for name in SYSTEM_DIRS]
        if repo is not None:
            covered.append(repo)
        if not any(_is_under(path, top) for top in covered):
            prefixes.append(path)

    return sorted(prefixes)


def _make_mount_point(rootfs: str, source: str, destination: str) -> None:
    """Create the mount point in the root, parents 0755, as runc may not
    be allowed to create it there (a user-namespaced root cannot write to a
    root owned by the host's root)."""
    if _is_under(destination, "/tmp"):
        return
    inside = os.path.join(rootfs, destination.lstrip("/"))
    if os.path.isdir(source):
        os.makedirs(inside, mode=0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(inside), mode=0o755, exist_ok=True)
    open(inside, "a").close()


def _bind_mount(bind: Bind) -> dict:
    mode = "rw" if bind.writable else "ro"

    return {
        "destination": bind.destination,
        "type": "bind",
        "source": bind.source,
        "options": ["rbind", mode, "nosuid", "nodev"],
    }


def _place_marker(rootfs: str, marker: str | None) -> None:
    if marker is None:
        return
    if marker not in MARKERS:
        raise HarnessError(f"unknown marker {marker!r}; choose from {MARKERS}")
    name = ".dockerenv" if marker == "docker" else "run/.containerenv"
    open(os.path.join(rootfs, name), "w").close()


def oci_config(spec: Spec, mounts: list[dict], cgroup: str) -> dict:
    """The OCI runtime config for *spec* (runc's config.json)."""
    caps = spec.capabilities()
    namespaces = [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")]
    linux: dict = {
        "namespaces": namespaces,
        # Relative: under runc's own cgroup in each hierarchy, so it works in
        # a nested cgroup (a CI job) and on hybrid v1/v2 machines alike.
        "cgroupsPath": cgroup,
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if spec.userns is not None:
        namespaces.append({"type": "user"})
        mapping = _id_mapping(spec.userns)
        linux["uidMappings"] = [mapping]
        linux["gidMappings"] = [mapping]
    if spec.seccomp is not None:
        linux["seccomp"] = dict(spec.seccomp)

    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": spec.user[0], "gid": spec.user[1]},
            "args": list(spec.args),
            "env": _environment(spec),
            "cwd": spec.cwd,
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "inheritable": [],
                "ambient": [],
            },
            "noNewPrivileges": spec.no_new_privileges,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "fanwatch-test",
        "mounts": mounts,
        "linux": linux,
    }


def _id_mapping(idmap: IdMap) -> dict:
    return {
        "containerID": idmap.container_id,
        "hostID": idmap.host_id,
        "size": idmap.size,
    }


def _environment(spec: Spec) -> list[str]:
    env = {
        "PATH": DEFAULT_PATH,
        "HOME": "/root" if spec.user[0] == 0 else "/",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if spec.repo is not None:
        env["PYTHONPATH"] = spec.repo
    if spec.marker == "podman":
        env["container"] = "podman"
    env.update(spec.env)

    return [f"{key}={value}" for key, value in env.items()]

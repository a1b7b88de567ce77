"""fanwatch's container claims, case by case, under runc.

Each case is a confinement a real runtime applies: Docker's default
capabilities and seccomp profile, that profile with the fix doctor prints,
no filter, Docker's defaults plus SYS_ADMIN, Podman 5.5+'s defaults, and a
user namespace. For each, doctor's JSON verdict is checked from inside the
container, then what ``fanwatch watch --json`` reports while the host
writes into a bind-mounted directory. docs/CONTAINER-TESTS.md ("The
matrix") lists the cases and what each proves.
"""

from __future__ import annotations

import json
import shlex

import pytest

from fanwatch.constants import (
    FAN_CLASS_CONTENT,
    FAN_CLASS_NOTIF,
    FAN_REPORT_DFID_NAME,
    FAN_REPORT_FID,
)

from .harness import DOCKER_DEFAULT_CAPS, Bind, IdMap, fanwatch_args, python_args
from .matrix_helpers import (
    DATA,
    DOCKER_PROFILE,
    PODMAN_DROPPED_CAPS,
    PODMAN_PROFILE,
    doctor,
    fanwatch_on_host,
    finding,
    patched,
    resolved,
    watch_writes,
)

ROOT = (0, 0)
NON_ROOT = (1000, 1000)
ALL_JOBS = ("watch", "watch-mount", "guard")
WATCH_ONLY = {"watch": True, "watch-mount": False, "guard": False}
PODMAN_CAPS = tuple(
    cap for cap in DOCKER_DEFAULT_CAPS if cap not in PODMAN_DROPPED_CAPS
)

# Prints "ok" or the errno name for fanotify_init(int(argv[1])).
INIT_PROBE = """
import errno, sys
from fanwatch import syscalls
try:
    syscalls.fanotify_init(int(sys.argv[1]))
except OSError as exc:
    print(errno.errorcode[exc.errno])
else:
    print("ok")
"""

# For each "kind:path" in argv[1:] (kind "mount" or "filesystem"): an FID
# group, that mark with FAN_CREATE, a new file under path and its event.
# Prints one JSON object: {"kind:path": "event" | "no-event" | errno name}.
MARK_AND_CREATE = """
import errno, json, os, sys, time
from fanwatch.constants import *
from fanwatch.group import Group
KINDS = {"mount": FAN_MARK_MOUNT, "filesystem": FAN_MARK_FILESYSTEM}
results = {}
for item in sys.argv[1:]:
    kind, path = item.split(":", 1)
    with Group(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_REPORT_FID) as group:
        mask = FAN_CREATE if kind == "filesystem" else FAN_CLOSE_WRITE
        try:
            group.mark(path, mask, kind=KINDS[kind])
        except OSError as exc:
            results[item] = errno.errorcode[exc.errno]
            continue
        name = f"made-{kind}"
        with open(os.path.join(path, name), "w"):
            pass
        results[item] = "no-event"
        deadline = time.monotonic() + 5
        while results[item] == "no-event" and time.monotonic() < deadline:
            with group.read(timeout=1) as batch:
                if any(event.name == name.encode() for event in batch):
                    results[item] = "event"
print(json.dumps(results))
"""

# Mounts a tmpfs at /tmp/own (needs CAP_SYS_ADMIN in the container's user
# namespace, which then owns that superblock), then runs "$@".
WITH_OWN_TMPFS = 'mkdir /tmp/own && mount -t tmpfs own /tmp/own && exec "$@"'


@pytest.fixture(scope="module")
def watch_profile(tmp_path_factory) -> str:
    """The profile doctor's seccomp fix writes: Docker's default patched by
    ``fanwatch seccomp patch default.json --for watch``."""
    out = tmp_path_factory.mktemp("profiles") / "fanwatch-seccomp.json"

    return patched(DOCKER_PROFILE, "watch", str(out))


def docker_default() -> dict:
    """Case 1: Docker's default profile as Docker loads it for its default
    capabilities, with the /.dockerenv marker."""
    return {"seccomp": resolved(DOCKER_PROFILE), "marker": "docker"}


def docker_sys_admin() -> dict:
    """Case 4: ``docker run --cap-add SYS_ADMIN``; moby re-evaluates the
    profile for the larger capability set."""
    return {
        "cap_add": ["SYS_ADMIN"],
        "seccomp": resolved(DOCKER_PROFILE, cap_add=("SYS_ADMIN",)),
        "marker": "docker",
    }


def podman_default() -> dict:
    """Case 5: Podman 5.5+ defaults: its capability set, its profile (which
    allows fanotify_init), /run/.containerenv."""
    return {
        "caps": PODMAN_CAPS,
        "seccomp": resolved(PODMAN_PROFILE, cap_drop=PODMAN_DROPPED_CAPS),
        "marker": "podman",
    }


@pytest.fixture(params=["patched-docker-profile", "no-filter"])
def unprivileged(request, watch_profile) -> dict:
    """Case 2 (the patched profile, Docker's caps) and case 3 (no filter,
    Docker's caps): no CAP_SYS_ADMIN, fanotify_init allowed."""
    if request.param == "no-filter":
        return {"seccomp": None, "marker": "docker"}

    return {"seccomp": resolved(watch_profile), "marker": "docker"}


def init_probe(container, flags: int, **spec) -> str:
    result = container.run([*python_args(INIT_PROBE), str(flags)], **spec)
    assert result.returncode == 0, result.stderr

    return result.stdout.strip()


# -- 1. Docker's default capabilities and profile ----------------------------


def test_docker_default_doctor_blames_the_seccomp_profile(container):
    report = doctor(container, "watch", **docker_default())

    verdict = report["verdict"]
    assert verdict["ok"] is False
    assert verdict["jobs"] == dict.fromkeys(ALL_JOBS, False)
    assert verdict["blocked_by"] == ["seccomp-blocks-fanotify-init"]
    ids = {item["id"] for item in report["findings"]}
    assert not ids & {"kernel-too-old-for-unprivileged", "fanotify-not-built"}
    # The filter answered EPERM where the kernel would have said EINVAL.
    assert report["probes"]["init-unknown-flag"]["errno"] == "EPERM"
    assert report["facts"]["runtime"]["name"] == "docker"


def test_docker_default_doctor_fix_is_the_patched_profile(container):
    report = doctor(container, "watch", **docker_default())

    fixes = finding(report, "seccomp-blocks-fanotify-init")["fixes"]
    docker_fix = fixes[0]
    assert docker_fix["runtime"] == "docker"
    assert "fanwatch seccomp patch" in docker_fix["snippet"]
    assert "--for watch" in docker_fix["snippet"]
    assert "--security-opt seccomp=" in docker_fix["snippet"]


def test_docker_default_fix_from_doctor_makes_watch_run(container, tmpfs, tmp_path):
    report = doctor(container, "watch", **docker_default())
    snippet = finding(report, "seccomp-blocks-fanotify-init")["fixes"][0]["snippet"]
    command = next(line for line in snippet.splitlines() if "seccomp patch" in line)
    argv = shlex.split(command)

    # The command as printed, on our copy of Docker's default profile.
    assert argv[:3] == ["fanwatch", "seccomp", "patch"]
    out = str(tmp_path / argv[argv.index("-o") + 1])
    argv = [DOCKER_PROFILE if arg == "default.json" else arg for arg in argv[1:]]
    done = fanwatch_on_host(*argv[: argv.index("-o")], "-o", out)
    assert done.returncode == 0, done.stderr
    fixed = {"seccomp": resolved(out), "marker": "docker"}

    assert doctor(container, "watch", **fixed)["verdict"]["ok"] is True
    seen = watch_writes(container, tmpfs, [DATA], **fixed)
    assert seen.for_path(f"{DATA}/host.txt"), seen


def test_docker_default_watch_exits_3_pointing_to_doctor(container, tmpfs):
    result = container.run(
        fanwatch_args("watch", DATA),
        binds=[Bind(tmpfs, DATA)],
        **docker_default(),
    )

    assert result.returncode == 3
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("fanwatch: ") for line in lines)
    assert [line for line in lines if "fanwatch doctor" in line]


def test_docker_default_refuses_fid_groups(container):
    flags = FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_REPORT_FID

    assert init_probe(container, flags, **docker_default()) == "EPERM"


# -- 2. the patched profile, and 3. no filter: no CAP_SYS_ADMIN ---------------


@pytest.mark.parametrize("user", [ROOT, NON_ROOT], ids=["root", "uid1000"])
def test_unprivileged_doctor_says_watch_works(container, unprivileged, user):
    report = doctor(container, "watch", user=user, **unprivileged)

    verdict = report["verdict"]
    assert verdict["ok"] is True
    assert verdict["mode"] == "unprivileged"
    assert verdict["jobs"] == WATCH_ONLY
    assert report["selftests"]["inode-mark"]["outcome"] == "ok"
    assert report["selftests"]["inode-mark"]["pid_reported"] is False


def test_unprivileged_permission_listener_fails(container, unprivileged):
    assert init_probe(container, FAN_CLASS_CONTENT, **unprivileged) == "EPERM"

    report = doctor(container, "guard", **unprivileged)
    assert report["verdict"]["ok"] is False
    assert report["verdict"]["blocked_by"][0] == "no-cap-sys-admin"
    assert report["probes"]["init-content"]["errno"] == "EPERM"


def test_unprivileged_mount_marks_fail(container, unprivileged):
    report = doctor(container, "watch-mount", **unprivileged)

    assert report["verdict"]["blocked_by"][0] == "no-cap-sys-admin"
    assert report["selftests"]["mount-mark"]["errno"] == "EPERM"
    assert report["selftests"]["filesystem-mark"]["errno"] == "EPERM"


@pytest.mark.parametrize("user", [ROOT, NON_ROOT], ids=["root", "uid1000"])
def test_unprivileged_watch_sees_host_writes(container, tmpfs, unprivileged, user):
    seen = watch_writes(container, tmpfs, [DATA], user=user, **unprivileged)

    host = seen.for_path(f"{DATA}/host.txt")
    inside = seen.for_path(f"{DATA}/inside.txt")
    assert host and inside, seen
    # Without CAP_SYS_ADMIN the kernel hides every pid but the listener's.
    assert {event["pid"] for event in host + inside} == {0}
    assert "create" in {kind for event in host for kind in event["events"]}


# -- 4. Docker's defaults plus SYS_ADMIN --------------------------------------


@pytest.mark.parametrize("job", ALL_JOBS)
def test_sys_admin_doctor_says_every_job_works(container, job):
    report = doctor(container, job, **docker_sys_admin())

    verdict = report["verdict"]
    assert verdict["ok"] is True
    assert verdict["jobs"] == dict.fromkeys(ALL_JOBS, True)
    assert verdict["blocked_by"] == []
    # The permission self-test marks only a tmpfs doctor mounted privately.
    assert report["selftests"]["permission"]["outcome"] == "ok"
    assert report["selftests"]["permission"]["where"] == "private tmpfs"
    assert report["selftests"]["filesystem-mark"]["pid_reported"] is True


# A filesystem mark sees every write to the tmpfs behind the bind mount,
# the host's included; a mount mark only I/O through the container's mount.
@pytest.mark.parametrize(
    "scope, host_write_seen",
    [([], True), (["--filesystem"], True), (["--mount"], False)],
    ids=["tree", "filesystem", "mount"],
)
def test_sys_admin_watch_modes(container, tmpfs, scope, host_write_seen):
    seen = watch_writes(container, tmpfs, [*scope, DATA], **docker_sys_admin())

    inside = seen.for_path(f"{DATA}/inside.txt")
    assert inside, seen
    # A process in the container's pid namespace: its pid there.
    assert {event["pid"] for event in inside} == {seen.driver_pid}
    host = seen.for_path(f"{DATA}/host.txt")
    assert bool(host) is host_write_seen, seen
    # The host's writer is outside the container's pid namespace.
    assert {event["pid"] for event in host} <= {0}


# -- 5. Podman 5.5+ defaults --------------------------------------------------


def test_podman_default_doctor_says_watch_works_unprivileged(container):
    report = doctor(container, "watch", **podman_default())

    verdict = report["verdict"]
    assert verdict["ok"] is True
    assert verdict["mode"] == "unprivileged"
    assert verdict["jobs"] == WATCH_ONLY
    assert report["facts"]["runtime"]["name"] == "podman"
    assert "seccomp-blocks-fanotify-init" not in {f["id"] for f in report["findings"]}


def test_podman_default_watch_sees_host_writes(container, tmpfs):
    seen = watch_writes(container, tmpfs, [DATA], **podman_default())

    host = seen.for_path(f"{DATA}/host.txt")
    assert host, seen
    assert {event["pid"] for event in host} == {0}


# -- 6. a user-namespace container ---------------------------------------------


def userns(watch_profile: str, **extra) -> dict:
    return {"userns": IdMap(), "seccomp": resolved(watch_profile), **extra}


def userns_sys_admin() -> dict:
    """Root of a user namespace with CAP_SYS_ADMIN there (it may mount)."""
    return {"userns": IdMap(), **docker_sys_admin()}


def test_userns_doctor_inode_marks_only(container, tmpfs, watch_profile):
    spec = userns(watch_profile, binds=[Bind(tmpfs, DATA, writable=True)])

    report = doctor(container, "watch", DATA, **spec)
    assert report["verdict"]["ok"] is True
    assert report["verdict"]["jobs"] == WATCH_ONLY

    report = doctor(container, "watch-mount", DATA, **spec)
    assert report["verdict"]["ok"] is False
    assert report["verdict"]["blocked_by"][0] == "user-namespace"


@pytest.mark.parametrize("writable", [True, False], ids=["rw-bind", "ro-bind"])
def test_userns_sys_admin_doctor_judges_the_bind_mount(container, tmpfs, writable):
    # CAP_SYS_ADMIN inside the user namespace does not open mount marks on a
    # host bind mount, even where (6.16+) its own tmpfs mounts would take them.
    spec = userns_sys_admin()
    spec["binds"] = [Bind(tmpfs, DATA, writable=writable)]

    report = doctor(container, "watch-mount", DATA, **spec)

    assert report["verdict"]["ok"] is False
    assert report["verdict"]["blocked_by"][0] == "user-namespace"
    assert report["selftests"]["mount-mark"]["errno"] == "EPERM"


def test_userns_watch_sees_host_writes(container, tmpfs, watch_profile):
    seen = watch_writes(container, tmpfs, [DATA], **userns(watch_profile))

    host = seen.for_path(f"{DATA}/host.txt")
    assert host, seen
    assert {event["pid"] for event in host} == {0}


def marks_in_userns(container, tmpfs, *targets: str) -> dict:
    result = container.run(
        ["sh", "-c", WITH_OWN_TMPFS, "sh", *python_args(MARK_AND_CREATE), *targets],
        binds=[Bind(tmpfs, DATA, writable=True)],
        **userns_sys_admin(),
    )
    assert result.returncode == 0, result.stderr

    return json.loads(result.stdout)


def test_userns_mount_and_filesystem_marks_refused_on_bind_mount(container, tmpfs):
    results = marks_in_userns(container, tmpfs, f"mount:{DATA}", f"filesystem:{DATA}")

    assert results == dict.fromkeys([f"mount:{DATA}", f"filesystem:{DATA}"], "EPERM")


def test_userns_mount_and_filesystem_marks_on_own_tmpfs(container, tmpfs):
    targets = ["filesystem:/tmp/own", "mount:/tmp/own"]
    results = marks_in_userns(container, tmpfs, *targets)

    if results["filesystem:/tmp/own"] == "EPERM":
        pytest.skip(
            "this kernel has no mount/filesystem marks for a user-namespace "
            "admin on its own tmpfs (Linux 6.16): the filesystem mark got EPERM"
        )
    assert results == dict.fromkeys(targets, "event")


WATCH_OWN_TMPFS = """
mkdir /tmp/own && mount -t tmpfs own /tmp/own || exit 90
"$@" watch --json -c 1 -t 10 /tmp/own > /tmp/out 2> /tmp/err &
watcher=$!
for _ in $(seq 200); do grep -q watching /tmp/err && break; sleep 0.05; done
echo hello > /tmp/own/made-inside
wait "$watcher"
echo "status=$?"
cat /tmp/out /tmp/err
"""


@pytest.mark.parametrize("scope", ["--filesystem", "--mount"])
def test_userns_watch_whole_own_tmpfs(container, tmpfs, scope):
    probe = marks_in_userns(container, tmpfs, "filesystem:/tmp/own")
    if probe["filesystem:/tmp/own"] == "EPERM":
        pytest.skip(
            "this kernel has no mount/filesystem marks for a user-namespace "
            "admin on its own tmpfs (Linux 6.16): the filesystem mark got EPERM"
        )
    script = WATCH_OWN_TMPFS.replace("watch --json", f"watch {scope} --json")

    result = container.run(
        ["sh", "-c", script, "sh", *fanwatch_args()], **userns_sys_admin()
    )

    assert "status=0" in result.stdout, result
    event = json.loads(result.stdout.splitlines()[1])
    assert event["path"] == "/tmp/own/made-inside"
    assert "Traceback" not in result.stdout

"""Findings: what stops or limits fanotify here, with evidence and fixes, as data.

:func:`diagnose` turns facts, probe results and self-test results into a
list of :class:`Finding` and a verdict. It does no I/O, so each finding is
tested on recorded inputs. Finding ids are stable kebab-case names,
documented in docs/DOCTOR.md; scripts may match on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fixes import Fix, seccomp_fixes, sys_admin_fixes, user_namespace_fixes

JOBS = ("watch", "watch-mount", "guard")

# The self-test whose event proves that a job can run here.
REQUIRED_SELFTEST = {
    "watch": "inode-mark",
    "watch-mount": "mount-mark",
    "guard": "permission",
}

ALL_JOBS = JOBS
PRIVILEGED_JOBS = ("watch-mount", "guard")

# A usage at or above this share of a fanotify limit is reported.
NEAR_LIMIT = 0.75
# Below this many open files a guard may run out of event descriptors.
LOW_NOFILE = 1024

UNKNOWN_FLAG_CALL = "fanotify_init(FAN_CLASS_NOTIF|FAN_REPORT_FID|0x80000000)"


@dataclass
class Finding:
    """One thing doctor found.

    ``blocks`` lists the jobs it stops; ``level`` ("warning" or "info") is
    its severity when it stops none of the jobs judged; ``verdict`` is the
    sentence used as the verdict when this finding is what stops the job.
    """

    id: str
    message: str
    evidence: list[str]
    blocks: tuple[str, ...] = ()
    level: str = "info"
    fixes: list[Fix] = field(default_factory=list)
    verdict: str | None = None

    def severity(self, job: str, job_ok: bool) -> str:
        return "error" if job in self.blocks and not job_ok else self.level

    def to_dict(self, job: str, job_ok: bool) -> dict:
        return {
            "id": self.id,
            "severity": self.severity(job, job_ok),
            "blocks": list(self.blocks),
            "message": self.message,
            "evidence": self.evidence,
            "fixes": [fix.to_dict() for fix in self.fixes],
        }


@dataclass
class Inputs:
    """What the findings are computed from; ``notes`` are remarks of the run."""

    facts: dict
    probes: dict
    selftests: dict
    job: str = "watch"
    notes: list[str] = field(default_factory=list)

    @property
    def runtime(self) -> dict:
        return self.facts.get("runtime") or {"name": "none", "evidence": []}

    def cap(self, name: str, which: str = "effective") -> bool | None:
        return ((self.facts.get("capabilities") or {}).get(name) or {}).get(which)

    def probe(self, name: str) -> dict:
        return self.probes.get(name) or {}

    def selftest(self, name: str) -> dict:
        return self.selftests.get(name) or {}


def outcome(result: dict) -> str | None:
    return result.get("outcome")


def refused(result: dict, *errnos: str) -> bool:
    return outcome(result) == "refused" and (
        not errnos or result.get("errno") in errnos
    )


def describe(result: dict) -> str:
    """A short text for a probe or self-test result."""
    kind = outcome(result) or "not run"
    if kind == "refused":
        return f"{result.get('step', 'call')} refused with {result.get('errno')}"
    if kind == "killed":
        return f"killed by {result.get('signal')}"

    return kind


# -- how the kernel answered the unknown-flag probe --------------------------


def init_gate(inputs: Inputs) -> str:
    """Who answered fanotify_init with an unused flag.

    "kernel" (EINVAL: a 5.13+ kernel got the call), "seccomp-kill",
    "seccomp" (EPERM or ENOSYS from a filter), "old-kernel" (EPERM from a
    pre-5.13 kernel), "missing" (ENOSYS with no filter: not built or not
    implemented), or "unknown".
    """
    result = inputs.probe("init-unknown-flag")
    sysctl = (inputs.facts.get("kernel") or {}).get("fanotify_sysctl")
    filtered = ((inputs.facts.get("seccomp") or {}).get("mode") or 0) == 2
    if outcome(result) == "killed":
        return "seccomp-kill"
    if refused(result, "EINVAL"):
        return "kernel"
    if refused(result, "EPERM"):
        if sysctl or (inputs.cap("sys_admin") and _initial_userns(inputs)):
            return "seccomp"
        return "old-kernel"
    if refused(result, "ENOSYS"):
        return "seccomp" if filtered and not _gvisor(inputs) else "missing"

    return "unknown"


def _initial_userns(inputs: Inputs) -> bool:
    return (inputs.facts.get("user_namespace") or {}).get("initial") is not False


def _gvisor(inputs: Inputs) -> bool:
    return bool((inputs.facts.get("kernel") or {}).get("gvisor"))


def _probe_evidence(inputs: Inputs) -> str:
    return (
        f"{UNKNOWN_FLAG_CALL} in a child: {describe(inputs.probe('init-unknown-flag'))}"
    )


def _seccomp_evidence(inputs: Inputs) -> str:
    seccomp = inputs.facts.get("seccomp") or {}
    return f"Seccomp: {seccomp.get('mode')}, Seccomp_filters: {seccomp.get('filters')}"


def _runtime_evidence(inputs: Inputs) -> list[str]:
    runtime = inputs.runtime
    clues = "; ".join(runtime.get("evidence") or []) or "no container clue"
    return [f"runtime {runtime.get('name')}: {clues}"]


def _filter_owner(inputs: Inputs) -> str:
    name = inputs.runtime.get("name")
    return (
        "a seccomp filter on this process"
        if name in (None, "none")
        else "this container's seccomp profile"
    )


# -- checks, in the order their findings are blamed for a verdict ------------


def check_gvisor(inputs: Inputs) -> Finding | None:
    if not _gvisor(inputs):
        return None
    kernel = inputs.facts.get("kernel") or {}
    return Finding(
        "gvisor",
        "this is a gVisor sandbox (runsc), which does not implement fanotify",
        [f"/proc/version: {kernel.get('version')}", _probe_evidence(inputs)],
        blocks=ALL_JOBS,
        fixes=[
            Fix(
                "docker",
                "run this container with runc",
                "docker run --runtime=runc IMAGE",
                "none beyond leaving the gVisor sandbox",
            ),
            Fix(
                "kubernetes",
                "schedule the pod without the gVisor RuntimeClass",
                "spec:\n  runtimeClassName: null",
                "none beyond leaving the gVisor sandbox",
            ),
        ],
        verdict="fanotify does not exist here: this is a gVisor sandbox",
    )


def check_fanotify_not_built(inputs: Inputs) -> Finding | None:
    config = inputs.facts.get("kernel_config") or {}
    missing = init_gate(inputs) == "missing" and not _gvisor(inputs)
    if config.get("fanotify") != "n" and not missing:
        return None
    evidence = [_probe_evidence(inputs), _seccomp_evidence(inputs)]
    if config.get("source"):
        evidence.append(f"{config['source']}: CONFIG_FANOTIFY={config.get('fanotify')}")
    return Finding(
        "fanotify-not-built",
        "this kernel has no fanotify (CONFIG_FANOTIFY is not set)",
        evidence,
        blocks=ALL_JOBS,
        fixes=[
            Fix(
                "host",
                "use a kernel built with CONFIG_FANOTIFY=y (every major distribution's is)",
                None,
                "a kernel change on the host",
            )
        ],
        verdict="this kernel has no fanotify",
    )


def check_seccomp_kill(inputs: Inputs) -> Finding | None:
    if init_gate(inputs) != "seccomp-kill":
        return None
    return Finding(
        "seccomp-kills-fanotify-init",
        f"{_filter_owner(inputs)} kills any process that calls fanotify_init",
        [
            _probe_evidence(inputs),
            _seccomp_evidence(inputs),
            *_runtime_evidence(inputs),
        ],
        blocks=ALL_JOBS,
        fixes=seccomp_fixes(inputs.runtime, inputs.job),
        verdict=f"fanotify_init is blocked by {_filter_owner(inputs)} (it kills the caller)",
    )


def check_seccomp(inputs: Inputs) -> Finding | None:
    if init_gate(inputs) != "seccomp":
        return None
    sysctl = (inputs.facts.get("kernel") or {}).get("fanotify_sysctl")
    evidence = [
        _probe_evidence(inputs) + " (a 5.13+ kernel answers EINVAL)",
        _seccomp_evidence(inputs),
    ]
    if sysctl:
        evidence.append("/proc/sys/fs/fanotify exists: the kernel is 5.13 or later")
    return Finding(
        "seccomp-blocks-fanotify-init",
        f"{_filter_owner(inputs)} refuses fanotify_init before the kernel sees it",
        evidence + _runtime_evidence(inputs),
        blocks=ALL_JOBS,
        fixes=seccomp_fixes(inputs.runtime, inputs.job),
        verdict=f"fanotify_init is blocked by {_filter_owner(inputs)}",
    )


def check_old_kernel(inputs: Inputs) -> Finding | None:
    if init_gate(inputs) != "old-kernel":
        return None
    release = (inputs.facts.get("kernel") or {}).get("release")
    return Finding(
        "kernel-too-old-for-unprivileged",
        f"kernel {release} lets only CAP_SYS_ADMIN call fanotify_init (unprivileged groups came in 5.13)",
        [
            _probe_evidence(inputs),
            "/proc/sys/fs/fanotify is missing: the kernel is older than 5.13",
        ],
        blocks=ALL_JOBS,
        fixes=[
            Fix(
                "host",
                "upgrade the kernel to 5.13 or later (5.10.220+ has the backport)",
                None,
                "a kernel upgrade on the host",
            ),
            *sys_admin_fixes(inputs.runtime, inputs.job),
        ],
        verdict=f"this kernel ({release}) is too old for unprivileged fanotify and this process lacks CAP_SYS_ADMIN",
    )


def check_user_namespace(inputs: Inputs) -> Finding | None:
    userns = inputs.facts.get("user_namespace") or {}
    if userns.get("initial") is not False:
        return None
    rootless = inputs.runtime.get("rootless")
    evidence = [
        f"/proc/self/uid_map: {' | '.join(userns.get('uid_map') or [])} (the initial namespace maps 0 0 4294967295)"
    ]
    if rootless:
        evidence.append("/run/.containerenv: rootless=1")
    return Finding(
        "user-namespace",
        "this process runs in a user namespace: its capabilities do not count for "
        "fanotify, which checks them in the initial namespace (since 6.16 only "
        "filesystems mounted inside the namespace can take mount marks)",
        evidence,
        blocks=PRIVILEGED_JOBS,
        fixes=user_namespace_fixes(inputs.runtime),
        verdict="this process is in a user namespace, so privileged fanotify (mount marks, permission events) is impossible",
    )


def check_no_sys_admin(inputs: Inputs) -> Finding | None:
    if inputs.cap("sys_admin") is not False:
        return None
    caps = inputs.facts.get("capabilities") or {}
    bounding = inputs.cap("sys_admin", "bounding")
    evidence = [
        f"CapEff: {caps.get('effective')} (bit 21, CAP_SYS_ADMIN, is clear)",
        f"CapBnd: {caps.get('bounding')} (CAP_SYS_ADMIN {'is' if bounding else 'is not'} in the bounding set)",
    ]
    return Finding(
        "no-cap-sys-admin",
        "no CAP_SYS_ADMIN: only unprivileged FID groups with inode (directory) "
        "marks; no mount or filesystem marks, no permission events, no process "
        "ids or file descriptors in events, bounded queue",
        evidence,
        blocks=PRIVILEGED_JOBS,
        fixes=sys_admin_fixes(inputs.runtime, inputs.job)
        if inputs.job != "watch"
        else [],
        verdict="this process lacks CAP_SYS_ADMIN, which mount marks and permission events need",
    )


def check_permission_not_built(inputs: Inputs) -> Finding | None:
    config = inputs.facts.get("kernel_config") or {}
    mark_einval = (
        refused(inputs.selftest("permission"), "EINVAL")
        and inputs.selftest("permission").get("step") == "fanotify_mark"
    )
    if config.get("access_permissions") != "n" and not mark_einval:
        return None
    evidence = []
    if config.get("source"):
        evidence.append(
            f"{config['source']}: CONFIG_FANOTIFY_ACCESS_PERMISSIONS={config.get('access_permissions')}"
        )
    if mark_einval:
        evidence.append("FAN_OPEN_PERM mark on a FAN_CLASS_CONTENT group: EINVAL")
    return Finding(
        "permission-events-not-built",
        "this kernel was built without CONFIG_FANOTIFY_ACCESS_PERMISSIONS: no permission events (Docker Desktop's kernel is one)",
        evidence,
        blocks=("guard",),
        fixes=[
            Fix(
                "host",
                "run on a kernel with CONFIG_FANOTIFY_ACCESS_PERMISSIONS=y (a Linux host rather than Docker Desktop's VM)",
                None,
                "a kernel change on the host",
            )
        ],
        verdict="this kernel has no fanotify permission events",
    )


HANDLE_ERRNOS = ("EOPNOTSUPP", "ENOTSUP", "ENODEV", "ENOSYS")


def check_fs_handles(inputs: Inputs) -> Finding | None:
    probe = inputs.probe("name-to-handle")
    inode = inputs.selftest("inode-mark")
    no_handle = refused(probe, *HANDLE_ERRNOS)
    bad_mark = (
        refused(inode, "EOPNOTSUPP", "ENODEV") and inode.get("step") == "fanotify_mark"
    )
    if not (no_handle or bad_mark):
        return None
    path = inputs.facts.get("path") or {}
    evidence = [
        f"{path.get('resolved')} is on {path.get('fs_type')} (mount point {path.get('mount_point')})"
    ]
    if no_handle:
        evidence.append(f"name_to_handle_at: {probe.get('errno')}")
    if bad_mark:
        evidence.append(
            f"inode mark of a FID group: {inode.get('errno')} (ENODEV: the filesystem has no fsid)"
        )
    return Finding(
        "fs-no-file-handles",
        f"the filesystem under the path ({path.get('fs_type')}) cannot give file handles, which FID groups report",
        evidence,
        blocks=("watch", "watch-mount"),
        fixes=[
            Fix(
                "any",
                "watch a directory on a filesystem with file handles (ext4, xfs, btrfs, tmpfs; a bind mount or volume rather than FUSE)",
                None,
                "none",
            )
        ],
        verdict=f"the filesystem under the path ({path.get('fs_type')}) cannot report file handles",
    )


def check_overlay_mount_marks(inputs: Inputs) -> Finding | None:
    path = inputs.facts.get("path") or {}
    tests = [inputs.selftest(n) for n in ("mount-mark", "filesystem-mark")]
    if path.get("fs_type") != "overlay" or not any(
        refused(t, "EOPNOTSUPP") for t in tests
    ):
        return None
    return Finding(
        "overlayfs-no-fid-mount-marks",
        "the path is on overlayfs (a container's root filesystem): FID mount and filesystem marks are refused there even for root",
        [
            f"{path.get('resolved')} is on overlay",
            f"mount-mark: {describe(tests[0])}",
            f"filesystem-mark: {describe(tests[1])}",
        ],
        blocks=("watch-mount",),
        fixes=[
            Fix(
                "any",
                "watch a bind mount or volume instead of the container's root filesystem",
                "docker run -v /host/dir:/data ... ; fanwatch doctor /data",
                "none",
            )
        ],
        verdict="mount marks with file handles are refused on overlayfs",
    )


def check_btrfs_subvolume(inputs: Inputs) -> Finding | None:
    tests = [inputs.selftest(n) for n in ("mount-mark", "filesystem-mark")]
    if not any(refused(t, "EXDEV") for t in tests):
        return None
    return Finding(
        "btrfs-subvolume",
        "the path is in a btrfs subvolume: mount and filesystem marks are refused (EXDEV)",
        [f"mount-mark: {describe(tests[0])}", f"filesystem-mark: {describe(tests[1])}"],
        blocks=("watch-mount",),
        fixes=[
            Fix(
                "any",
                "watch the tree with directory marks (fanwatch watch) instead",
                None,
                "none",
            )
        ],
        verdict="mount marks are refused in a btrfs subvolume",
    )


def _near(used: int | None, limit: int | None) -> bool:
    return bool(limit) and used is not None and used >= limit * NEAR_LIMIT


def check_group_limit(inputs: Inputs) -> Finding | None:
    limits = inputs.facts.get("limits") or {}
    used, limit = limits.get("groups_used"), limits.get("max_user_groups")
    if not _near(used, limit):
        return None
    full = used >= limit
    return Finding(
        "group-limit-near",
        f"this uid has {used} of its {limit} fanotify groups (max_user_groups; "
        "shared by every process of the host uid, so rootful containers share root's)",
        [
            f"/proc/sys/fs/fanotify/max_user_groups: {limit}",
            f"fanotify groups of uid {inputs.facts.get('uid')} under /proc: {used}",
        ],
        blocks=ALL_JOBS if full else (),
        level="warning",
        fixes=[
            Fix(
                "host",
                "raise the limit on the host",
                f"sysctl fs.fanotify.max_user_groups={max(limit * 2, 256)}",
                "a kernel memory allowance per user",
            )
        ],
        verdict="this uid has used all its fanotify groups (EMFILE)",
    )


def check_mark_limit(inputs: Inputs) -> Finding | None:
    limits = inputs.facts.get("limits") or {}
    used, limit = limits.get("marks_used"), limits.get("max_user_marks")
    if not _near(used, limit):
        return None
    return Finding(
        "mark-limit-near",
        f"this uid has {used} of its {limit} fanotify marks (max_user_marks); a mark past it fails with ENOSPC",
        [
            f"/proc/sys/fs/fanotify/max_user_marks: {limit}",
            f"marks in fdinfo of uid {inputs.facts.get('uid')}'s groups: {used}",
        ],
        level="warning",
        fixes=[
            Fix(
                "host",
                "raise the limit on the host",
                f"sysctl fs.fanotify.max_user_marks={limit * 2}",
                "kernel memory for marks",
            )
        ],
    )


def check_selinux(inputs: Inputs) -> Finding | None:
    selinux = (inputs.facts.get("lsm") or {}).get("selinux") or {}
    if not selinux.get("enforcing"):
        return None
    return Finding(
        "selinux-enforcing",
        "SELinux is enforcing: it mediates fanotify marks (watch, watch_mount, "
        "watch_sb, watch_with_perm permissions); a denied mark fails with EACCES",
        ["/sys/fs/selinux/enforce: 1"],
        level="warning",
        fixes=[
            Fix(
                "host",
                "if a mark fails with EACCES, allow the watch permissions for this domain from the AVC denials",
                "ausearch -m avc -ts recent | audit2allow -M fanwatch && semodule -i fanwatch.pp",
                "a policy module that lets this domain watch those files",
            )
        ],
    )


def check_queue_limit(inputs: Inputs) -> Finding | None:
    test = inputs.selftest("unlimited-queue")
    # When fanotify_init itself is refused, the queue is not the problem.
    if not test or outcome(test) == "ok" or init_gate(inputs) != "kernel":
        return None
    limit = (inputs.facts.get("limits") or {}).get("max_queued_events")
    guard = "a guard without it fails open under load (a permission event that does not fit is allowed)"
    return Finding(
        "queue-limit",
        f"no unlimited queue: beyond {limit} queued events the kernel drops events and queues one overflow record; {guard}",
        [
            f"unlimited-queue self-test: {describe(test)}",
            f"/proc/sys/fs/fanotify/max_queued_events: {limit}",
        ],
        level="warning" if inputs.job == "guard" else "info",
        fixes=[
            Fix(
                "host",
                "raise the per-group queue on the host (or give CAP_SYS_ADMIN for FAN_UNLIMITED_QUEUE)",
                f"sysctl fs.fanotify.max_queued_events={(limit or 16384) * 4}",
                "kernel memory for queued events",
            )
        ],
    )


def check_nofile(inputs: Inputs) -> Finding | None:
    nofile = (inputs.facts.get("limits") or {}).get("nofile") or {}
    soft = nofile.get("soft")
    if soft is None or soft >= LOW_NOFILE:
        return None
    return Finding(
        "nofile-limit-low",
        f"RLIMIT_NOFILE is {soft}: each fanotify group and each event fd of a privileged group takes one",
        [f"ulimit -n: {soft} (hard {nofile.get('hard')})"],
        level="warning" if inputs.job == "guard" else "info",
        fixes=[
            Fix(
                "any",
                "raise the open-file limit for the process",
                "ulimit -n 65536   # docker run --ulimit nofile=65536",
                "none",
            )
        ],
    )


def check_other_listeners(inputs: Inputs) -> Finding | None:
    listeners = inputs.facts.get("listeners") or []
    if not listeners:
        return None
    evidence = [
        f"pid {g['pid']} ({g.get('comm')}, uid {g.get('uid')}) fd {g['fd']}: class {g.get('class')}, "
        f"marks inode {g['marks']['inode']} mount {g['marks']['mount']} filesystem {g['marks']['filesystem']}"
        for g in listeners
    ]
    permission = [g for g in listeners if g.get("class") in ("content", "pre-content")]
    message = f"{len(listeners)} other fanotify group(s) on this machine"
    if permission:
        message += f", {len(permission)} with permission events: their decisions delay the opens they watch"
    return Finding(
        "other-listeners",
        message,
        evidence,
        level="warning" if permission else "info",
    )


def check_dac_read_search(inputs: Inputs) -> Finding | None:
    if inputs.cap("dac_read_search") is not False:
        return None
    return Finding(
        "no-cap-dac-read-search",
        "no CAP_DAC_READ_SEARCH: open_by_handle_at is unavailable, so fanwatch "
        "names files from its table of marked directories (files in directories "
        "it did not mark are shown by handle)",
        [
            f"CapEff: {(inputs.facts.get('capabilities') or {}).get('effective')} (bit 2 is clear)"
        ],
    )


def check_audit_write(inputs: Inputs) -> Finding | None:
    if inputs.job != "guard" or inputs.cap("audit_write") is not False:
        return None
    return Finding(
        "no-cap-audit-write",
        "no CAP_AUDIT_WRITE: guard cannot ask the kernel to audit its decisions (FAN_ENABLE_AUDIT)",
        [
            f"CapEff: {(inputs.facts.get('capabilities') or {}).get('effective')} (bit 29 is clear)"
        ],
        fixes=[
            Fix(
                "docker",
                "only if audit records are wanted",
                "docker run --cap-add AUDIT_WRITE IMAGE",
                "lets the process write to the kernel audit log",
            )
        ],
    )


def check_path_not_writable(inputs: Inputs) -> Finding | None:
    if not inputs.notes:
        return None
    return Finding("path-not-writable", inputs.notes[0], list(inputs.notes))


CHECKS = (
    check_gvisor,
    check_fanotify_not_built,
    check_seccomp_kill,
    check_seccomp,
    check_old_kernel,
    check_user_namespace,
    check_no_sys_admin,
    check_permission_not_built,
    check_fs_handles,
    check_overlay_mount_marks,
    check_btrfs_subvolume,
    check_group_limit,
    check_mark_limit,
    check_selinux,
    check_queue_limit,
    check_nofile,
    check_other_listeners,
    check_dac_read_search,
    check_audit_write,
    check_path_not_writable,
)


# -- from checks to a verdict -------------------------------------------------


def job_status(inputs: Inputs, findings: list[Finding]) -> dict[str, bool]:
    """Whether each job can run: its self-test's event arrived.

    Without a recorded self-test, a job can run when no finding blocks it.
    """
    status = {}
    for job in JOBS:
        test = inputs.selftest(REQUIRED_SELFTEST[job])
        if test:
            status[job] = outcome(test) == "ok"
        else:
            status[job] = not any(job in f.blocks for f in findings)

    return status


def unexplained_failures(
    inputs: Inputs, findings: list[Finding], status: dict
) -> list[Finding]:
    """A finding for each failed job that no other finding explains."""
    extra = []
    for job in JOBS:
        if status[job] or any(job in f.blocks for f in findings + extra):
            continue
        name = REQUIRED_SELFTEST[job]
        test = inputs.selftest(name)
        silent = outcome(test) in ("no-event", "timeout")
        jobs = tuple(j for j in JOBS if REQUIRED_SELFTEST[j] == name)
        extra.append(
            Finding(
                "selftest-no-event" if silent else "selftest-failed",
                f"the {name} self-test "
                + (
                    "was accepted but no event arrived in time"
                    if silent
                    else f"failed: {describe(test)}"
                ),
                [
                    f"{name}: {describe(test)}",
                    *(f"{k}: {v}" for k, v in test.items() if k not in ("outcome",)),
                ],
                blocks=jobs,
                verdict=f"the {name} self-test "
                + ("received no event" if silent else f"failed ({describe(test)})"),
            )
        )

    return extra


def _works_summary(inputs: Inputs, status: dict) -> tuple[str, str]:
    """The verdict sentence for a job that works, and the mode name."""
    if not inputs.selftests:
        return f"fanwatch {inputs.job} should work here (no self-test ran)", "unknown"
    if all(status.values()) and outcome(inputs.selftest("pidfd")) == "ok":
        return "everything works: full privilege", "full"

    ok = {
        name
        for name in REQUIRED_SELFTEST.values()
        if outcome(inputs.selftest(name)) == "ok"
    }
    ok |= (
        {"filesystem-mark"}
        if outcome(inputs.selftest("filesystem-mark")) == "ok"
        else set()
    )
    pids = bool(inputs.selftest("inode-mark").get("pid_reported"))
    features = [
        label
        for name, label in (
            ("inode-mark", "directory marks"),
            ("mount-mark", "mount marks"),
            ("filesystem-mark", "filesystem marks"),
            ("permission", "permission events"),
        )
        if name in ok
    ]
    features.append("process ids" if pids else "no process ids")
    mode = "privileged" if pids else "unprivileged"
    how = "with CAP_SYS_ADMIN" if pids else "in unprivileged mode"

    return f"fanwatch {inputs.job} works here {how}: {', '.join(features)}", mode


def make_verdict(inputs: Inputs, findings: list[Finding], status: dict) -> dict:
    job = inputs.job
    blockers = [f for f in findings if job in f.blocks]
    if status[job]:
        summary, mode = _works_summary(inputs, status)
    else:
        first = blockers[0]
        text = first.verdict or first.message
        summary = (
            text
            if set(first.blocks) >= set(JOBS)
            else f"fanwatch {job} cannot run here: {text}"
        )
        mode = "none" if not any(status.values()) else "limited"

    return {
        "job": job,
        "ok": status[job],
        "summary": summary,
        "mode": mode,
        "jobs": status,
        "blocked_by": [] if status[job] else [f.id for f in blockers],
    }


_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def diagnose(inputs: Inputs) -> tuple[dict, list[dict]]:
    """The verdict and the findings (as dicts, most severe first) for *inputs*."""
    findings = [f for check in CHECKS if (f := check(inputs)) is not None]
    status = job_status(inputs, findings)
    findings += unexplained_failures(inputs, findings, status)
    verdict = make_verdict(inputs, findings, status)

    job_ok = status[inputs.job]
    rows = [f.to_dict(inputs.job, job_ok) for f in findings]
    rows.sort(key=lambda row: _SEVERITY_ORDER[row["severity"]])

    return verdict, rows

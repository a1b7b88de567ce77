"""The seccomp profile evaluator, against the test profiles and small
profiles written inline for one feature each. The precedence rules tested
here were checked under runc 1.1.5 / libseccomp 2.5.4 (test_cli_seccomp
runs the resolved profiles in a real container)."""

from __future__ import annotations

import copy
import errno
import json
import os

import pytest
from helpers_seccomp import (
    DOCKER_DATA,
    JSON_VALUES,
    MUTATIONS,
    PROFILE_KEYS,
    mutated,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanwatch.errors import ProfileError
from fanwatch.seccomp import (
    DOCKER_DEFAULT_CAPS,
    JOB_CAPS,
    JOB_SYSCALLS,
    Profile,
    capability_set,
    check_job,
    load_profile,
    loads_profile,
    native_arch,
    parse_kernel,
    patch_for,
    resolve,
)
from fanwatch.seccomp.names import CAPABILITIES
from fanwatch.seccomp.patch import probe_cap_sets, verdict_table

PROFILES = os.path.join(os.path.dirname(__file__), "profiles")
DOCKER = os.path.join(PROFILES, "docker-default.json")
PODMAN = os.path.join(PROFILES, "podman-default.json")
WITH_SYS_ADMIN = DOCKER_DEFAULT_CAPS | {"CAP_SYS_ADMIN"}


def profile(*rules, default="SCMP_ACT_ERRNO", **top) -> Profile:
    return Profile.from_dict({"defaultAction": default, **top, "syscalls": list(rules)})


def allow(*names, **extra) -> dict:
    return {"names": list(names), "action": "SCMP_ACT_ALLOW", **extra}


@pytest.fixture(scope="module")
def docker():
    return load_profile(DOCKER)


@pytest.fixture(scope="module")
def podman():
    return load_profile(PODMAN)


# --- default action and errno ----------------------------------------------


def test_docker_refuses_unlisted_syscalls_with_eperm(docker):
    verdict = docker.evaluate("no_such_call", arch="amd64", kernel="6.1")

    assert (verdict.outcome, verdict.errno, verdict.rule) == (
        "errno",
        errno.EPERM,
        None,
    )


def test_podman_refuses_unlisted_syscalls_with_enosys(podman):
    assert podman.evaluate("no_such_call").errno == errno.ENOSYS


def test_errno_action_without_errno_ret_means_eperm():
    verdict = profile(
        {"names": ["uname"], "action": "SCMP_ACT_ERRNO"}, default="SCMP_ACT_ALLOW"
    )

    assert verdict.evaluate("uname").errno == errno.EPERM


def test_errno_ret_is_used():
    rule = {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}

    assert (
        profile(rule, default="SCMP_ACT_ALLOW").evaluate("uname").errno == errno.EACCES
    )


# --- includes / excludes -----------------------------------------------------


def test_fanotify_init_needs_sys_admin_in_docker(docker):
    without = docker.evaluate("fanotify_init", DOCKER_DEFAULT_CAPS, "amd64", "6.18")
    with_admin = docker.evaluate("fanotify_init", WITH_SYS_ADMIN, "amd64", "6.18")

    assert (without.outcome, without.errno, without.rule) == (
        "errno",
        errno.EPERM,
        None,
    )
    assert [(rule.index, why) for rule, why in without.inactive] == [
        (15, "only with CAP_SYS_ADMIN")
    ]
    assert with_admin.allowed and with_admin.rule.index == 15
    assert "fanotify_init" in with_admin.rule.names


def test_fanotify_init_is_unconditional_in_podman(podman):
    assert podman.evaluate("fanotify_init", frozenset()).allowed


def test_fanotify_mark_and_name_to_handle_at_always_allowed(docker, podman):
    for prof in (docker, podman):
        for name in ("fanotify_mark", "name_to_handle_at"):
            assert prof.evaluate(name, frozenset()).allowed


def test_open_by_handle_at_needs_dac_read_search(docker, podman):
    caps = DOCKER_DEFAULT_CAPS | {"CAP_DAC_READ_SEARCH"}
    for prof in (docker, podman):
        assert not prof.evaluate("open_by_handle_at").allowed
        assert prof.evaluate("open_by_handle_at", caps).allowed


def test_includes_caps_needs_every_cap_listed():
    prof = profile(
        allow("mount", includes={"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]})
    )

    assert not prof.evaluate("mount", {"CAP_SYS_ADMIN"}).allowed
    assert prof.evaluate("mount", {"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}).allowed


def test_excludes_caps_drops_the_rule_when_any_cap_present(docker):
    without = docker.evaluate("clone3", DOCKER_DEFAULT_CAPS)
    with_admin = docker.evaluate("clone3", WITH_SYS_ADMIN)

    assert (without.errno, without.rule.index) == (errno.ENOSYS, 18)
    assert with_admin.allowed and with_admin.rule.index == 15


def test_podman_excludes_block_gives_eperm_without_the_cap(podman):
    verdict = podman.evaluate("mount", DOCKER_DEFAULT_CAPS)

    assert verdict.errno == errno.EPERM and verdict.rule.index == 14
    assert podman.evaluate("mount", WITH_SYS_ADMIN).allowed


def test_includes_arches(docker):
    assert docker.evaluate("arch_prctl", arch="amd64").allowed
    assert not docker.evaluate("arch_prctl", arch="arm64").allowed
    assert docker.evaluate("cacheflush", arch="arm64").allowed
    assert not docker.evaluate("cacheflush", arch="amd64").allowed


def test_excludes_arches(docker):
    # The clone rule testing arg0 is left out on s390x, where the s390 one
    # (testing arg1) applies instead.
    amd64 = docker.evaluate("clone", arch="amd64")
    s390x = docker.evaluate("clone", arch="s390x")

    assert amd64.branches[0].rule.index == 16
    assert s390x.branches[0].rule.index == 17


def test_includes_min_kernel(docker):
    assert not docker.evaluate("ptrace", kernel="4.7").allowed
    assert docker.evaluate("ptrace", kernel="4.8").allowed
    assert docker.evaluate("ptrace", kernel="6.18.0-1-amd64").allowed


def test_excludes_min_kernel():
    prof = profile(allow("uname", excludes={"minKernel": "5.13"}))

    assert prof.evaluate("uname", kernel="5.12").allowed
    assert not prof.evaluate("uname", kernel="5.13").allowed


# --- name, names, args ---------------------------------------------------------


def test_single_name_form():
    prof = profile({"name": "uname", "action": "SCMP_ACT_ALLOW"})

    assert prof.evaluate("uname").allowed
    assert prof.resolve()["syscalls"] == [
        {"names": ["uname"], "action": "SCMP_ACT_ALLOW"}
    ]


def test_name_and_names_together_is_an_error():
    with pytest.raises(ProfileError, match=r"syscalls\[0\]\.name: use either"):
        profile({"name": "uname", "names": ["read"], "action": "SCMP_ACT_ALLOW"})


def test_args_make_a_verdict_conditional(docker):
    verdict = docker.evaluate("personality")

    assert verdict.conditional and not verdict.allowed and verdict.outcome == "allow"
    assert [b.rule.index for b in verdict.branches] == [3, 4, 5, 6, 7]
    assert verdict.otherwise.errno == errno.EPERM
    assert "only if arg0 == 0x0" in verdict.describe()


def test_args_with_values(docker):
    assert docker.evaluate("personality", args=(8,)).allowed
    assert docker.evaluate("personality", args=(0x40000,)).errno == errno.EPERM


def test_masked_eq_clone_flags(docker):
    clone_newuser = 0x10000000

    assert docker.evaluate("clone", args=(0x11,)).allowed
    assert not docker.evaluate("clone", args=(clone_newuser,)).allowed
    assert docker.evaluate("clone", WITH_SYS_ADMIN, args=(clone_newuser,)).allowed


def test_conditions_on_one_argument_are_alternatives():
    # runc adds each condition as its own rule when an index repeats.
    args = [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
    ]
    prof = profile(allow("kill", args=args))

    assert prof.evaluate("kill", args=(2,)).allowed
    assert not prof.evaluate("kill", args=(3,)).allowed


def test_conditions_on_different_arguments_all_apply():
    args = [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 5, "op": "SCMP_CMP_GT"},
    ]
    prof = profile(allow("kill", args=args))

    assert prof.evaluate("kill", args=(1, 6)).allowed
    assert not prof.evaluate("kill", args=(1, 5)).allowed


# --- precedence (checked under runc 1.1.5) -----------------------------------


def test_first_unconditional_rule_wins():
    first = {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
    second = {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22}
    verdict = profile(first, second, default="SCMP_ACT_ALLOW").evaluate("getppid")

    assert (verdict.errno, verdict.rule.index) == (13, 0)


def test_unconditional_rule_overrides_conditional_in_any_order():
    conditional = {
        "names": ["uname"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": 13,
        "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
    }
    outright = {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22}
    for rules in ((conditional, outright), (outright, conditional)):
        verdict = profile(*rules, default="SCMP_ACT_ALLOW").evaluate("uname", args=(0,))
        assert verdict.errno == 22 and not verdict.conditional


def test_rule_with_the_default_action_is_skipped():
    same = {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}
    verdict = profile(same, allow("getppid"), defaultErrnoRet=1).evaluate("getppid")

    assert verdict.allowed and verdict.rule.index == 1


# --- actions ----------------------------------------------------------------


@pytest.mark.parametrize(
    "action, outcome, seen_errno",
    [
        ("SCMP_ACT_ALLOW", "allow", None),
        ("SCMP_ACT_LOG", "allow", None),
        ("SCMP_ACT_ERRNO", "errno", errno.EPERM),
        ("SCMP_ACT_TRACE", "errno", errno.ENOSYS),
        ("SCMP_ACT_KILL", "kill", None),
        ("SCMP_ACT_KILL_THREAD", "kill", None),
        ("SCMP_ACT_KILL_PROCESS", "kill", None),
        ("SCMP_ACT_TRAP", "kill", None),
        ("SCMP_ACT_NOTIFY", "notify", None),
    ],
)
def test_actions(action, outcome, seen_errno):
    default = "SCMP_ACT_ALLOW" if action != "SCMP_ACT_ALLOW" else "SCMP_ACT_ERRNO"
    verdict = profile({"names": ["uname"], "action": action}, default=default).evaluate(
        "uname"
    )

    assert (verdict.outcome, verdict.errno, verdict.rule.index) == (
        outcome,
        seen_errno,
        0,
    )
    assert verdict.allowed == (outcome == "allow")


def test_kill_and_kill_thread_are_the_same_filter():
    kill = profile(
        {"names": ["uname"], "action": "SCMP_ACT_KILL"}, default="SCMP_ACT_ALLOW"
    )
    thread = profile(
        {"names": ["uname"], "action": "SCMP_ACT_KILL_THREAD"}, default="SCMP_ACT_ALLOW"
    )

    process = profile(
        {"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"},
        default="SCMP_ACT_ALLOW",
    )

    assert kill.evaluate("uname").key == thread.evaluate("uname").key
    assert kill.evaluate("uname").key != process.evaluate("uname").key
    assert "killed" in kill.evaluate("uname").describe()


def test_errno_ret_on_other_actions_is_ignored_like_runc():
    rule = {"names": ["uname"], "action": "SCMP_ACT_LOG", "errnoRet": 5}

    assert profile(rule, default="SCMP_ACT_ERRNO").evaluate("uname").allowed


# --- architectures ------------------------------------------------------------


def test_arch_map_picks_the_native_entry(docker):
    assert docker.loaded_architectures("amd64") == [
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
    ]
    assert docker.loaded_architectures("arm64") == [
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
    ]
    assert docker.loaded_architectures("riscv64") == ["SCMP_ARCH_RISCV64"]
    assert docker.loaded_architectures("ppc64le") == []


def test_architectures_list_is_used_as_written():
    prof = profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])

    assert prof.resolve(arch="arm64")["architectures"] == [
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
    ]


def test_architectures_and_arch_map_together_is_an_error():
    with pytest.raises(ProfileError, match="either architectures or archMap"):
        profile(
            architectures=["SCMP_ARCH_X86_64"],
            archMap=[{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": None}],
        )


def test_arch_and_kernel_names():
    assert native_arch("x86_64") == native_arch("SCMP_ARCH_X86_64") == "amd64"
    assert native_arch("aarch64") == "arm64"
    assert parse_kernel("6.18.0-1-amd64") == (6, 18, 0)
    assert parse_kernel("5.13") == (5, 13, 0)
    for bad in ("six", "5", ""):
        with pytest.raises(ValueError):
            parse_kernel(bad)
    with pytest.raises(ValueError, match="unknown architecture"):
        native_arch("vax")


def test_capability_set():
    assert capability_set() == DOCKER_DEFAULT_CAPS
    assert capability_set(["sys_admin"]) == WITH_SYS_ADMIN
    assert capability_set(["CAP_SYS_ADMIN"]) == WITH_SYS_ADMIN
    assert capability_set(["ALL"]) == frozenset(CAPABILITIES)
    assert capability_set(drop=["all"], add=["SYS_ADMIN"]) == {"CAP_SYS_ADMIN"}
    with pytest.raises(ValueError, match="unknown capability"):
        capability_set(["SYS_WIZARD"])


# --- resolve -------------------------------------------------------------------


def test_resolve_applies_includes_and_excludes(docker):
    plain = resolve(docker.data, DOCKER_DEFAULT_CAPS, "amd64", "6.18")
    admin = resolve(docker.data, WITH_SYS_ADMIN, "amd64", "6.18")

    def names(resolved):
        return {name for rule in resolved["syscalls"] for name in rule["names"]}

    assert plain["defaultAction"] == "SCMP_ACT_ERRNO" and plain["defaultErrnoRet"] == 1
    assert plain["architectures"][0] == "SCMP_ARCH_X86_64"
    assert "fanotify_init" not in names(plain) and "fanotify_init" in names(admin)
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in plain[
        "syscalls"
    ]
    assert all(
        set(rule) <= {"names", "action", "errnoRet", "args"}
        for rule in plain["syscalls"]
    )
    personality = [
        rule for rule in plain["syscalls"] if rule["names"] == ["personality"]
    ]
    assert personality[1]["args"] == [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]


def test_resolve_leaves_flags_out():
    prof = profile(allow("read"), flags=["SECCOMP_FILTER_FLAG_LOG"])

    assert "flags" not in prof.resolve()


# --- jobs ----------------------------------------------------------------------


def test_job_syscalls_mark_required_and_optional():
    for job in ("watch", "watch-mount", "guard"):
        required = {need.names[0] for need in JOB_SYSCALLS[job] if need.required}
        assert {
            "fanotify_init",
            "fanotify_mark",
            "name_to_handle_at",
            "read",
        } <= required
        assert {
            "close",
            "openat",
            "getdents64",
            "fstatfs",
            "readlinkat",
            "ppoll",
        } <= required
    watch_optional = {
        need.names[0] for need in JOB_SYSCALLS["watch"] if not need.required
    }
    assert "open_by_handle_at" in watch_optional
    assert any("respon" in need.purpose for need in JOB_SYSCALLS["guard"])
    assert JOB_CAPS["watch"] == frozenset() and JOB_CAPS["guard"] == {"CAP_SYS_ADMIN"}


def test_check_job(docker, podman):
    watch = check_job(docker, "watch", DOCKER_DEFAULT_CAPS)

    assert not watch.ok and [need.names[0] for need in watch.blocked] == [
        "fanotify_init"
    ]
    assert check_job(podman, "watch", frozenset()).ok
    assert check_job(docker, "watch-mount", WITH_SYS_ADMIN).ok
    mount = check_job(docker, "watch-mount", DOCKER_DEFAULT_CAPS)
    assert not mount.ok and mount.missing_caps == {"CAP_SYS_ADMIN"}


# --- patch ---------------------------------------------------------------------

ARCHES = ("amd64", "arm64", "s390x")


def every_name(*profiles: Profile) -> set[str]:
    names = {
        name
        for need_list in JOB_SYSCALLS.values()
        for need in need_list
        for name in need.names
    }
    for prof in profiles:
        names |= prof.syscall_names()

    return names


def changed_verdicts(before: Profile, after: Profile) -> set[str]:
    """Syscalls whose verdict differs for some capability set and arch."""
    names = every_name(before, after)
    cap_sets = probe_cap_sets(before) + [frozenset()]
    changed = set()
    for arch in ARCHES:
        old = verdict_table(before, cap_sets, names, arch, "6.18")
        new = verdict_table(after, cap_sets, names, arch, "6.18")
        changed |= {name for (_, name), key in old.items() if new[_, name] != key}

    return changed


def test_patch_for_watch_moves_fanotify_init_and_nothing_else(docker):
    original = copy.deepcopy(docker.data)
    patched, changes = patch_for(docker.data, "watch")
    after = Profile.from_dict(patched)

    assert docker.data == original
    assert [(c.rule, c.syscall) for c in changes] == [
        (0, "fanotify_init"),
        (15, "fanotify_init"),
    ]
    assert "fanotify_init" in patched["syscalls"][0]["names"]
    assert "fanotify_init" not in patched["syscalls"][15]["names"]
    assert changed_verdicts(docker, after) == {"fanotify_init"}
    for caps in (frozenset(), DOCKER_DEFAULT_CAPS, WITH_SYS_ADMIN):
        assert after.evaluate("fanotify_init", caps).allowed
        assert check_job(after, "watch", caps).ok


@pytest.mark.parametrize("job", ["watch-mount", "guard"])
def test_patch_for_privileged_jobs_changes_nothing_in_docker(docker, job):
    patched, changes = patch_for(docker.data, job)

    assert changes == [] and patched == docker.data


def test_patch_podman_needs_nothing(podman):
    for job in JOB_SYSCALLS:
        assert patch_for(podman.data, job)[1] == []


def test_patch_removes_a_rule_refusing_the_call_first():
    data = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {
                "names": ["fanotify_init", "kexec_load"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 38,
            },
            allow(
                *sorted(
                    every_name() - {"fanotify_init", "open_by_handle_at", "pidfd_open"}
                )
            ),
        ],
    }
    before = Profile.from_dict(data)
    patched, changes = patch_for(data, "watch")

    assert [c.rule for c in changes] == [0, 1]
    assert patched["syscalls"][0]["names"] == ["kexec_load"]
    assert changed_verdicts(before, Profile.from_dict(patched)) == {"fanotify_init"}


def test_patch_for_watch_mount_adds_a_rule_gated_by_sys_admin():
    base = sorted(every_name() - {"fanotify_init", "open_by_handle_at", "pidfd_open"})
    data = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [allow(*base)]}
    before = Profile.from_dict(data)
    patched, changes = patch_for(data, "watch-mount")
    after = Profile.from_dict(patched)

    assert patched["syscalls"][1] == {
        "names": ["fanotify_init"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_ADMIN"]},
    }
    assert [c.rule for c in changes] == [1]
    assert after.evaluate("fanotify_init", {"CAP_SYS_ADMIN"}).allowed
    assert not after.evaluate("fanotify_init", DOCKER_DEFAULT_CAPS).allowed
    assert changed_verdicts(before, after) == {"fanotify_init"}


def test_patch_deletes_a_single_name_rule_it_empties():
    base = sorted(every_name() - {"fanotify_init", "open_by_handle_at", "pidfd_open"})
    data = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"name": "fanotify_init", "action": "SCMP_ACT_KILL_PROCESS"},
            allow(*base),
        ],
    }
    patched, changes = patch_for(data, "watch")

    assert [str(c) for c in changes][-1] == "syscalls[0]: deleted, no names left"
    assert len(patched["syscalls"]) == 1
    assert Profile.from_dict(patched).evaluate("fanotify_init").allowed


# --- broken profiles -------------------------------------------------------------


@pytest.mark.parametrize(
    "name, location, message",
    [
        ("broken-not-json.json", ":5:5", "not JSON: Expecting ',' delimiter"),
        ("broken-unknown-action.json", ":16", "syscalls[2].action: unknown action"),
        (
            "broken-wrong-type.json",
            ":10",
            "syscalls[1].names: must be a list of strings",
        ),
        (
            "broken-unknown-arch.json",
            ":10",
            "archMap[1].architecture: unknown architecture",
        ),
    ],
)
def test_broken_profiles_name_the_place(name, location, message):
    path = os.path.join(PROFILES, name)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)

    assert caught.value.location == path + location
    assert str(caught.value).startswith(f"{path}{location}: {message}")


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda d: d.pop("defaultAction"), "defaultAction: missing"),
        (
            lambda d: d.update(defaultErrnoRet="1"),
            "defaultErrnoRet: must be a whole number",
        ),
        (
            lambda d: d["syscalls"][3]["args"][0].update(op="SCMP_CMP_LIKE"),
            "syscalls[3].args[0].op",
        ),
        (
            lambda d: d["syscalls"][3]["args"][0].update(index=6),
            "syscalls[3].args[0].index",
        ),
        (
            lambda d: d["syscalls"][3]["args"][0].update(value=-1),
            "syscalls[3].args[0].value",
        ),
        (
            lambda d: d["syscalls"][1]["includes"].update(minKernel="new"),
            "syscalls[1].includes.minKernel",
        ),
        (
            lambda d: d["syscalls"][10]["includes"]["arches"].append("vax"),
            "syscalls[10].includes.arches[2]",
        ),
        (
            lambda d: d["syscalls"][14]["includes"].update(caps=["SYS_ADMIN"]),
            "syscalls[14].includes.caps[0]",
        ),
        (
            lambda d: d["syscalls"][0].update(names=True),
            "syscalls[0].names: must be a list",
        ),
        (lambda d: d["syscalls"][0].pop("action"), "syscalls[0]: no action"),
    ],
)
def test_profile_mistakes(docker, mutate, where):
    data = copy.deepcopy(docker.data)
    mutate(data)
    text = json.dumps(data, indent=2)
    with pytest.raises(ProfileError) as caught:
        loads_profile(text, source="p.json")

    assert where in str(caught.value)
    assert caught.value.location.startswith("p.json:")


def test_capabilities_may_be_named_without_the_cap_prefix():
    profile = load_profile(DOCKER)

    short = profile.resolve(caps=["SYS_ADMIN"])
    long = profile.resolve(caps=["CAP_SYS_ADMIN"])

    assert short == long
    assert profile.evaluate("fanotify_init", caps=["sys_admin"]).allowed
    with pytest.raises(ValueError, match="unknown capability"):
        profile.evaluate("fanotify_init", caps=["NOT_A_CAP"])


# --- hostile files -----------------------------------------------------------------


def write_bytes(tmp_path, data: bytes) -> str:
    path = tmp_path / "hostile.json"
    path.write_bytes(data)

    return str(path)


def test_non_utf8_profile_is_a_profile_error(tmp_path):
    path = write_bytes(tmp_path, b'{\n  "defaultAction": "\xff\xfe"}')
    with pytest.raises(ProfileError) as caught:
        load_profile(path)

    assert caught.value.location == f"{path}:2:21"
    assert str(caught.value) == f"{path}:2:21: not UTF-8: byte 0xff"


@pytest.mark.parametrize("depth", [101, 100_000])
def test_deeply_nested_profile_is_a_profile_error(depth):
    nested = '{"a":' * depth + "1" + "}" * depth
    text = '{\n"defaultAction": "SCMP_ACT_ALLOW",\n"comment": ' + nested + "}"
    with pytest.raises(ProfileError) as caught:
        loads_profile(text, source="deep.json")

    assert str(caught.value) == "deep.json:3:507: nested more than 100 levels deep"


def test_nesting_up_to_the_limit_is_accepted():
    nested = "[" * 99 + "]" * 99

    assert loads_profile(f'{{"defaultAction": "SCMP_ACT_ALLOW", "x": {nested}}}')


HOSTILE = {
    "empty": ("", "p.json:1:1: not JSON: Expecting value"),
    "array": ("[]", "p.json:1: (top level): must be an object, not a list"),
    "infinite": (
        '{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1e400}',
        "p.json:1: defaultErrnoRet: must be a whole number, "
        "not a number with a fraction or exponent",
    ),
    "fraction": (
        '{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1.0}',
        "p.json:1: defaultErrnoRet: must be a whole number, "
        "not a number with a fraction or exponent",
    ),
    "2**70": (
        '{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": %d}' % 2**70,
        "p.json:1: defaultErrnoRet: 1180591620717411303424 is out of range (0 to 4095)",
    ),
    "5000 digits": (
        '{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": %s}' % ("9" * 5000),
        "p.json:1:56: not JSON: a number with 5000 digits "
        "(no profile value has more than 20)",
    ),
    "NaN": (
        '{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": NaN}',
        "p.json:1:56: not JSON: NaN is not a JSON value",
    ),
    "-Infinity": (
        '{"comment": "NaN -Infinity", "defaultAction": "SCMP_ACT_ERRNO",\n'
        ' "listenerPath": -Infinity}',
        "p.json:2:18: not JSON: -Infinity is not a JSON value",
    ),
    "listenerPath": (
        '{"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": 7}',
        "p.json:1: listenerPath: must be a string, not a number",
    ),
}


@pytest.mark.parametrize("text, message", HOSTILE.values(), ids=HOSTILE)
def test_hostile_profiles(text, message):
    with pytest.raises(ProfileError) as caught:
        loads_profile(text, source="p.json")

    assert str(caught.value) == message


def test_huge_argument_values():
    condition = {"index": 0, "value": 2**70, "op": "SCMP_CMP_EQ"}
    rule = allow("fanotify_init", args=[condition])
    text = json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [rule]})
    with pytest.raises(ProfileError, match=r"args\[0\]\.value: .* out of range"):
        loads_profile(text)


# --- random documents --------------------------------------------------------------

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def load_or_profile_error(text: str) -> None:
    try:
        profile = loads_profile(text, source="fuzz.json")
    except ProfileError as exc:
        assert "\n" not in str(exc) and exc.location.startswith("fuzz.json")
        return
    for job in JOB_SYSCALLS:
        check_job(profile, job, DOCKER_DEFAULT_CAPS, "amd64", (6, 18, 0))
    profile.resolve(WITH_SYS_ADMIN, "arm64", (5, 4, 0))


@FUZZ
@given(JSON_VALUES)
def test_random_json_is_a_profile_or_a_profile_error(document):
    load_or_profile_error(json.dumps(document))


@FUZZ
@given(st.dictionaries(st.sampled_from(PROFILE_KEYS), JSON_VALUES, max_size=6))
def test_random_profile_shaped_objects(document):
    load_or_profile_error(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", **document}))


@FUZZ
@given(MUTATIONS)
def test_mutated_docker_profile(mutations):
    load_or_profile_error(json.dumps(mutated(DOCKER_DATA, mutations), indent=2))


@FUZZ
@given(st.text(max_size=40))
def test_random_text(text):
    load_or_profile_error(text)

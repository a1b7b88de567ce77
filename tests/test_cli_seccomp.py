"""``fanwatch seccomp``: output, exit codes, files written, and the resolved
profile loaded by a real runc container."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import tempfile

import pytest
from helpers_seccomp import DOCKER_DATA, JSON_VALUES, MUTATIONS, mutated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanwatch.cli import exitcodes, main

PROFILES = os.path.join(os.path.dirname(__file__), "profiles")
DOCKER = os.path.join(PROFILES, "docker-default.json")
PODMAN = os.path.join(PROFILES, "podman-default.json")


def read(path) -> str:
    with open(path, encoding="utf-8") as stream:
        return stream.read()


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["seccomp", *argv])
    out, err = capsys.readouterr()

    return code, out, err


# --- check -------------------------------------------------------------------------


def test_check_docker_default_blocks_watch(capsys):
    code, out, err = run(capsys, "check", DOCKER, "--arch", "amd64", "--kernel", "6.18")

    assert code == exitcodes.NOT_SUPPORTED and err == ""
    assert "watch: BLOCKED" in out
    line = next(line for line in out.splitlines() if "fanotify_init" in line)
    assert "refused EPERM by defaultAction" in line
    assert "syscalls[15] (bpf, clone, clone3, +20 more) only with CAP_SYS_ADMIN" in line
    assert "watch-mount: not checked, needs CAP_SYS_ADMIN" in out
    assert f"fix: fanwatch seccomp patch {DOCKER} --for watch" in out


def test_check_podman_default_allows_watch(capsys):
    code, out, _ = run(capsys, "check", PODMAN)

    assert code == exitcodes.OK
    assert "watch: ok" in out and "unlisted syscalls are refused ENOSYS" in out


def test_check_with_sys_admin_allows_every_job(capsys):
    code, out, _ = run(
        capsys, "check", DOCKER, "--cap-add", "SYS_ADMIN", "--for", "guard"
    )

    assert code == exitcodes.OK
    assert "guard: ok" in out and "+ CAP_SYS_ADMIN" in out


def test_check_for_a_job_without_its_capability_fails(capsys):
    code, out, _ = run(capsys, "check", PODMAN, "--for", "watch-mount")

    assert code == exitcodes.NOT_SUPPORTED
    assert "watch-mount: BLOCKED: needs CAP_SYS_ADMIN" in out


def test_check_json(capsys):
    code, out, _ = run(
        capsys, "check", DOCKER, "--json", "--arch", "arm64", "--kernel", "5.15"
    )
    report = json.loads(out)

    assert code == exitcodes.NOT_SUPPORTED
    assert report["version"] == 1 and report["ok"] is False
    assert (report["arch"], report["kernel"]) == ("arm64", "5.15.0")
    assert report["default"] == {
        "action": "SCMP_ACT_ERRNO",
        "errno": 1,
        "errno_name": "EPERM",
    }
    watch = report["jobs"][0]
    assert (watch["job"], watch["checked"], watch["blocked"]) == (
        "watch",
        True,
        ["fanotify_init"],
    )
    init = watch["syscalls"][0]["verdicts"][0]
    assert (init["syscall"], init["outcome"], init["errno"], init["rule"]) == (
        "fanotify_init",
        "errno",
        1,
        None,
    )
    assert init["inactive_rules"] == [{"rule": 15, "reason": "only with CAP_SYS_ADMIN"}]
    mark = watch["syscalls"][1]["verdicts"][0]
    assert (
        mark["allowed"] and mark["rule"] == 0 and "fanotify_mark" in mark["rule_names"]
    )
    assert report["jobs"][1]["checked"] is False


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cap-add", "SYS_WIZARD"], "unknown capability 'SYS_WIZARD'"),
        (["--arch", "vax"], "unknown architecture 'vax'"),
        (["--kernel", "new"], "not a kernel version: 'new'"),
    ],
)
def test_check_bad_options_are_usage_errors(capsys, argv, message):
    code, out, err = run(capsys, "check", DOCKER, *argv)

    assert code == exitcodes.USAGE and out == ""
    assert err == f"fanwatch: {message}\n"


@pytest.mark.parametrize(
    "name, location",
    [
        ("broken-not-json.json", "5:5: not JSON"),
        ("broken-unknown-action.json", "16: syscalls[2].action: unknown action"),
        ("broken-wrong-type.json", "10: syscalls[1].names: must be"),
        ("broken-unknown-arch.json", "10: archMap[1].architecture: unknown"),
    ],
)
def test_broken_profile_gets_one_line_and_exit_2(capsys, name, location):
    path = os.path.join(PROFILES, name)
    for command in (["check", path], ["resolve", path, "-o", "-"]):
        code, out, err = run(capsys, *command)
        assert code == exitcodes.USAGE and out == ""
        assert err.startswith(f"fanwatch: {path}:{location}") and err.count("\n") == 1


def test_missing_profile_is_a_failure(capsys, tmp_path):
    code, _, err = run(capsys, "check", str(tmp_path / "none.json"))

    assert code == exitcodes.FAILURE
    assert err == f"fanwatch: {tmp_path / 'none.json'}: No such file or directory\n"


def test_whole_process_exit_code_and_no_traceback():
    broken = os.path.join(PROFILES, "broken-unknown-action.json")
    done = subprocess.run(
        [sys.executable, "-m", "fanwatch", "seccomp", "check", broken],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == exitcodes.USAGE
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


# --- patch -------------------------------------------------------------------------


def test_patch_for_watch(capsys, tmp_path):
    out_path = tmp_path / "watch.json"
    code, out, _ = run(capsys, "patch", DOCKER, "--for", "watch", "-o", str(out_path))

    assert code == exitcodes.OK
    assert out.splitlines() == [
        (
            "changed: syscalls[0] (accept, accept4, access, +356 more): "
            "added fanotify_init"
        ),
        (
            "changed: syscalls[15] (bpf, clone, clone3, +20 more): "
            "removed fanotify_init, now allowed above"
        ),
        f"wrote {out_path}",
    ]
    original = read(DOCKER).splitlines()
    patched = out_path.read_text().splitlines()
    assert len(patched) == len(original)  # indent 2 kept, one line moved
    assert sorted(set(patched) ^ set(original)) == []
    assert run(capsys, "check", str(out_path), "--for", "watch")[0] == exitcodes.OK


def test_patch_for_guard_explains_the_capability(capsys, tmp_path):
    out_path = tmp_path / "guard.json"
    code, out, _ = run(capsys, "patch", DOCKER, "--for", "guard", "-o", str(out_path))

    assert code == exitcodes.OK
    assert (
        "guard needs CAP_SYS_ADMIN: run the container with --cap-add SYS_ADMIN" in out
    )
    assert "no change needed" in out
    assert json.loads(out_path.read_text()) == json.loads(read(DOCKER))


def test_patch_keeps_tab_indentation(capsys, tmp_path):
    source = tmp_path / "tabs.json"
    source.write_text(json.dumps(json.loads(read(DOCKER)), indent="\t") + "\n")
    out_path = tmp_path / "out.json"
    run(capsys, "patch", str(source), "--for", "watch", "-o", str(out_path))

    assert out_path.read_text().startswith('{\n\t"comment"')


def test_patch_refuses_to_overwrite(capsys, tmp_path):
    out_path = tmp_path / "exists.json"
    out_path.write_text("keep me")
    code, out, err = run(capsys, "patch", DOCKER, "--for", "watch", "-o", str(out_path))

    assert code == exitcodes.FAILURE and out == ""
    assert (
        err.splitlines()[0] == f"fanwatch: {out_path}: already exists, not overwritten"
    )
    assert out_path.read_text() == "keep me"


# --- resolve -----------------------------------------------------------------------


def test_resolve_to_stdout_and_file(capsys, tmp_path):
    code, out, _ = run(
        capsys, "resolve", DOCKER, "--cap-add", "all", "--arch", "amd64", "-o", "-"
    )
    resolved = json.loads(out)

    assert code == exitcodes.OK
    assert set(resolved) == {
        "defaultAction",
        "defaultErrnoRet",
        "architectures",
        "syscalls",
    }
    assert any("fanotify_init" in rule["names"] for rule in resolved["syscalls"])
    out_path = tmp_path / "r.json"
    assert run(capsys, "resolve", DOCKER, "-o", str(out_path))[0] == exitcodes.OK
    assert run(capsys, "resolve", DOCKER, "-o", str(out_path))[0] == exitcodes.FAILURE


# --- the resolved profile under runc ---------------------------------------------

# A FID group (FAN_CLASS_NOTIF | FAN_REPORT_FID) needs no capability on 5.13+:
# inside the container only seccomp can refuse it.
PROBE = (
    "import ctypes, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "fd = libc.fanotify_init(0x200, 0)\n"
    "print('fanotify_init', 'ok' if fd >= 0 else os.strerror(ctypes.get_errno()))\n"
    "print('clone3', libc.syscall(435, 0, 0), os.strerror(ctypes.get_errno()))\n"
)


def run_in_runc(bundle, seccomp: dict) -> str:
    """Run PROBE with the host's /usr in a runc container with *seccomp*."""
    rootfs = bundle / "rootfs"
    rootfs.mkdir(exist_ok=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(
        terminal=False, args=[os.path.realpath(sys.executable), "-c", PROBE]
    )
    # The interpreter running the tests may live outside /usr (pyenv).
    for directory in dict.fromkeys(
        ("/usr", "/lib", "/lib64", "/bin", "/etc", sys.base_prefix)
    ):
        if os.path.isdir(directory) and not os.path.islink(directory):
            (rootfs / directory[1:]).mkdir(parents=True, exist_ok=True)
            config["mounts"].append(
                {
                    "destination": directory,
                    "type": "bind",
                    "source": directory,
                    "options": ["rbind", "ro"],
                }
            )
        elif os.path.islink(directory):
            os.symlink(os.readlink(directory), rootfs / directory[1:])
    config["linux"]["seccomp"] = seccomp
    (bundle / "config.json").write_text(json.dumps(config))
    name = f"fanwatch-seccomp-{uuid.uuid4().hex[:12]}"
    try:
        done = subprocess.run(
            ["runc", "run", name],
            cwd=bundle,
            capture_output=True,
            check=False,
            text=True,
            timeout=60,
        )
    finally:
        subprocess.run(["runc", "delete", "-f", name], check=False, capture_output=True)
    assert done.returncode == 0, done.stderr

    return done.stdout


@pytest.fixture
def bundle(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the runc tests must run as root")
    if shutil.which("runc") is None:
        pytest.fail("runc is not installed (apt-get install runc; .ci/run does)")
    path = tmp_path / "bundle"
    path.mkdir()

    return path


@pytest.mark.timeout(120)
def test_runc_loads_the_resolved_docker_profile(capsys, tmp_path, bundle):
    resolved = tmp_path / "docker.json"
    run(capsys, "resolve", DOCKER, "-o", str(resolved))
    out = run_in_runc(bundle, json.loads(resolved.read_text()))

    assert out.splitlines() == [
        "fanotify_init Operation not permitted",
        "clone3 -1 Function not implemented",
    ]


@pytest.mark.timeout(120)
def test_runc_with_the_patched_profile_allows_fanotify_init(capsys, tmp_path, bundle):
    patched, resolved = tmp_path / "patched.json", tmp_path / "resolved.json"
    run(capsys, "patch", DOCKER, "--for", "watch", "-o", str(patched))
    run(capsys, "resolve", str(patched), "-o", str(resolved))
    out = run_in_runc(bundle, json.loads(resolved.read_text()))

    assert out.splitlines()[0] == "fanotify_init ok"


# --- hostile files -----------------------------------------------------------------


def check_one_line_error(capsys, path: str, message: str) -> None:
    """check and resolve both fail with exit 2 and *message* on one line."""
    for command in (["check", path], ["resolve", path, "-o", "-"]):
        code, out, err = run(capsys, *command)
        assert (code, out) == (exitcodes.USAGE, "")
        assert err == f"fanwatch: {path}{message}\n"


def test_non_utf8_profile(capsys, tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xff\xfe{}")

    check_one_line_error(capsys, str(path), ":1:1: not UTF-8: byte 0xff")


def test_deeply_nested_profile(capsys, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)

    check_one_line_error(capsys, str(path), ":1:501: nested more than 100 levels deep")


def test_patch_to_stdout(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "patch", DOCKER, "--for", "watch", "-o", "-")

    assert code == exitcodes.OK and os.listdir(tmp_path) == []
    patched = json.loads(out)
    assert "fanotify_init" in patched["syscalls"][0]["names"]
    assert err.splitlines() == [
        (
            "changed: syscalls[0] (accept, accept4, access, +356 more): "
            "added fanotify_init"
        ),
        (
            "changed: syscalls[15] (bpf, clone, clone3, +20 more): "
            "removed fanotify_init, now allowed above"
        ),
    ]


HOSTILE_DOCUMENTS = (
    JSON_VALUES.map(lambda value: json.dumps(value).encode())
    | MUTATIONS.map(lambda changes: json.dumps(mutated(DOCKER_DATA, changes)).encode())
    | st.binary(max_size=40)
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(HOSTILE_DOCUMENTS)
def test_hostile_profiles_never_raise(capsys, data):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "p.json")
        with open(path, "wb") as stream:
            stream.write(data)
        for command in (
            ["check", path],
            ["resolve", path, "-o", "-"],
            ["patch", path, "--for", "watch", "-o", "-"],
        ):
            code, _, err = run(capsys, *command, "--arch", "amd64", "--kernel", "6.18")
            assert code in (exitcodes.OK, exitcodes.USAGE, exitcodes.NOT_SUPPORTED)
            if code == exitcodes.USAGE:
                assert err.startswith(f"fanwatch: {path}") and err.count("\n") == 1

"""fanwatch guard on the real kernel, on a private tmpfs per test.

Each test starts the guard as a child process (stopped by pid in a
finally, see RunningGuard) and runs the accessing processes with timeouts.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import as_unprivileged_user, mount_tmpfs, unmount
from test_guard_support import RunningGuard, make_file, try_open

pytestmark = pytest.mark.timeout(60)


def deny_rule(path: str, rule_id: str = "no-secret", extra: str = "") -> str:
    return f'[[rule]]\nid = "{rule_id}"\npath = "{path}"\ndecision = "deny"\n{extra}\n'


def test_allow_by_default_and_log_the_decision(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/plain.txt")
    with RunningGuard(tmp_path, tmpfs, policy=deny_rule(f"{tmpfs}/secret/**")) as guard:
        assert try_open(target) == ["OK"]
        records = guard.wait_for_records(lambda r: r)
        assert guard.stop() == 143
    [record] = [r for r in records if r["path"] == target]
    assert record["decision"] == "allow"
    assert record["rule"] is None
    assert record["reason"] == "default"
    assert record["access"] == "open"
    assert record["latency_us"] >= 0
    assert record["cached"] == "kernel"


def test_deny_is_seen_as_eperm_by_a_child(tmpfs, tmp_path):
    secret = make_file(f"{tmpfs}/secret/key")
    other = make_file(f"{tmpfs}/other")
    with RunningGuard(tmp_path, tmpfs, policy=deny_rule(f"{tmpfs}/secret/**")) as guard:
        assert try_open(secret, other, secret) == ["EPERM", "OK", "EPERM"]
        records = guard.wait_for_records(lambda r: len(r) >= 3)
    denied = [r for r in records if r["path"] == secret]
    assert len(denied) == 2  # a deny is never cached: each open is judged
    assert all(r["decision"] == "deny" and r["rule"] == "no-secret" for r in denied)


def test_deny_with_a_chosen_errno(tmpfs, tmp_path):
    secret = make_file(f"{tmpfs}/secret/key")
    policy = deny_rule(f"{tmpfs}/secret/**", extra='errno = "EIO"')
    with RunningGuard(tmp_path, tmpfs, policy=policy) as guard:
        # FAN_DENY_ERRNO is in this kernel (6.14+, pre-content group).
        assert try_open(secret) == ["EIO"]
        assert "cannot deny with a chosen errno" not in guard.stderr()


def test_exec_denied_while_reading_is_allowed(tmpfs, tmp_path):
    tool = f"{tmpfs}/bin/true"
    os.makedirs(os.path.dirname(tool))
    shutil.copy2(shutil.which("true"), tool)
    policy = deny_rule(tool, "no-exec", extra='access = ["exec"]')
    with RunningGuard(tmp_path, tmpfs, policy=policy) as guard:
        with pytest.raises(PermissionError):
            subprocess.run([tool], timeout=10)
        assert try_open(tool) == ["OK"]
        records = guard.wait_for_records(
            lambda r: any(x["access"] == "exec" for x in r)
        )
    assert [r["decision"] for r in records if r["access"] == "exec"] == ["deny"]


def test_audit_allows_records_and_is_never_cached_in_the_kernel(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/watched/file")
    policy = f'[[rule]]\nid = "watch"\npath = "{tmpfs}/watched/*"\ndecision = "audit"\n'
    with RunningGuard(tmp_path, tmpfs, policy=policy) as guard:
        assert try_open(target, target) == ["OK", "OK"]
        records = guard.wait_for_records(lambda r: len(r) >= 2)
    audited = [r for r in records if r["path"] == target]
    assert [r["decision"] for r in audited] == ["audit", "audit"]
    assert all("cached" not in r for r in audited)


def test_permissive_records_the_deny_and_allows(tmpfs, tmp_path):
    secret = make_file(f"{tmpfs}/secret/key")
    policy = deny_rule(f"{tmpfs}/secret/**")
    with RunningGuard(tmp_path, tmpfs, policy=policy, args=["--permissive"]) as guard:
        assert try_open(secret) == ["OK"]
        records = guard.wait_for_records(lambda r: r)
    [record] = records
    assert record["decision"] == "deny"
    assert record["enforced"] is False


UID_POLICY = (
    'default = "deny"\n'
    '[[rule]]\nid = "root-only"\npath = "{root}/data/**"\nuid = 0\ndecision = "allow"\n'
)


def test_deadline_sends_the_default_verdict(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/data/file")
    # Deciding needs the uid (read by a worker), which the test-only delay
    # holds back for 3 s; the 200 ms deadline answers with the default.
    env = {"FANWATCH_GUARD_TEST_DELAY": "3"}
    policy = UID_POLICY.format(root=tmpfs)
    with RunningGuard(
        tmp_path, tmpfs, policy=policy, args=["--deadline", "200"], env=env
    ) as guard:
        started = time.monotonic()
        assert try_open(target) == ["EPERM"]
        assert time.monotonic() - started < 2.5
        records = guard.wait_for_records(lambda r: r)
    assert [(r["reason"], r["decision"]) for r in records] == [("deadline", "deny")]


def test_watchdog_releases_pending_accesses_and_exits_5(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/file")
    policy = deny_rule(f"{tmpfs}/never/**")
    env = {"FANWATCH_GUARD_TEST_STALL": "30"}
    with RunningGuard(
        tmp_path, tmpfs, policy=policy, args=["--watchdog", "1"], env=env
    ) as guard:
        started = time.monotonic()
        assert try_open(target, timeout=15) == ["OK"]
        assert time.monotonic() - started < 10
        assert guard.wait(10) == 5
        assert "WATCHDOG" in guard.stderr()


def test_kill_9_releases_blocked_processes(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/file")
    policy = deny_rule(f"{tmpfs}/never/**")
    env = {"FANWATCH_GUARD_TEST_STALL": "60"}
    args = ["--watchdog", "120"]
    with RunningGuard(tmp_path, tmpfs, policy=policy, args=args, env=env) as guard:
        opener = subprocess.Popen(["cat", target], stdout=subprocess.PIPE)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                opener.wait(1.0)  # held by the stalled guard
            guard.signal(signal.SIGKILL)
            assert opener.wait(10) == 0
            assert opener.stdout.read() == b"data\n"
        finally:
            opener.kill()
            opener.wait(10)


def test_sigterm_answers_pending_events_by_the_default(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/data/file")
    env = {"FANWATCH_GUARD_TEST_DELAY": "20"}
    args = ["--deadline", "30000"]
    policy = UID_POLICY.format(root=tmpfs)
    with RunningGuard(tmp_path, tmpfs, policy=policy, args=args, env=env) as guard:
        opener = subprocess.Popen(["cat", target], stderr=subprocess.PIPE)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                opener.wait(1.0)
            guard.signal(signal.SIGTERM)
            assert opener.wait(10) == 1
            assert b"Operation not permitted" in opener.stderr.read()
            assert guard.wait(10) == 143
        finally:
            opener.kill()
            opener.wait(10)
    assert [r["reason"] for r in guard.records()] == ["shutdown"]


def test_reload_refuses_a_broken_policy_and_keeps_the_running_one(tmpfs, tmp_path):
    secret = make_file(f"{tmpfs}/secret/key")
    with RunningGuard(tmp_path, tmpfs, policy=deny_rule(f"{tmpfs}/secret/**")) as guard:
        assert try_open(secret) == ["EPERM"]
        guard.write_policy('[[rule]]\nid = "x"\ndecision = "maybe"\n')
        guard.signal(signal.SIGHUP)
        err = guard.wait_for_stderr("reload refused")
        assert "reload refused" in err and "policy.toml:3" in err
        assert try_open(secret) == ["EPERM"]
        guard.write_policy(deny_rule(f"{tmpfs}/elsewhere/**"))
        guard.signal(signal.SIGHUP)
        assert "policy reloaded" in guard.wait_for_stderr("policy reloaded")
        assert try_open(secret) == ["OK"]


def test_the_guard_never_denies_itself(tmpfs, tmp_path):
    # The policy file lives on the guarded mount under a deny-everything
    # policy: reloading it (an open by the guard) must still work. The test
    # rewrites it through a descriptor opened before the guard started.
    policy_path = make_file(f"{tmpfs}/guard/policy.toml", 'default = "deny"\n')
    other = make_file(f"{tmpfs}/other")
    guard = RunningGuard(tmp_path, tmpfs, policy_path=policy_path)
    fd = os.open(guard.policy_path, os.O_RDWR)
    try:
        with guard:
            assert try_open(other, guard.policy_path) == ["EPERM", "EPERM"]
            os.ftruncate(fd, 0)
            os.pwrite(fd, b'default = "allow"\n', 0)
            guard.signal(signal.SIGHUP)
            assert "policy reloaded" in guard.wait_for_stderr("policy reloaded")
            assert try_open(other) == ["OK"]
    finally:
        os.close(fd)


def test_kernel_cache_is_dropped_when_the_file_is_modified(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/file")
    policy = deny_rule(f"{tmpfs}/never/**")
    with RunningGuard(tmp_path, tmpfs, policy=policy) as guard:
        assert try_open(target) == ["OK"]
        # Logged only after the ignore mark is in place.
        first = guard.wait_for_records(lambda r: r)
        assert try_open(target, target, target) == ["OK"] * 3
        time.sleep(0.2)
        assert len(guard.records()) == 1 and first[0]["cached"] == "kernel"
        with open(target, "a") as f:  # allowed by the cached ignore mark
            f.write("more\n")
        assert try_open(target) == ["OK"]
        records = guard.wait_for_records(lambda r: len(r) >= 2)
    assert [r["path"] for r in records] == [target, target]


def test_user_cache_for_process_decisions_is_dropped_on_modify(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/file")
    python = os.path.realpath(sys.executable)
    policy = (
        f'[[rule]]\nid = "py"\npath = "{tmpfs}/**"\nexe = "{python}"\n'
        'decision = "allow"\n'
    )
    script = (
        "import os, sys\n"
        "p = sys.argv[1]\n"
        "os.close(os.open(p, os.O_RDONLY))\n"
        "os.close(os.open(p, os.O_RDONLY))\n"
        "with open(p, 'a') as f: f.write('more')\n"
        "os.close(os.open(p, os.O_RDONLY))\n"
    )
    with RunningGuard(tmp_path, tmpfs, policy=policy) as guard:
        subprocess.run([sys.executable, "-c", script, target], timeout=10, check=True)
        records = guard.wait_for_records(lambda r: len(r) >= 4)
    reasons = [r["reason"] for r in records if r["path"] == target]
    # Never cached in the kernel: every open reaches the guard. Opens of
    # the unchanged file by the same process come from the user-space
    # cache; after the append changed it, the rules decide again.
    assert reasons == ["rule", "user-cache", "user-cache", "rule"]
    assert all("cached" not in r for r in records)


def test_decisions_by_exe_of_a_child(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/data/file")
    cat = os.path.realpath(shutil.which("cat"))
    policy = (
        'default = "deny"\n'
        f'[[rule]]\nid = "cat-only"\npath = "{tmpfs}/data/**"\nexe = "{cat}"\n'
        'decision = "allow"\n'
    )
    with RunningGuard(tmp_path, tmpfs, policy=policy) as guard:
        for _ in range(2):
            done = subprocess.run(["cat", target], capture_output=True, timeout=10)
            assert done.returncode == 0
        assert try_open(target) == ["EPERM"]
        records = guard.wait_for_records(lambda r: len(r) >= 3)
    assert [(r["decision"], r["process"]["exe"]) for r in records][:2] == [
        ("allow", cat)
    ] * 2
    assert records[2]["decision"] == "deny"


def test_decisions_by_uid_of_a_child(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/data/file")
    os.chmod(target, 0o644)
    policy = (
        f'[[rule]]\nid = "not-nobody"\npath = "{tmpfs}/data/**"\n'
        'uid = 65534\ndecision = "deny"\n'
    )
    with RunningGuard(tmp_path, tmpfs, policy=policy) as guard:
        assert try_open(target, prefix=as_unprivileged_user([])[:-1]) == ["EPERM"]
        assert try_open(target) == ["OK"]
        records = guard.wait_for_records(lambda r: len(r) >= 2)
    by_uid = {r["process"]["uid"]: r["decision"] for r in records}
    assert by_uid == {65534: "deny", 0: "allow"}


CONCURRENT_SCRIPT = """
import errno, os, sys
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDONLY))
        print("OK", path)
    except OSError as e:
        print(errno.errorcode[e.errno], path)
"""


def test_1000_opens_from_8_processes_are_answered_exactly_once(tmpfs, tmp_path):
    paths = [make_file(f"{tmpfs}/d{i % 10}/f{i}") for i in range(1000)]
    policy = deny_rule(f"{tmpfs}/d3/**")
    with RunningGuard(tmp_path, tmpfs, policy=policy) as guard:
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CONCURRENT_SCRIPT, *paths[n::8]],
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(8)
        ]
        results = {}
        for child in children:
            out, _ = child.communicate(timeout=30)
            results.update(line.split()[::-1] for line in out.splitlines())
        records = guard.wait_for_records(lambda r: len(r) >= 1000)
        assert guard.stop() == 143
    assert len(results) == 1000
    expected = {p: ("EPERM" if "/d3/" in p else "OK") for p in paths}
    assert results == expected
    opens = [r["path"] for r in records if r["access"] == "open"]
    assert sorted(opens) == sorted(paths)  # each exactly once


def test_decision_log_on_a_full_disk_does_not_stop_answers(tmpfs, tmp_path):
    logdir = tmp_path / "tinylog"
    logdir.mkdir()
    mount_tmpfs(str(logdir), size="8k")
    try:
        paths = [make_file(f"{tmpfs}/f{i}") for i in range(300)]
        log = str(logdir / "decisions.jsonl")
        with RunningGuard(
            tmp_path, tmpfs, policy=deny_rule(f"{tmpfs}/x/**"), log=log
        ) as guard:
            assert try_open(*paths, timeout=30) == ["OK"] * 300
            assert guard.stop() == 143
            summary = guard.stderr()
    finally:
        unmount(str(logdir))
    failed = int(summary.split(" log records dropped, ")[1].split(" failed")[0])
    assert failed > 0
    assert "300 decisions" in summary


def test_without_a_policy_allows_and_prints_like_the_man_page_example(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/file")
    with RunningGuard(tmp_path, None, args=["--mount", tmpfs], log=False) as guard:
        with open(target, "a") as f:
            f.write("x")
        assert try_open(target) == ["OK"]
        guard.wait_for_records(lambda r: False, timeout=0.3)
        assert guard.stop() == 143
    lines = guard.stdout().splitlines()
    assert f"FAN_CLOSE_WRITE: File {target}" in lines
    # The test's own open and the child's: both printed, both counted.
    assert lines.count(f"FAN_OPEN_PERM: File {target}") == 2
    assert "fanwatch guard: stopped: 2 decisions, 0 denied" in guard.stderr()


def test_without_a_policy_names_are_escaped_onto_one_line(tmpfs, tmp_path):
    target = make_file(f"{tmpfs}/a\nFAN_OPEN_PERM: File /forged\tx")
    with RunningGuard(tmp_path, None, args=["--mount", tmpfs], log=False) as guard:
        with open(target, "a") as f:
            f.write("x")
        guard.wait_for_records(lambda r: False, timeout=0.3)
        guard.stop()
    escaped = f"{tmpfs}/a\\nFAN_OPEN_PERM: File /forged\\tx"
    assert guard.stdout().splitlines() == [
        f"FAN_OPEN_PERM: File {escaped}",
        f"FAN_CLOSE_WRITE: File {escaped}",
    ]


def test_the_log_is_strict_utf8_json_with_the_exact_bytes_of_bad_names(tmpfs, tmp_path):
    raw_dir = os.fsencode(tmpfs) + b"/pub"
    raw_name = raw_dir + b"/bad\xff\nname"
    raw_tool = raw_dir + b"/cat\xfe"
    name, tool = os.fsdecode(raw_name), os.fsdecode(raw_tool)
    make_file(name)
    shutil.copy2(shutil.which("cat"), tool)
    # A rule on exe makes the guard read (and log) the process's exe.
    policy = f'[[rule]]\nid = "r"\npath = "{tmpfs}/pub/bad*"\nexe = "/nowhere"\n'
    with RunningGuard(tmp_path, tmpfs, policy=policy) as guard:
        subprocess.run([tool, name], check=True, timeout=10, capture_output=True)
        guard.wait_for_records(lambda r: any(x["path"].endswith("name") for x in r))
        assert guard.stop() == 143
    with open(guard.log_path, "rb") as f:
        lines = f.read().splitlines()
    records = [json.loads(line.decode("utf-8", "strict")) for line in lines]
    for record in records:
        # A lone surrogate (from an undecoded byte) cannot be encoded.
        json.dumps(record, ensure_ascii=False).encode("utf-8", "strict")
    [record] = [r for r in records if r["access"] == "open" and "bad" in r["path"]]
    assert record["path"] == raw_name.decode("utf-8", "replace")
    assert base64.b64decode(record["path_b64"]) == raw_name
    assert record["process"]["exe"] == raw_tool.decode("utf-8", "replace")
    assert base64.b64decode(record["process"]["exe_b64"]) == raw_tool


def test_systemd_readiness_and_watchdog_notifications(tmpfs, tmp_path):
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(10)
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}
    try:
        with RunningGuard(tmp_path, tmpfs, policy='default = "allow"\n', env=env):
            messages = [sock.recv(4096).decode() for _ in range(3)]
    finally:
        sock.close()
    assert messages[0].startswith("READY=1")
    assert "WATCHDOG=1" in messages[1:]


def test_a_broken_policy_is_refused_at_start(tmpfs, tmp_path):
    policy = tmp_path / "bad.toml"
    policy.write_text(
        'default = "allow"\n\n[[rule]]\nid = "a"\ndecision = "deny"\npaht = "/x"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "fanwatch", "guard", "--policy", str(policy), tmpfs],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"fanwatch: {policy}:6: rule 'a': unknown key 'paht'")
    assert "Traceback" not in done.stderr


def test_paths_or_mount_are_required(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "fanwatch", "guard"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr == "fanwatch: give either PATH... or --mount DIR\n"


def test_accesses_outside_the_guarded_paths_are_allowed(tmpfs, tmp_path):
    inside = make_file(f"{tmpfs}/guarded/file")
    outside = make_file(f"{tmpfs}/free/file")
    policy = 'default = "deny"\n'
    with RunningGuard(tmp_path, f"{tmpfs}/guarded", policy=policy):
        assert try_open(inside, outside) == ["EPERM", "OK"]


def _deep_file(top: str, levels: int = 300) -> tuple[int, str]:
    """A file deeper than PATH_MAX under *top*, made with *at() calls; returns
    an fd of its directory and the file's name there."""
    fd = os.open(top, os.O_RDONLY)
    for _ in range(levels):
        os.mkdir("d" * 50, dir_fd=fd)
        inner = os.open("d" * 50, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(os.open("leaf", os.O_CREAT | os.O_WRONLY, dir_fd=fd))

    return fd, "leaf"


def test_a_path_deeper_than_path_max_gets_the_default_and_the_guard_goes_on(
    tmpfs, tmp_path
):
    secret = make_file(f"{tmpfs}/secret/key")
    dir_fd, name = _deep_file(tmpfs)
    policy = 'default = "deny"\n' + deny_rule(f"{tmpfs}/secret/**")
    opener = (
        "import os, sys\n"
        "try:\n"
        "    os.close(os.open(sys.argv[2], os.O_RDONLY, dir_fd=int(sys.argv[1])))\n"
        "    print('OK')\n"
        "except OSError as exc:\n"
        "    print(exc.errno)\n"
    )
    try:
        with RunningGuard(tmp_path, tmpfs, policy=policy) as guard:
            deep = subprocess.run(
                [sys.executable, "-c", opener, str(dir_fd), name],
                pass_fds=[dir_fd],
                capture_output=True,
                text=True,
                timeout=10,
            )
            # The default (deny) decided, and the guard is still enforcing.
            assert deep.stdout.strip() == str(1), deep
            assert try_open(secret) == ["EPERM"]
            records = guard.wait_for_records(
                lambda r: any(x.get("reason") == "path-unreadable" for x in r)
            )
            assert guard.stop() == 143
    finally:
        os.close(dir_fd)
    [unreadable] = [r for r in records if r.get("reason") == "path-unreadable"]
    assert unreadable["decision"] == "deny" and unreadable["path"] is None

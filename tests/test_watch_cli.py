"""``fanwatch watch`` as a user runs it: a child process on a fresh tmpfs.

Each test waits for the "fanwatch: watching" line (printed once the marks
are in place) before it generates events, and kills the command in a
finally (the WatchCli context manager) whatever happens.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import signal
import subprocess
import time

import pytest
from helpers_watch import (
    Puppet,
    WatchCli,
    assert_no_traceback,
    error_lines,
    run_py,
    send,
    watch_argv,
)

from conftest import as_unprivileged_user, without_sys_admin
from fanwatch.cli import exitcodes

QUEUE_SYSCTL = "/proc/sys/fs/fanotify/max_queued_events"


def touch(path: str, prefix=()) -> None:
    run_py(f"open({path!r}, 'ab').write(b'x')", prefix=prefix)


class LiveWriter:
    """A bash that creates *path* and stays alive (until killed), so that
    its details are there to read when the event is."""

    def __init__(self, path: str, prefix=()) -> None:
        # "; true" keeps bash from exec'ing sleep, which would change comm.
        self.proc = subprocess.Popen(
            [*prefix, "bash", "-c", 'echo > "$0"; sleep 30; true', path]
        )

    def __enter__(self) -> LiveWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)


def has_record(kind: str, path: str):
    return lambda records: any(
        kind in r["events"] and r["path"] == path for r in records
    )


def records_for(records: list[dict], kind: str, path: str) -> list[dict]:
    return [r for r in records if kind in r["events"] and r["path"] == path]


def run_watch(args, prefix=(), timeout=20) -> subprocess.CompletedProcess:
    return subprocess.run(
        watch_argv(args, prefix),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
    )


# -- privileged basics ------------------------------------------------------


def test_json_events_with_process_and_ctrl_c(tmpfs):
    path = os.path.join(tmpfs, "f")
    with WatchCli(["--json", tmpfs]) as cli:
        cli.wait_ready()
        with LiveWriter(path) as writer:
            records = cli.records_until(has_record("close_write", path))
        code = cli.stop(signal.SIGINT)
    [create] = [r for r in records if "create" in r["events"]]
    assert create["path"] == path and create["pid"] == writer.proc.pid
    assert (create["comm"], create["uid"], create["process_gone"]) == ("bash", 0, False)
    assert code == exitcodes.INTERRUPTED == 130
    assert_no_traceback(cli.stderr)


def test_sigterm_exits_143_cleanly(tmpfs):
    with WatchCli([tmpfs]) as cli:
        cli.wait_ready()
        code = cli.stop(signal.SIGTERM)
    assert code == exitcodes.TERMINATED == 143
    assert_no_traceback(cli.stderr)


def test_text_lines(tmpfs):
    path = os.path.join(tmpfs, "f")
    with WatchCli([tmpfs]) as cli:
        cli.wait_ready()
        with LiveWriter(path) as writer:
            lines = cli.lines_until(lambda ls: any(b"close_write" in x for x in ls))
    line = [x for x in lines if b"close_write" in x][0].decode()
    clock, process, kinds, shown = line.rstrip("\n").split(" ")
    assert process == f"bash({writer.proc.pid})" and "close_write" in kinds.split(",")
    assert shown == path and time.strptime(clock.split(".")[0], "%H:%M:%S")


def test_count_stops_with_exit_0(tmpfs):
    with WatchCli(["--json", "-c", "2", tmpfs]) as cli:
        cli.wait_ready()
        for i in range(5):
            touch(os.path.join(tmpfs, f"f{i}"))
        code = cli.wait()
    assert code == 0 and len(cli.out_lines) == 2


def test_timeout_alone_exits_0(tmpfs):
    result = run_watch(["-t", "0.3", tmpfs])
    assert result.returncode == 0, result.stderr


def test_timeout_before_count_exits_4(tmpfs):
    result = run_watch(["-t", "0.3", "-c", "5", tmpfs])
    assert result.returncode == exitcodes.TIMEOUT == 4, result.stderr


def test_closed_output_pipe_ends_quietly(tmpfs):
    proc = subprocess.Popen(
        watch_argv([tmpfs]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/"
    )
    try:
        assert proc.stderr.readline().startswith(b"fanwatch: watching")
        touch(os.path.join(tmpfs, "first"))
        assert proc.stdout.readline()
        proc.stdout.close()  # what 'head -1' does after its line
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            touch(os.path.join(tmpfs, "more"))
        code = proc.wait(timeout=5)
        stderr = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait(timeout=5)
    assert code == exitcodes.BROKEN_PIPE == 141
    assert_no_traceback(stderr)
    assert "Exception ignored" not in stderr


def test_closed_output_pipe_in_a_shell_pipeline(tmpfs):
    script = (
        f"{' '.join(watch_argv(['-q', tmpfs]))} | head -1; "
        "echo status=${PIPESTATUS[0]} >&2"
    )
    shell = subprocess.Popen(
        ["bash", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while shell.poll() is None and time.monotonic() < deadline:
            touch(os.path.join(tmpfs, "f"))
            time.sleep(0.05)
        out, err = shell.communicate(timeout=5)
    finally:
        send(-shell.pid, signal.SIGKILL)
        shell.wait(timeout=5)
    assert len(out.splitlines()) == 1
    assert err.decode().strip() == "status=141"


def test_output_file_is_never_overwritten(tmpfs):
    existing = os.path.join(tmpfs, "events.log")
    with open(existing, "w") as f:
        f.write("keep me\n")
    result = run_watch(["-o", existing, "-t", "0.2", tmpfs])
    assert result.returncode == 1
    assert error_lines(result.stderr) == [f"fanwatch: {existing}: already exists"]
    with open(existing) as f:
        assert f.read() == "keep me\n"


def test_own_output_file_is_not_reported(tmpfs):
    log = os.path.join(tmpfs, "events.log")
    other = os.path.join(tmpfs, "other")
    # The test polls the log itself: its own reads are excluded by pid, so
    # any record about the log left would be fanwatch's own writes.
    args = ["--json", "-o", log, "--exclude-pid", str(os.getpid()), tmpfs]
    with WatchCli(args) as cli:
        cli.wait_ready()
        for i in range(3):
            touch(f"{other}{i}")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(log) as f:
                if "other2" in f.read():
                    break
            time.sleep(0.05)
        code = cli.stop()
    with open(log) as f:
        records = [json.loads(line) for line in f]
    assert code == 130
    assert records_for(records, "close_write", f"{other}2")
    assert not [r for r in records if r["path"] == log], records


def test_csv_header_and_rows(tmpfs):
    path = os.path.join(tmpfs, 'a,b"c')
    with WatchCli(["--csv", "-e", "create", tmpfs]) as cli:
        cli.wait_ready()
        touch(path)
        lines = cli.lines_until(lambda ls: len(ls) >= 2)
    rows = list(csv.reader(io.StringIO(b"".join(lines).decode())))
    assert rows[0][:4] == ["time", "events", "path", "old_path"]
    assert rows[1][1] == "create" and rows[1][2] == path
    assert rows[1][rows[0].index("pid")].isdigit()


def test_format_placeholders(tmpfs):
    path = os.path.join(tmpfs, "f")
    template = "{events}|{path}|{is_dir}|{pid}|{comm}|{uid}|{process}"
    with WatchCli(["--format", template, "-e", "create", tmpfs]) as cli:
        cli.wait_ready()
        with LiveWriter(path, prefix=as_unprivileged_user([])) as writer:
            [line] = cli.lines_until(lambda ls: len(ls) >= 1)
    events, shown, is_dir, pid, comm, uid, process = (
        line.decode().rstrip("\n").split("|")
    )
    assert (events, shown, is_dir, comm, uid) == (
        "create",
        path,
        "False",
        "bash",
        "65534",
    )
    assert pid == str(writer.proc.pid) and process == f"bash({pid})"


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "{nope}"],
        ["--format", "{path"],
        ["--format", ""],
        ["-e", "bogus"],
        ["-e", ","],
        ["--include", ""],
        ["--timeout", "inf"],
        ["--timeout", "nan"],
        ["--uid", "-1"],
        ["--count", "0"],
        ["--comm", "averyverylongpythonname"],
        ["--mount", "--unprivileged"],
    ],
    ids=[
        "unknown-placeholder",
        "unbalanced",
        "empty-format",
        "unknown-event",
        "no-event",
        "empty-glob",
        "infinite-timeout",
        "nan-timeout",
        "negative-uid",
        "zero-count",
        "long-comm",
        "unprivileged-mount",
    ],
)
def test_bad_option_values_are_usage_errors(tmpfs, args):
    result = run_watch([*args, "-t", "0.2", tmpfs])
    assert result.returncode == exitcodes.USAGE == 2
    assert len(error_lines(result.stderr)) == 1, result.stderr
    assert_no_traceback(result.stderr)


def test_missing_path_is_one_line_and_a_usage_error(tmpfs):
    missing = os.path.join(tmpfs, "missing")
    dangling = os.path.join(tmpfs, "dangling")
    os.symlink(missing, dangling)

    for path in (missing, dangling):
        result = run_watch([path])
        assert result.returncode == 2
        assert error_lines(result.stderr) == [
            f"fanwatch: {path}: no such file or directory"
        ]


def test_empty_path_is_refused(tmpfs):
    result = run_watch([""])

    assert result.returncode == 2
    assert error_lines(result.stderr) == ["fanwatch: an empty PATH names nothing"]


def test_mount_scope_reports_every_open_and_close_write(tmpfs):
    inside = os.path.join(tmpfs, "watched")
    os.mkdir(inside)
    paths = [os.path.join(tmpfs, "top"), os.path.join(inside, "deep")]
    with WatchCli(["--json", "--mount", inside]) as cli:
        cli.wait_ready()
        for path in paths:
            touch(path)
        records = cli.records_until(has_record("close_write", paths[-1]))
    for path in paths:
        assert records_for(records, "open", path)
        assert records_for(records, "close_write", path)


# -- names ------------------------------------------------------------------

ODD = b"odd\nname \xff-"


def test_odd_name_in_text_json_and_csv(tmpfs):
    path = os.fsencode(tmpfs) + b"/" + ODD
    outputs = {}
    for style in ("text", "--json", "--csv"):
        args = ["-e", "create", tmpfs] + ([] if style == "text" else [style])
        with WatchCli(args) as cli:
            cli.wait_ready()
            run_py(f"open(bytes.fromhex({path.hex()!r}), 'wb').close()")
            os.unlink(path)
            expected = 2 if style == "--csv" else 1
            outputs[style] = cli.lines_until(lambda ls, n=expected: len(ls) >= n)
            cli.stop()
            assert len(cli.out_lines) == expected, cli.out_lines
    [text] = outputs["text"]
    assert text.decode().rstrip("\n").endswith(f"{tmpfs}/odd\\nname \\xff-")
    [line] = outputs["--json"]
    record = json.loads(line)
    assert base64.b64decode(record["path_b64"]) == path
    assert "\n" in record["path"]
    header, row = outputs["--csv"]
    assert row.decode().count("\n") == 1 and b"odd\\nname \\xff-" in row


# -- filters ----------------------------------------------------------------


def test_event_selection(tmpfs):
    path = os.path.join(tmpfs, "f")
    with WatchCli(["--json", "-e", "create,close_write", tmpfs]) as cli:
        cli.wait_ready()
        touch(path)
        run_py(f"open({path!r}).read()")
        touch(os.path.join(tmpfs, "marker"))
        records = cli.records_until(has_record("close_write", f"{tmpfs}/marker"))
    kinds = {kind for r in records for kind in r["events"]}
    assert kinds <= {"create", "close_write"} and "create" in kinds


def test_include_exclude_globs(tmpfs):
    os.makedirs(os.path.join(tmpfs, "src", "deep"))
    os.makedirs(os.path.join(tmpfs, "build"))
    args = [
        "--json",
        "-e",
        "create",
        "--include",
        "**/src/**",
        "--include",
        "*.md",
        "--exclude",
        "*.tmp",
        tmpfs,
    ]
    wanted = [f"{tmpfs}/src/deep/a.py", f"{tmpfs}/build/README.md"]
    unwanted = [f"{tmpfs}/build/a.py", f"{tmpfs}/src/deep/x.tmp"]
    with WatchCli(args) as cli:
        cli.wait_ready()
        for path in unwanted + wanted:
            touch(path)
        records = cli.records_until(has_record("create", wanted[-1]))
    assert [r["path"] for r in records] == wanted


def test_pid_filters(tmpfs):
    with Puppet() as chosen, Puppet() as other:
        for option, writer, marker_writer in (
            ("--pid", other, chosen),
            ("--exclude-pid", chosen, other),
        ):
            marker = f"{tmpfs}/marker{option}"
            with WatchCli(
                ["--json", "-e", "create", option, str(chosen.pid), tmpfs]
            ) as cli:
                cli.wait_ready()
                writer.write(f"{tmpfs}/dropped{option}")
                marker_writer.write(marker)
                records = cli.records_until(has_record("create", marker))
            assert [r["path"] for r in records] == [marker]


def test_comm_and_uid_filters(tmpfs):
    """The marker's writer stays alive: comm and uid criteria need the
    process to be there when the event is read (a gone one has neither)."""
    nobody = as_unprivileged_user([])
    cases = [
        (["--comm", "bash"], []),
        (["--exclude-comm", "python"], []),
        (["--uid", "65534"], nobody),
        (["--exclude-uid", "0"], nobody),
    ]
    for option, prefix in cases:
        marker = f"{tmpfs}/marker{option[0]}"
        with WatchCli(["--json", "-e", "create", *option, tmpfs]) as cli:
            cli.wait_ready()
            touch(f"{tmpfs}/dropped{option[0]}")  # python, as root
            with LiveWriter(marker, prefix):
                records = cli.records_until(has_record("create", marker))
        assert [r["path"] for r in records] == [marker], option


# -- unprivileged -----------------------------------------------------------

UNPRIVILEGED = {
    "no-sys-admin": without_sys_admin,
    "nobody": as_unprivileged_user,
}


@pytest.fixture(params=list(UNPRIVILEGED))
def unprivileged(request):
    return UNPRIVILEGED[request.param]([])


def test_unprivileged_events_paths_and_note(tmpfs, unprivileged):
    path = os.path.join(tmpfs, "f")
    with WatchCli(["--json", tmpfs], prefix=unprivileged) as cli:
        cli.wait_ready()
        touch(path)
        records = cli.records_until(has_record("close_write", path))
        cli.stop()
    assert records_for(records, "create", path)
    assert {r["pid"] for r in records} == {0}
    notes = [x for x in cli.stderr.splitlines() if "no CAP_SYS_ADMIN" in x]
    assert len(notes) == 1 and "pid 0" in notes[0]
    assert "one inode mark per directory" in cli.stderr


def test_unprivileged_recursive_new_and_renamed_directories(tmpfs, unprivileged):
    made = os.path.join(tmpfs, "made")
    inner = os.path.join(made, "inner")
    moved = os.path.join(tmpfs, "moved")
    with WatchCli(["--json", tmpfs], prefix=unprivileged) as cli:
        cli.wait_ready()
        run_py(f"import os; os.mkdir({made!r})")
        cli.records_until(has_record("create", made))
        run_py(f"import os; os.mkdir({inner!r})")
        cli.records_until(has_record("create", inner))
        touch(f"{inner}/f")
        cli.records_until(has_record("close_write", f"{inner}/f"))
        run_py(f"import os; os.rename({made!r}, {moved!r})")
        touch(f"{moved}/inner/g")
        records = cli.records_until(has_record("close_write", f"{moved}/inner/g"))
    [rename] = [r for r in records if "rename" in r["events"]]
    assert (rename["old_path"], rename["path"], rename["is_dir"]) == (made, moved, True)
    assert records_for(records, "create", f"{inner}/f")
    assert records_for(records, "create", f"{moved}/inner/g")


@pytest.mark.parametrize("scope", ["--mount", "--filesystem"])
def test_unprivileged_whole_scopes_are_refused(tmpfs, unprivileged, scope):
    result = run_watch([scope, tmpfs], prefix=unprivileged)
    assert result.returncode == exitcodes.NOT_SUPPORTED == 3
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "needs CAP_SYS_ADMIN" in lines[0], result.stderr
    assert_no_traceback(result.stderr)


# -- overflow ---------------------------------------------------------------


@pytest.fixture
def small_queue():
    with open(QUEUE_SYSCTL) as f:
        saved = f.read()
    with open(QUEUE_SYSCTL, "w") as f:
        f.write("32")
    try:
        yield
    finally:
        with open(QUEUE_SYSCTL, "w") as f:
            f.write(saved)


@pytest.mark.parametrize("style", ["text", "--json"])
def test_overflow_in_the_stream_and_counted_at_exit(tmpfs, small_queue, style):
    args = ["-e", "create", tmpfs] + ([] if style == "text" else [style])
    with WatchCli(args, prefix=as_unprivileged_user([])) as cli:
        cli.wait_ready()
        cli.proc.send_signal(signal.SIGSTOP)  # a reader that falls behind
        try:
            run_py(f"for i in range(100): open('{tmpfs}/f%d' % i, 'wb').close()")
        finally:
            cli.proc.send_signal(signal.SIGCONT)
        lines = cli.lines_until(lambda ls: any(b"overflow" in x for x in ls))
        code = cli.stop()
    assert code == 130
    flagged = [x for x in lines if b"overflow" in x]
    assert len(flagged) == 1
    if style == "text":
        assert (
            flagged[0].decode().rstrip("\n").endswith(" - overflow (events were lost)")
        )
    else:
        record = json.loads(flagged[0])
        assert record["events"] == ["overflow"] and record["path"] is None
    assert len(lines) <= 33
    assert "queue overflowed 1 time(s)" in cli.stderr


def test_process_filters_are_refused_where_no_pid_is_reported(tmpfs):
    result = run_watch(
        ["--comm", "touch", "-t", "0.2", tmpfs], prefix=without_sys_admin([])
    )

    assert result.returncode == 2
    assert "process ids are not reported" in result.stderr
    assert_no_traceback(result.stderr)


def test_process_details_filters_need_process_details(tmpfs):
    result = run_watch(["--no-process", "--uid", "0", "-t", "0.2", tmpfs])

    assert result.returncode == 2
    assert "--no-process" in result.stderr


@pytest.mark.parametrize(
    "unprivileged", [False, True], ids=["privileged", "unprivileged"]
)
def test_stops_when_every_watched_directory_is_deleted(tmpfs, unprivileged):
    watched = os.path.join(tmpfs, "watched")
    os.mkdir(watched)
    args = ["--unprivileged"] if unprivileged else []

    with WatchCli([*args, "-t", "20", watched]) as cli:
        cli.wait_ready()
        run_py(f"import os; os.rmdir({watched!r})")
        code = cli.wait(10)

    assert code == 0
    assert "every watched directory was deleted" in cli.stderr

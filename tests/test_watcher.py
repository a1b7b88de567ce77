"""Watcher against the real kernel, on a fresh tmpfs per test.

Each event kind is checked in both modes this root process can choose:
"privileged" (a filesystem mark filtered to the tree) and "unprivileged"
(one inode mark per directory, the mode used without CAP_SYS_ADMIN). The
workloads run in child processes, since a watcher drops its own events.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys

import pytest
from helpers_watch import HeldOpen, collect, drain, find, has, run_py

from conftest import as_unprivileged_user
from fanwatch.constants import FAN_CREATE, FAN_DELETE, FAN_MODIFY, FAN_OPEN
from fanwatch.watcher import Scope, Watcher

MODES = ["privileged", "unprivileged"]


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def b(path: str) -> bytes:
    return os.fsencode(path)


def write_file(path: str, data: bytes = b"x") -> None:
    with open(path, "wb") as f:
        f.write(data)


def test_open_access_close_nowrite(tmpfs, mode):
    path = os.path.join(tmpfs, "f")
    write_file(path, b"data")
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"open({path!r}, 'rb').read()")
        events = collect(watcher, has("close_nowrite", b(path)))
    for kind in ("open", "access", "close_nowrite"):
        assert find(events, kind, b(path)), (kind, events)


def test_modify_close_write(tmpfs, mode):
    path = os.path.join(tmpfs, "f")
    write_file(path)
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"open({path!r}, 'ab').write(b'more')")
        events = collect(watcher, has("close_write", b(path)))
    assert find(events, "modify", b(path))
    assert find(events, "close_write", b(path))


def test_create_and_delete(tmpfs, mode):
    path = os.path.join(tmpfs, "f")
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"open({path!r}, 'wb').close()")
        created = collect(watcher, has("create", b(path)))
        run_py(f"import os; os.unlink({path!r})")
        deleted = collect(watcher, has("delete", b(path)))
    [create] = find(created, "create", b(path))
    assert not create.is_dir
    assert find(deleted, "delete", b(path))


def test_rename_within_directory_is_one_event(tmpfs, mode):
    old, new = os.path.join(tmpfs, "a"), os.path.join(tmpfs, "b")
    write_file(old)
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"import os; os.rename({old!r}, {new!r})")
        events = collect(watcher, has("rename", b(new)))
    [rename] = find(events, "rename", b(new))
    assert rename.old_path == b(old)


def test_rename_across_directories_is_one_event(tmpfs, mode):
    os.mkdir(os.path.join(tmpfs, "d1"))
    os.mkdir(os.path.join(tmpfs, "d2"))
    old, new = os.path.join(tmpfs, "d1", "f"), os.path.join(tmpfs, "d2", "g")
    write_file(old)
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"import os; os.rename({old!r}, {new!r})")
        events = collect(watcher, has("rename", b(new)))
    [rename] = find(events, "rename", b(new))
    assert rename.old_path == b(old)
    assert not [e for e in events if "moved_from" in e.kinds or "moved_to" in e.kinds]


def test_attrib(tmpfs, mode):
    path = os.path.join(tmpfs, "f")
    write_file(path)
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"import os; os.chmod({path!r}, 0o600)")
        events = collect(watcher, has("attrib", b(path)))
    assert find(events, "attrib", b(path))


def test_open_exec_of_a_copied_binary(tmpfs, mode):
    binary = os.path.join(tmpfs, "true-copy")
    shutil.copy2(shutil.which("true"), binary)
    with Watcher([tmpfs], mode=mode) as watcher:
        subprocess.run([binary], check=True, timeout=10)
        events = collect(watcher, has("open_exec", b(binary)))
    assert find(events, "open_exec", b(binary))


def test_open_exec_of_a_script(tmpfs, mode):
    script = os.path.join(tmpfs, "script.sh")
    write_file(script, b"#!/bin/sh\nexit 0\n")
    os.chmod(script, 0o755)
    with Watcher([tmpfs], mode=mode) as watcher:
        subprocess.run([script], check=True, timeout=10)
        events = collect(watcher, has("open_exec", b(script)))
    assert find(events, "open_exec", b(script))


def test_mkdir_rmdir_are_flagged_is_dir(tmpfs, mode):
    path = os.path.join(tmpfs, "sub")
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"import os; os.mkdir({path!r})")
        created = collect(watcher, has("create", b(path)))
        run_py(f"import os; os.rmdir({path!r})")
        deleted = collect(watcher, has("delete", b(path)))
    [mkdir] = find(created, "create", b(path))
    [rmdir] = find(deleted, "delete", b(path))
    assert mkdir.is_dir and rmdir.is_dir


def test_events_outside_the_tree_are_not_reported(tmpfs, mode):
    inside, outside = os.path.join(tmpfs, "in"), os.path.join(tmpfs, "out")
    os.mkdir(inside)
    os.mkdir(outside)
    with Watcher([inside], mode=mode) as watcher:
        run_py(
            f"open({outside + '/f'!r}, 'wb').close()\n"
            f"open({inside + '/f'!r}, 'wb').close()"
        )
        events = collect(watcher, has("close_write", b(inside + "/f")))
        events += drain(watcher)
    assert events
    assert all(e.path.startswith(b(inside)) for e in events), events


# -- processes --------------------------------------------------------------


def test_process_of_a_live_child(tmpfs):
    path = os.path.join(tmpfs, "f")
    write_file(path)
    with Watcher([tmpfs], events=FAN_OPEN) as watcher:
        with HeldOpen(path, prefix=as_unprivileged_user([])) as child:
            events = collect(watcher, has("open", b(path)))
            [event] = find(events, "open", b(path))
            with open(f"/proc/{child.pid}/comm") as f:
                comm = f.read().strip()
    proc = event.process
    assert proc.pid == child.pid
    assert not proc.gone
    assert proc.comm == comm
    assert proc.exe == os.path.realpath(os.sys.executable)
    assert (proc.uid, proc.gid) == (65534, 65534)
    # setpriv execs the child in place: its parent is this test.
    assert proc.ppid == os.getpid()


def test_process_that_exited_before_the_read_is_gone(tmpfs):
    path = os.path.join(tmpfs, "f")
    write_file(path)
    with Watcher([tmpfs], events=FAN_OPEN) as watcher:
        child = subprocess.Popen(
            [os.sys.executable, "-c", f"open({path!r}).close()"], cwd="/"
        )
        child.wait(timeout=10)
        # Start unrelated processes so that the pid space moves on.
        for _ in range(3):
            subprocess.run(["true"], check=True, timeout=10)
        events = collect(watcher, has("open", b(path)))
    [event] = find(events, "open", b(path))
    assert event.process.pid == child.pid
    assert event.process.gone
    assert event.process.comm is None and event.process.exe is None


def test_own_accesses_are_never_reported(tmpfs, mode):
    mine, theirs = os.path.join(tmpfs, "mine"), os.path.join(tmpfs, "theirs")
    with Watcher([tmpfs], mode=mode) as watcher:
        write_file(mine)
        with open(mine, "rb") as f:
            f.read()
        run_py(f"open({theirs!r}, 'wb').close()")
        events = collect(watcher, has("close_write", b(theirs)))
        events += drain(watcher)
        own = watcher.stats.own
    assert find(events, "create", b(theirs))
    assert not [e for e in events if e.path == b(mine)], events
    assert own > 0


# -- names ------------------------------------------------------------------

ODD_NAMES = [
    b"new\nline",
    b"with space",
    b"-leading-dash",
    b"bad\xff\xfeutf8",
    b"tab\tand\\backslash",
]


@pytest.mark.parametrize("name", ODD_NAMES, ids=repr)
def test_odd_names_are_exact_bytes(tmpfs, mode, name):
    path = b(tmpfs) + b"/" + name
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(
            f"import os; p = bytes.fromhex({path.hex()!r})\n"
            "os.close(os.open(p, os.O_CREAT | os.O_WRONLY))"
        )
        events = collect(watcher, has("close_write", path))
    assert find(events, "create", path)
    assert find(events, "close_write", path)


def test_path_near_path_max(tmpfs, mode):
    component = "d" * 100
    deep = tmpfs
    while len(deep) + len(component) + 1 < 3850:
        deep = os.path.join(deep, component)
        os.mkdir(deep)
    path = os.path.join(deep, "f" * (4000 - len(deep) - 1))
    assert len(path) == 4000
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"open({path!r}, 'wb').write(b'x')")
        events = collect(watcher, has("close_write", b(path)))
    assert find(events, "create", b(path))
    assert find(events, "close_write", b(path))


# -- directory table --------------------------------------------------------


def test_file_deleted_and_recreated_under_the_same_name(tmpfs, mode):
    path = os.path.join(tmpfs, "f")
    write_file(path)
    with Watcher(
        [tmpfs], events=FAN_CREATE | FAN_DELETE | FAN_MODIFY, mode=mode
    ) as watcher:
        run_py(f"import os; os.unlink({path!r})\nopen({path!r}, 'wb').write(b'second')")
        events = collect(watcher, has("modify", b(path)))
    # The kernel merges the new file's create and modify into one record;
    # it never merges them with the old file's delete.
    assert [e.path for e in events] == [b(path), b(path)], events
    assert events[0].kinds == ["delete"]
    assert events[1].kinds == ["modify", "create"]


def test_directory_deleted_and_recreated_under_the_same_name(tmpfs, mode):
    directory = os.path.join(tmpfs, "d")
    os.mkdir(directory)
    inner = os.path.join(directory, "f")
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"import os; os.rmdir({directory!r}); os.mkdir({directory!r})")
        collect(watcher, has("create", b(directory)))
        run_py(f"open({inner!r}, 'wb').close()")
        events = collect(watcher, has("close_write", b(inner)))
    assert find(events, "create", b(inner))


def test_renamed_directory_keeps_exact_paths(tmpfs, mode):
    old = os.path.join(tmpfs, "old")
    os.makedirs(os.path.join(old, "sub"))
    new = os.path.join(tmpfs, "new")
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"import os; os.rename({old!r}, {new!r})")
        collect(watcher, has("rename", b(new)))
        inner = os.path.join(new, "sub", "f")
        run_py(f"open({inner!r}, 'wb').close()")
        events = collect(watcher, has("close_write", b(inner)))
    assert find(events, "create", b(inner))


def test_new_subdirectories_are_watched(tmpfs, mode):
    top = os.path.join(tmpfs, "a")
    path = os.path.join(top, "b", "f")
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"import os; os.mkdir({top!r})")
        collect(watcher, has("create", b(top)))
        run_py(f"import os; os.mkdir({top + '/b'!r})")
        collect(watcher, has("create", b(top + "/b")))
        run_py(f"open({path!r}, 'wb').close()")
        events = collect(watcher, has("close_write", b(path)))
    assert find(events, "create", b(path))


def test_directory_created_and_renamed_before_the_read_is_watched(tmpfs):
    """The creation is read after the directory moved: the rename must still
    get the directory marked under its new name."""
    made, moved = os.path.join(tmpfs, "made"), os.path.join(tmpfs, "moved")
    with Watcher([tmpfs], mode="unprivileged") as watcher:
        run_py(f"import os; os.mkdir({made!r}); os.rename({made!r}, {moved!r})")
        collect(watcher, has("rename", b(moved)))
        inner = os.path.join(moved, "f")
        run_py(f"open({inner!r}, 'wb').close()")
        events = collect(watcher, has("close_write", b(inner)))
    assert find(events, "close_write", b(inner)), events


# -- queue overflow ---------------------------------------------------------


@pytest.fixture
def small_queue():
    sysctl = "/proc/sys/fs/fanotify/max_queued_events"
    with open(sysctl) as f:
        saved = f.read()
    with open(sysctl, "w") as f:
        f.write("32")
    try:
        yield 32
    finally:
        with open(sysctl, "w") as f:
            f.write(saved)


def test_overflow_is_reported_in_the_stream(tmpfs, mode, small_queue):
    with Watcher([tmpfs], mode=mode, unlimited_queue=False) as watcher:
        run_py(f"for i in range(200): open('{tmpfs}/f%d' % i, 'wb').close()")
        events = drain(watcher)
        overflows = watcher.stats.overflows
    flagged = [e for e in events if e.is_overflow]
    assert len(flagged) == 1 and overflows == 1
    assert flagged[0].path is None and flagged[0].kinds == ["overflow"]
    assert all(
        e.path is not None and "overflow" not in e.kinds
        for e in events
        if not e.is_overflow
    )
    assert len(events) <= small_queue + 1


# -- overlayfs --------------------------------------------------------------


@pytest.fixture
def overlay(tmpfs):
    parts = {
        name: os.path.join(tmpfs, name) for name in ("lower", "upper", "work", "merged")
    }
    for path in parts.values():
        os.mkdir(path)
    write_file(os.path.join(parts["lower"], "from-lower"))
    options = "lowerdir={lower},upperdir={upper},workdir={work}".format(**parts)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, parts["merged"]],
        check=True,
        timeout=10,
    )
    try:
        yield parts["merged"]
    finally:
        subprocess.run(["umount", "-l", parts["merged"]], check=False, timeout=10)


def test_overlayfs_falls_back_to_an_fd_mount_mark(overlay):
    path = os.path.join(overlay, "sub", "f")
    os.mkdir(os.path.dirname(path))
    lower = os.path.join(overlay, "from-lower")
    with Watcher([overlay]) as watcher:
        assert watcher.mode_description == "mount mark with file descriptors"
        [note] = watcher.notes
        run_py(f"open({path!r}, 'wb').write(b'x'); open({lower!r}).read()")
        events = collect(watcher, has("close_nowrite", b(lower)))
    assert "creations, deletions, renames" in note and "not reported" in note
    assert find(events, "open", b(path))
    assert find(events, "close_write", b(path))
    assert find(events, "open", b(lower))


# -- iteration and resources ------------------------------------------------


def test_async_iteration_yields_the_same_events(tmpfs):
    path = os.path.join(tmpfs, "f")

    async def gather(watcher):
        seen = []
        async for event in watcher:
            seen.append(event)
            if "close_write" in event.kinds:
                return seen

    with Watcher([tmpfs]) as watcher:
        run_py(f"open({path!r}, 'wb').write(b'x')")
        events = asyncio.run(asyncio.wait_for(gather(watcher), 5))
    kinds = {kind for e in events for kind in e.kinds}
    assert {"create", "open", "modify", "close_write"} <= kinds
    assert {e.path for e in events} == {b(path)}


def test_iteration_yields_events(tmpfs):
    path = os.path.join(tmpfs, "f")
    with Watcher([tmpfs], events=FAN_CREATE) as watcher:
        run_py(f"open({path!r}, 'wb').close()")
        event = next(iter(watcher))
    assert event.kinds == ["create"] and event.path == b(path)


def test_context_manager_closes_groups(tmpfs):
    with Watcher([tmpfs]) as watcher:
        fds = [s.group.fileno() for s in watcher._sources]
        assert fds and all(
            os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[fanotify]" for fd in fds
        )
    assert all(s.group.closed for s in watcher._sources) or not watcher._sources
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
    watcher.close()  # closing twice is harmless


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_fd_leak_after_many_events(tmpfs, mode):
    with Watcher([tmpfs], mode=mode) as watcher:
        run_py(f"for i in range(50): open('{tmpfs}/f%d' % i, 'wb').close()")
        collect(watcher, lambda _events: False, deadline=0.2)
        before = open_fds()
        run_py(
            f"import os\n"
            f"for i in range(300):\n"
            f"    p = '{tmpfs}/g%d' % (i % 30)\n"
            f"    open(p, 'wb').write(b'x'); open(p).read()\n"
            f"    if i % 3 == 0: os.unlink(p)\n"
        )
        events = drain(watcher)
        after = open_fds()
    assert len(events) > 100
    assert {e.path for e in events} == {b(f"{tmpfs}/g{i}") for i in range(30)}
    assert after == before


def test_missing_path_raises_file_not_found(tmpfs):
    with pytest.raises(FileNotFoundError) as info:
        Watcher([os.path.join(tmpfs, "missing")])
    assert info.value.filename == b(os.path.join(tmpfs, "missing"))


# -- paths stay right whatever events are reported --------------------------


@pytest.mark.parametrize("mode", ["auto", "unprivileged"])
def test_directory_rename_is_tracked_when_renames_are_not_reported(tmpfs, mode):
    os.makedirs(f"{tmpfs}/old/sub")
    with open(f"{tmpfs}/old/sub/f", "w") as f:
        f.write("x")
    target = os.fsencode(f"{tmpfs}/new/sub/f")

    with Watcher([tmpfs], events=FAN_OPEN, mode=mode) as watcher:
        os.rename(f"{tmpfs}/old", f"{tmpfs}/new")
        run_py(f"open({f'{tmpfs}/new/sub/f'!r}).close()")
        events = collect(watcher, has("open", target))

    assert find(events, "open", target), events
    assert all(e.kinds == ["open"] for e in events), events


@pytest.mark.parametrize("mode", ["auto", "unprivileged"])
def test_a_path_given_through_a_symlink_is_watched(tmpfs, mode):
    os.mkdir(f"{tmpfs}/real")
    os.symlink(f"{tmpfs}/real", f"{tmpfs}/link")
    target = os.fsencode(f"{tmpfs}/real/made")

    with Watcher([f"{tmpfs}/link"], events=FAN_CREATE, mode=mode) as watcher:
        run_py(f"open({f'{tmpfs}/link/made'!r}, 'w').close()")
        events = collect(watcher, has("create", target))

    assert find(events, "create", target), events


def test_not_recursive_reports_direct_entries_only_with_privilege(tmpfs):
    os.makedirs(f"{tmpfs}/a/b")

    with Watcher([tmpfs], events=FAN_CREATE, recursive=False) as watcher:
        assert watcher.privileged
        run_py(
            "import sys\nfor p in sys.argv[1:]: open(p, 'w').close()\n".replace(
                "sys.argv[1:]",
                repr([f"{tmpfs}/a/b/deep", f"{tmpfs}/a/mid", f"{tmpfs}/top"]),
            )
        )
        events = drain(watcher, 0.5)

    assert [e.path for e in events] == [os.fsencode(f"{tmpfs}/top")]


@pytest.mark.parametrize("mode", ["auto", "unprivileged"])
def test_a_tree_deeper_than_path_max_is_watched_where_it_can_be(tmpfs, mode):
    deep = tmpfs
    fd = os.open(tmpfs, os.O_RDONLY)
    try:
        # Build 600 levels with *at() calls: no single path is that long.
        for _ in range(600):
            os.mkdir("d" * 20, dir_fd=fd)
            new = os.open("d" * 20, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
    finally:
        os.close(fd)
    target = os.fsencode(f"{tmpfs}/top")

    with Watcher([tmpfs], events=FAN_CREATE, mode=mode) as watcher:
        assert watcher.stats.unmarkable, "the deepest directories cannot be named"
        run_py(f"open({f'{tmpfs}/top'!r}, 'w').close()")
        events = collect(watcher, has("create", target))

    assert find(events, "create", target), events
    del deep


def test_delete_self_of_a_file_has_its_path(tmpfs):
    from fanwatch.constants import FAN_DELETE_SELF

    path = f"{tmpfs}/doomed"
    open(path, "w").close()
    with Watcher([tmpfs], events=FAN_DELETE_SELF | FAN_OPEN) as watcher:
        run_py(f"open({path!r}).close()")
        collect(watcher, has("open", os.fsencode(path)))
        run_py(
            f"import os; os.rename({path!r}, {path + '2'!r}); os.unlink({path + '2'!r})"
        )
        events = collect(
            watcher, lambda got: any("delete_self" in e.kinds for e in got)
        )

    gone = [e for e in events if "delete_self" in e.kinds]
    assert [e.path for e in gone] == [os.fsencode(path + "2")], events


@pytest.mark.parametrize("scope", [Scope.TREE, Scope.MOUNT])
def test_an_event_deeper_than_path_max_does_not_stop_the_watch(tmpfs, scope):
    fd = os.open(tmpfs, os.O_RDONLY)
    for _ in range(300):
        os.mkdir("d" * 50, dir_fd=fd)
        inner = os.open("d" * 50, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(os.open("leaf", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    after = os.fsencode(f"{tmpfs}/after")
    opener = (
        "import os, sys\n"
        "os.close(os.open('leaf', os.O_RDONLY, dir_fd=int(sys.argv[1])))\n"
        "open(sys.argv[2], 'w').close()\n"
    )
    try:
        with Watcher([tmpfs], scope=scope, events=FAN_OPEN) as watcher:
            subprocess.run(
                [sys.executable, "-c", opener, str(fd), os.fsdecode(after)],
                pass_fds=[fd],
                check=True,
                timeout=10,
            )
            events = collect(watcher, has("open", after))
    finally:
        os.close(fd)

    assert find(events, "open", after), events


def test_marking_a_large_tree_does_not_overflow_a_limited_queue(tmpfs):
    # 20,000 directories: listing each while marking is an event of our
    # own, more than the 16,384 a limited queue holds.
    for top in range(100):
        for sub in range(200):
            os.makedirs(f"{tmpfs}/{top}/{sub}")
    target = os.fsencode(f"{tmpfs}/0/0/made")

    with Watcher([tmpfs], events=FAN_CREATE | FAN_OPEN, mode="unprivileged") as watcher:
        assert watcher.stats.marks == 20_101
        run_py(f"open({os.fsdecode(target)!r}, 'w').close()")
        events = collect(watcher, has("create", target))

    assert find(events, "create", target)
    assert not [e for e in events if e.is_overflow]
    assert watcher.stats.overflows == 0


def test_delete_self_of_a_file_that_existed_before_the_watch(tmpfs):
    from fanwatch.constants import FAN_DELETE_SELF

    path = f"{tmpfs}/old-file"
    open(path, "w").close()
    with Watcher([tmpfs], events=FAN_DELETE_SELF) as watcher:
        run_py(f"import os; os.unlink({path!r})")
        events = collect(watcher, lambda got: bool(got))

    assert [(e.kinds, e.path) for e in events] == [(["delete_self"], os.fsencode(path))]

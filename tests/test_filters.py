"""Event names, path globs and process criteria; then a watcher using them."""

from __future__ import annotations

import os

import pytest
from helpers_watch import Puppet, collect, drain, has, run_py

from fanwatch.constants import (
    FAN_CLOSE_NOWRITE,
    FAN_CLOSE_WRITE,
    FAN_CREATE,
    FAN_MOVED_FROM,
    FAN_MOVED_TO,
    FAN_OPEN,
    FAN_RENAME,
)
from fanwatch.errors import FanwatchError
from fanwatch.events import FileEvent
from fanwatch.filters import FILE_EVENTS, EventFilter, compile_globs, parse_event_names
from fanwatch.process import ProcessInfo
from fanwatch.watcher import Watcher


def test_event_names():
    assert parse_event_names(["open,create"]) == FAN_OPEN | FAN_CREATE
    assert parse_event_names([" OPEN ", "create"]) == FAN_OPEN | FAN_CREATE
    assert parse_event_names(["close"]) == FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE
    assert parse_event_names(["move"]) == FAN_MOVED_FROM | FAN_MOVED_TO | FAN_RENAME
    assert parse_event_names(["all"]) == FILE_EVENTS


@pytest.mark.parametrize("names", [["bogus"], ["overflow"], [""], [",,"]])
def test_bad_event_names(names):
    with pytest.raises(FanwatchError):
        parse_event_names(names)


@pytest.mark.parametrize(
    "pattern, path, matches",
    [
        ("*.log", b"/var/x/y.log", True),
        ("*.log", b"/var/x/y.log.1", False),
        ("/srv/**", b"/srv/a/b/c", True),
        ("/srv/*", b"/srv/a/b", False),
        ("**/build/**", b"/w/build/o/p.o", True),
        ("**/.git/**", b"/w/.git/HEAD", True),
        ("/srv/{a,b}/*", b"/srv/b/x", True),
        ("*.txt", b"/bad\xff.txt", True),
    ],
)
def test_globs(pattern, path, matches):
    assert bool(compile_globs([pattern]).match(path)) is matches


def test_no_globs():
    assert compile_globs([]) is None


def test_path_filter_excludes_win_and_renames_match_either_side():
    chosen = EventFilter(include=["/srv/**"], exclude=["*.tmp"])
    assert chosen.path_ok(b"/srv/a")
    assert not chosen.path_ok(b"/srv/a.tmp")
    assert not chosen.path_ok(b"/etc/a")
    assert chosen.path_ok(b"/etc/a", old_path=b"/srv/a")
    assert not chosen.path_ok(b"/srv/a", old_path=b"/srv/a.tmp")
    assert EventFilter().path_ok(None)


def test_process_filters():
    def ev(comm, uid):
        return FileEvent(FAN_OPEN, b"/f", ProcessInfo(5, comm, None, uid, 0, 1), 0.0)

    assert EventFilter(comms={"cat"}).process_ok(ev("cat", 0))
    assert not EventFilter(comms={"cat"}).process_ok(ev("vi", 0))
    assert not EventFilter(exclude_comms={"cat"}).process_ok(ev("cat", 0))
    assert EventFilter(uids={1000}).process_ok(ev("cat", 1000))
    assert not EventFilter(uids={1000}).process_ok(ev("cat", 0))
    assert not EventFilter(exclude_uids={0}).process_ok(ev("cat", 0))
    assert EventFilter(pids={5}).pid_ok(5) and not EventFilter(pids={5}).pid_ok(6)
    assert not EventFilter(exclude_pids={5}).pid_ok(5)
    assert EventFilter(comms={"cat"}).needs_process
    assert not EventFilter(pids={1}).needs_process


# -- real kernel ------------------------------------------------------------


def test_watcher_applies_globs(tmpfs):
    keep, drop = os.path.join(tmpfs, "a.log"), os.path.join(tmpfs, "a.tmp")
    chosen = EventFilter(include=["*.log", "*.tmp"], exclude=["*.tmp"])
    with Watcher([tmpfs], events=FAN_CREATE, filter=chosen) as watcher:
        run_py(f"open({drop!r}, 'wb').close(); open({keep!r}, 'wb').close()")
        events = collect(watcher, has("create", os.fsencode(keep)))
        events += drain(watcher, 0.1)
    assert [e.path for e in events] == [os.fsencode(keep)]
    assert watcher.stats.filtered == 1


def test_watcher_applies_pid_and_comm(tmpfs):
    with Puppet() as chosen, Puppet() as other:
        criteria = EventFilter(pids={chosen.pid}, comms={"python"})
        with Watcher([tmpfs], events=FAN_CREATE, filter=criteria) as watcher:
            other.write(f"{tmpfs}/other")
            chosen.write(f"{tmpfs}/chosen")
            events = collect(watcher, has("create", os.fsencode(f"{tmpfs}/chosen")))
    assert [(e.path, e.process.pid) for e in events] == [
        (os.fsencode(f"{tmpfs}/chosen"), chosen.pid)
    ]

"""Paths from fds and file handles, on a fresh tmpfs."""

from __future__ import annotations

import os

from fanwatch.constants import (
    FAN_CLASS_NOTIF,
    FAN_CREATE,
    FAN_EVENT_ON_CHILD,
    FAN_ONDIR,
    FAN_REPORT_DFID_NAME,
    FAN_REPORT_FID,
)
from fanwatch.group import Group
from fanwatch.parser import FileId
from fanwatch.paths import PathResolver, handle_key, join, path_of_fd


def test_path_of_fd(tmpfs):
    path = os.fsencode(tmpfs) + b"/odd\nname"
    fd = os.open(path, os.O_CREAT | os.O_RDONLY)
    try:
        assert path_of_fd(fd) == (path, False)
        os.unlink(path)
        assert path_of_fd(fd) == (path, True)
    finally:
        os.close(fd)


def test_a_file_named_deleted_is_not_deleted(tmpfs):
    path = os.fsencode(tmpfs) + b"/f (deleted)"
    fd = os.open(path, os.O_CREAT | os.O_RDONLY)
    try:
        assert path_of_fd(fd) == (path, False)
    finally:
        os.close(fd)


def test_join():
    assert join(b"/a", b"b") == b"/a/b"
    assert join(b"/", b"b") == b"/b"
    assert join(b"/a", b".") == b"/a"
    assert join(b"/a", b"") == b"/a"


def test_directory_table_matches_kernel_handles(tmpfs):
    directory = os.path.join(tmpfs, "d")
    os.mkdir(directory)
    resolver = PathResolver()
    key = resolver.add_dir(os.fsencode(directory))
    flags = FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_REPORT_DFID_NAME
    with Group(flags) as group:
        group.mark(directory, FAN_CREATE | FAN_ONDIR | FAN_EVENT_ON_CHILD)
        open(os.path.join(directory, "f"), "w").close()
        with group.read(5) as batch:
            [event] = batch
    assert event.dir_fid.key() == key
    assert resolver.resolve(event.dir_fid) == os.fsencode(directory)
    assert event.name == b"f"


def test_move_and_forget_tree(tmpfs):
    for sub in ("a", "a/b", "ab"):
        os.mkdir(os.path.join(tmpfs, sub))
    root = os.fsencode(tmpfs)
    resolver = PathResolver()
    keys = {sub: resolver.add_dir(root + b"/" + sub) for sub in (b"a", b"a/b", b"ab")}
    resolver.move_tree(root + b"/a", root + b"/z")
    assert resolver.dirs.get(keys[b"a"]) == root + b"/z"
    assert resolver.dirs.get(keys[b"a/b"]) == root + b"/z/b"
    assert resolver.dirs.get(keys[b"ab"]) == root + b"/ab"
    assert resolver.knows_dir(root + b"/z/b")
    resolver.forget_tree(root + b"/z")
    assert list(resolver.dirs.by_key.values()) == [root + b"/ab"]


def test_open_by_handle_resolves_files(tmpfs):
    path = os.path.join(tmpfs, "f")
    open(path, "w").close()
    fsid, handle_type, handle = handle_key(path)
    resolver = PathResolver()
    try:
        resolver.add_mount(tmpfs)
        fid = FileId(fsid, handle_type, handle)
        assert resolver.resolve(fid) == os.fsencode(path)
        assert resolver.resolve(FileId(fsid, handle_type, b"\0" * len(handle))) is None
    finally:
        resolver.close()


def test_unknown_filesystem_is_unresolved():
    resolver = PathResolver()
    assert resolver.resolve(FileId(12345, 1, b"x" * 8)) is None


def test_directory_table_follows_renames_over_a_deep_subtree():
    from fanwatch.paths import DirectoryTable

    table = DirectoryTable()
    paths = [b"/w" + b"/d" * depth for depth in range(1, 200)]
    for number, path in enumerate(paths):
        table.set((1, 1, bytes([number % 256, number // 256])), path)

    table.move_tree(b"/w/d", b"/w/e")

    assert table.get((1, 1, bytes([198 % 256, 198 // 256]))) == b"/w/e" + b"/d" * 198
    assert not table.knows(b"/w/d/d") and table.knows(b"/w/e/d")
    table.remove_tree(b"/w/e/d")
    assert len(table) == 1


def test_directory_table_forgets_a_directory_replaced_at_the_same_path():
    from fanwatch.paths import DirectoryTable

    table = DirectoryTable()
    table.set((1, 1, b"old"), b"/w/d")
    table.set((1, 1, b"new"), b"/w/d")

    assert table.get((1, 1, b"old")) is None
    assert table.get((1, 1, b"new")) == b"/w/d"

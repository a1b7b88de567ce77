"""Turning what the kernel reports (fds, file handles) into paths.

Three sources, tried in order of trust:

* an event fd (groups without FID reporting): ``readlink`` of
  ``/proc/self/fd/N``, which is the path at the time of the event;
* a table "directory handle -> path" filled with ``name_to_handle_at`` for
  every directory the caller marks. It needs no capability and works under
  every container runtime's seccomp profile, which block
  ``open_by_handle_at``;
* ``open_by_handle_at`` with ``O_PATH`` on a mount fd of the same filesystem
  (needs CAP_DAC_READ_SEARCH), cached. ``O_PATH`` opens generate no fanotify
  events, so resolving never feeds the monitor its own accesses.

A handle resolved through ``open_by_handle_at`` gives the path the object has
*now*, which may differ from its path when the event happened if a directory
was renamed in between: the cache is dropped on every directory rename the
watcher sees, and the remaining window is documented in docs/LIMITATIONS.md.
"""

from __future__ import annotations

import errno
import os
from collections import OrderedDict

from . import syscalls
from .constants import AT_FDCWD, AT_HANDLE_FID
from .parser import FileId

DELETED_SUFFIX = b" (deleted)"

HandleKey = tuple[int, int, bytes]

# Directories created and removed before their creation was read, kept for
# the events from inside them (see PathResolver.add_removed_dir).
REMOVED_DIRS = 1024


def fsid_of(path: bytes | str) -> int:
    """The fsid of the filesystem holding *path*, as events report it."""
    return os.statvfs(path).f_fsid


def handle_key(path: bytes | str, fsid: int | None = None) -> HandleKey:
    """The key an FID record carries for *path*: (fsid, type, handle).

    Raises OSError (EOPNOTSUPP where the filesystem cannot encode handles).
    """
    try:
        handle_type, handle, _mount_id = syscalls.name_to_handle_at(AT_FDCWD, path)
    except OSError as exc:
        if exc.errno != errno.EOPNOTSUPP:
            raise
        # Filesystems without export support can still name an object for
        # fanotify's purposes (since 6.5).
        handle_type, handle, _mount_id = syscalls.name_to_handle_at(
            AT_FDCWD, path, AT_HANDLE_FID
        )

    return (fsid_of(path) if fsid is None else fsid, handle_type, handle)


def path_of_fd(fd: int) -> tuple[bytes | None, bool]:
    """The path an open *fd* refers to, and whether the file was deleted.

    A deleted file keeps its last name; the kernel's " (deleted)" suffix is
    removed only when the file really has no links left, since a file can
    also be named that way. The path is None when it cannot be read, as
    for a file deeper than PATH_MAX (ENAMETOOLONG).
    """
    try:
        path = os.readlink(b"/proc/self/fd/%d" % fd)
    except OSError:
        return None, False
    if path.endswith(DELETED_SUFFIX):
        try:
            if os.fstat(fd).st_nlink == 0:
                return path[: -len(DELETED_SUFFIX)], True
        except OSError:
            pass

    return path, False


def join(directory: bytes, name: bytes) -> bytes:
    if name in (b"", b"."):
        return directory
    if directory.endswith(b"/"):
        return directory + name

    return directory + b"/" + name


class DirectoryTable:
    """Directory handle -> path, kept in step with renames and deletions.

    Every operation costs in proportion to the directories it touches, not
    to the size of the table: a child index finds the subtree of a renamed
    or deleted directory, and a reverse index answers "is this path known".
    """

    def __init__(self) -> None:
        self.by_key: dict[HandleKey, bytes] = {}
        self._by_path: dict[bytes, HandleKey] = {}
        self._children: dict[bytes, set[bytes]] = {}

    def __len__(self) -> int:
        return len(self.by_key)

    def get(self, key: HandleKey) -> bytes | None:
        return self.by_key.get(key)

    def knows(self, path: bytes) -> bool:
        return path in self._by_path

    def set(self, key: HandleKey, path: bytes) -> None:
        """Record that the directory *key* is at *path*, replacing whatever
        the table said of either before."""
        old = self.by_key.get(key)
        if old is not None:
            self._unlink(old)
        displaced = self._by_path.get(path)
        if displaced is not None and displaced != key:
            self.by_key.pop(displaced, None)
            self._unlink(path)
        self.by_key[key] = path
        self._by_path[path] = key
        self._children.setdefault(os.path.dirname(path), set()).add(path)

    def remove_key(self, key: HandleKey) -> None:
        path = self.by_key.pop(key, None)
        if path is not None:
            self._unlink(path)

    def remove_tree(self, path: bytes) -> None:
        """Forget *path* and every known directory below it."""
        for _, key in self._subtree(path):
            self.remove_key(key)

    def move_tree(self, old: bytes, new: bytes) -> None:
        """Rename *old* and every known directory below it to under *new*."""
        moved = self._subtree(old)
        for _, key in moved:
            self.remove_key(key)
        for path, key in moved:
            self.set(key, new + path[len(old) :])

    def _subtree(self, top: bytes) -> list[tuple[bytes, HandleKey]]:
        found = []
        pending = [top]
        while pending:
            path = pending.pop()
            key = self._by_path.get(path)
            if key is not None:
                found.append((path, key))
            pending.extend(self._children.get(path, ()))

        return found

    def _unlink(self, path: bytes) -> None:
        self._by_path.pop(path, None)
        parent = os.path.dirname(path)
        siblings = self._children.get(parent)
        if siblings is not None:
            siblings.discard(path)
            if not siblings:
                del self._children[parent]


class PathResolver:
    """Maps file handles to paths: a table of known directories, then a
    bounded cache of ``open_by_handle_at`` results where that is allowed.
    """

    def __init__(self, cache_size: int = 16384) -> None:
        self.dirs = DirectoryTable()
        self._mount_fds: dict[int, int] = {}
        self._cache: OrderedDict[HandleKey, bytes] = OrderedDict()
        self.cache_size = cache_size
        self.can_open_handles = True
        # Directories already removed when their creation was read.
        self._removed: OrderedDict[HandleKey, None] = OrderedDict()

    # -- the directory table -----------------------------------------------

    def add_dir(self, path: bytes, fsid: int | None = None) -> HandleKey:
        key = handle_key(path, fsid)
        self.dirs.set(key, path)

        return key

    def add_removed_dir(self, key: HandleKey, path: bytes) -> None:
        """Record a directory that was created and removed before the event
        of its creation was read, for the events from inside it queued
        after that, which follow it closely in the queue. No later event
        says when to forget it, so only the newest ``REMOVED_DIRS`` such
        directories are kept."""
        self.dirs.set(key, path)
        self._removed[key] = None
        if len(self._removed) > REMOVED_DIRS:
            oldest, _ = self._removed.popitem(last=False)
            self.dirs.remove_key(oldest)

    def knows_dir(self, path: bytes) -> bool:
        return self.dirs.knows(path)

    def forget_tree(self, path: bytes) -> None:
        """Forget *path* and every known directory below it."""
        self.dirs.remove_tree(path)
        self._cache.clear()

    def move_tree(self, old: bytes, new: bytes) -> None:
        """Rename *old* and every known directory below it to under *new*."""
        self.dirs.move_tree(old, new)
        self._cache.clear()

    # -- handle resolution -------------------------------------------------

    def add_mount(self, path: bytes | str) -> None:
        """Remember a directory on a filesystem so that handles of that
        filesystem can be opened with ``open_by_handle_at``."""
        fsid = fsid_of(path)
        if fsid not in self._mount_fds:
            # Not O_PATH: open_by_handle_at() refuses an O_PATH mount fd (EBADF).
            self._mount_fds[fsid] = os.open(
                path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
            )

    def opens_handles_of(self, path: bytes | str) -> bool:
        """True if ``open_by_handle_at`` works here for the filesystem of
        *path* (it needs CAP_DAC_READ_SEARCH and is blocked by container
        runtimes' seccomp profiles)."""
        try:
            key = handle_key(path)
        except OSError:
            return False
        fid = FileId(*key)

        return self._open_handle(fid) is not None

    def resolve(self, fid: FileId) -> bytes | None:
        """The path of the object *fid* names, or None if it cannot be found."""
        key = (fid.fsid, fid.handle_type, fid.handle)
        known = self.dirs.get(key)
        if known is not None:
            return known

        cached = self._cache.get(key)
        if cached is not None:
            return cached

        path = self._open_handle(fid)
        if path is not None:
            self._cache[key] = path
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

        return path

    def _open_handle(self, fid: FileId) -> bytes | None:
        mount_fd = self._mount_fds.get(fid.fsid)
        if mount_fd is None or not self.can_open_handles:
            return None
        try:
            fd = syscalls.open_by_handle_at(mount_fd, fid.handle_type, fid.handle)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOSYS, errno.EACCES):
                # No CAP_DAC_READ_SEARCH, or a seccomp filter: stop trying.
                self.can_open_handles = False
            return None
        try:
            return path_of_fd(fd)[0]
        finally:
            os.close(fd)

    def remember_file(self, fid: FileId, path: bytes) -> None:
        """Record where the object *fid* was last seen (bounded, oldest out)."""
        key = (fid.fsid, fid.handle_type, fid.handle)
        self._cache[key] = path
        self._cache.move_to_end(key)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def forget_file(self, fid: FileId) -> None:
        self._cache.pop((fid.fsid, fid.handle_type, fid.handle), None)

    def forget_cached(self) -> None:
        """Drop the ``open_by_handle_at`` cache (after a directory moved)."""
        self._cache.clear()

    def close(self) -> None:
        for fd in self._mount_fds.values():
            os.close(fd)
        self._mount_fds.clear()

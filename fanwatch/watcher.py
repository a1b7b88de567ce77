"""The high-level monitor: watch trees, mounts or filesystems, yield events.

The watcher picks the richest mode this process may use, per filesystem:

* privileged (CAP_SYS_ADMIN): a group reporting file handles with a
  *filesystem* mark, filtered to the requested subtrees in user space. This
  is race-free for recursive watching: new directories are covered the
  moment they exist. Process ids and pidfds are reported.
* privileged, on a filesystem that cannot report file handles for
  filesystem marks (overlayfs, FUSE): an fd-reporting group with a mount
  mark. Paths are exact, but creations, deletions and renames are not
  reported there.
* unprivileged (Linux 5.13+, no capability): a group reporting file handles
  with one inode mark per directory. New directories are marked when their
  creation is reported; whatever happens inside one before its mark is in
  place is not seen. Process ids are 0 for every process but our own.

What a mode cannot see is collected in :attr:`Watcher.notes` for the caller
to show once.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import os
import select
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field

from .constants import (
    DIRENT_EVENTS,
    FAN_ACCESS,
    FAN_ATTRIB,
    FAN_CLASS_NOTIF,
    FAN_CLOSE_NOWRITE,
    FAN_CLOSE_WRITE,
    FAN_CREATE,
    FAN_DELETE,
    FAN_DELETE_SELF,
    FAN_EVENT_ON_CHILD,
    FAN_MARK_DONT_FOLLOW,
    FAN_MARK_FILESYSTEM,
    FAN_MARK_MOUNT,
    FAN_MARK_ONLYDIR,
    FAN_MODIFY,
    FAN_MOVE_SELF,
    FAN_MOVED_FROM,
    FAN_MOVED_TO,
    FAN_ONDIR,
    FAN_OPEN,
    FAN_OPEN_EXEC,
    FAN_Q_OVERFLOW,
    FAN_RENAME,
    FAN_REPORT_DFID_NAME,
    FAN_REPORT_FD_ERROR,
    FAN_REPORT_FID,
    FAN_REPORT_PIDFD,
    FAN_REPORT_TARGET_FID,
    FAN_UNLIMITED_MARKS,
    FAN_UNLIMITED_QUEUE,
)
from .errors import NotSupportedError
from .events import FileEvent
from .filters import FILE_EVENTS, EventFilter
from .group import Group
from .parser import FileId, RawEvent
from .paths import PathResolver, handle_key, join, path_of_fd
from .probe import mark_support, probe as probe_features
from .process import UNKNOWN, ProcessCache, ProcessInfo

# Events an fd-reporting group can be marked for; the rest need file handles.
FD_MODE_EVENTS = (
    FAN_ACCESS
    | FAN_MODIFY
    | FAN_CLOSE_WRITE
    | FAN_CLOSE_NOWRITE
    | FAN_OPEN
    | FAN_OPEN_EXEC
)
# Events a mount mark cannot carry even with file handles.
INODE_ONLY_EVENTS = FAN_ATTRIB | DIRENT_EVENTS | FAN_DELETE_SELF | FAN_MOVE_SELF
DEFAULT_EVENTS = FILE_EVENTS
TRACKING_EVENTS = FAN_CREATE | FAN_DELETE | FAN_RENAME | FAN_MOVED_FROM | FAN_MOVED_TO


# A directory that vanished, cannot be read, or is deeper than PATH_MAX is
# skipped (and counted), not fatal.
UNMARKABLE_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ELOOP, errno.ENAMETOOLONG}
)


class Scope(enum.Enum):
    """What a watched path stands for."""

    TREE = "tree"  # the directory and everything below it
    MOUNT = "mount"  # every file accessed through the mount holding the path
    FILESYSTEM = "filesystem"  # the whole filesystem holding the path


@dataclass
class _Source:
    """One group and how to read it."""

    group: Group
    reports_fids: bool
    # Only events under these paths are kept; None keeps everything.
    roots: list[bytes] | None = None
    # Directories are marked as they appear (unprivileged recursive trees).
    tracks_dirs: bool = False


@dataclass
class WatchStats:
    events: int = 0
    overflows: int = 0
    own: int = 0
    filtered: int = 0
    unresolved: int = 0
    read_errors: int = 0
    malformed: int = 0
    marks: int = 0
    unmarkable: list[bytes] = field(default_factory=list)


class Watcher:
    """Watch paths and yield :class:`~fanwatch.events.FileEvent` objects.

    >>> with Watcher(["/srv/data"]) as watcher:
    ...     for event in watcher:
    ...         print(event.process.comm, event.kinds, event.path_text)

    *events* is a mask of ``FAN_*`` event bits (default: every file event).
    *mode* is ``"auto"``, ``"privileged"`` or ``"unprivileged"``. Raises
    :class:`~fanwatch.errors.NotSupportedError` when nothing can be watched
    here, FileNotFoundError for a missing path, and OSError for other
    failures of ``fanotify_init`` or ``fanotify_mark``.
    """

    def __init__(
        self,
        paths: Iterable[str | bytes | os.PathLike] = (".",),
        *,
        scope: Scope = Scope.TREE,
        events: int = DEFAULT_EVENTS,
        recursive: bool = True,
        filter: EventFilter | None = None,  # noqa: A002 - reads well for callers
        process_details: bool = True,
        mode: str = "auto",
        unlimited_queue: bool = True,
    ) -> None:
        # Real paths: events name files by where they really are, so a
        # watched path given through a symlink must be compared that way.
        self.paths = list(
            dict.fromkeys(os.path.realpath(os.fsencode(p)) for p in paths)
        )
        self.scope = scope
        self.events = events
        self.recursive = recursive
        self.filter = filter or EventFilter()
        self.process_details = process_details
        self.unlimited_queue = unlimited_queue
        self.features = probe_features()
        self.privileged = self._choose_privilege(mode)
        self.forced_unprivileged = mode == "unprivileged" and self.features.privileged
        self.notes: list[str] = []
        self.stats = WatchStats()
        # Watched directories that were themselves deleted.
        self.roots_gone: set[bytes] = set()
        self.mode_description = ""
        self._sources: list[_Source] = []
        self._resolver = PathResolver()
        self._processes = ProcessCache()
        self._own_pid = os.getpid()
        self._poll = select.poll()
        self._by_fd: dict[int, _Source] = {}
        self._rename_supported = True
        # Events read while marking a large tree (see _walk_dirs), waiting
        # to be returned by the first read().
        self._early: list[FileEvent] = []
        self._starting = True
        # Events the caller asked for; the marks carry more (see _fid_mask).
        self._visible = events | FAN_Q_OVERFLOW
        if events & (FAN_MOVED_FROM | FAN_MOVED_TO):
            self._visible |= FAN_RENAME
        self._remembers_files = bool(events & (FAN_DELETE_SELF | FAN_MOVE_SELF))
        self._deleted_paths: dict[tuple, bytes] = {}
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        self._starting = False

    # -- setup ---------------------------------------------------------------

    def _choose_privilege(self, mode: str) -> bool:
        if mode not in ("auto", "privileged", "unprivileged"):
            raise ValueError(f"unknown mode {mode!r}")
        if not self.features.available:
            raise NotSupportedError(
                f"fanotify is not available here: {self.features.why_unavailable()}",
                hint="run 'fanwatch doctor' to see why and how to fix it",
            )
        if mode == "privileged" and not self.features.privileged:
            raise NotSupportedError(
                "privileged mode needs CAP_SYS_ADMIN in the initial user namespace",
                hint="run 'fanwatch doctor --for watch-mount'",
            )

        return self.features.privileged and mode != "unprivileged"

    def _start(self) -> None:
        for path in self.paths:
            os.stat(path)  # a missing path fails here with its name
        if self.scope is Scope.TREE:
            self._start_trees()
        else:
            self._start_whole(self.scope)
        for source in self._sources:
            self._poll.register(source.group.fileno(), select.POLLIN)
            self._by_fd[source.group.fileno()] = source
        if self.forced_unprivileged:
            self._note(
                "unprivileged mode: the kernel queue is limited (overflows "
                "lose events) and new directories are watched once seen"
            )
        elif not self.privileged:
            self._note(
                "no CAP_SYS_ADMIN: process ids are not reported (pid 0) and "
                "the kernel queue is limited (overflows lose events)"
            )

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _group_flags(self, reports_fids: bool) -> int:
        flags = FAN_CLASS_NOTIF
        if reports_fids:
            flags |= FAN_REPORT_DFID_NAME | FAN_REPORT_FID
            if self.features.has("target_fid"):
                # Directory events then carry the child's handle, which keeps
                # the directory table exact without extra system calls.
                flags |= FAN_REPORT_TARGET_FID
        if self.privileged:
            flags |= FAN_UNLIMITED_MARKS
            if self.unlimited_queue:
                flags |= FAN_UNLIMITED_QUEUE
            if self.features.has("pidfd"):
                flags |= FAN_REPORT_PIDFD
            if not reports_fids and self.features.has("fd_error"):
                # A file that cannot be opened for the event (a /proc file
                # of a process that just exited) then fails only its own
                # event instead of the whole read().
                flags |= FAN_REPORT_FD_ERROR

        return flags

    def _new_source(self, reports_fids: bool, **kwargs) -> _Source:
        for source in self._sources:
            if source.reports_fids == reports_fids and source.tracks_dirs == kwargs.get(
                "tracks_dirs", False
            ):
                return source
        source = _Source(Group(self._group_flags(reports_fids)), reports_fids, **kwargs)
        self._sources.append(source)

        return source

    def _fid_mask(self, whole: bool) -> int:
        # Directory creations, deletions and renames are always asked for:
        # they keep the directory table right even when not reported.
        mask = self.events | TRACKING_EVENTS | FAN_ONDIR
        if not whole:
            mask |= FAN_EVENT_ON_CHILD
        if (
            mask & (FAN_MOVED_FROM | FAN_MOVED_TO | FAN_RENAME)
            and self._rename_supported
        ):
            # One rename event with both paths beats a from/to pair.
            mask = (mask & ~(FAN_MOVED_FROM | FAN_MOVED_TO)) | FAN_RENAME
        elif not self._rename_supported:
            mask &= ~FAN_RENAME

        return mask

    def _start_trees(self) -> None:
        for path in self.paths:
            support = mark_support(path)
            self._rename_supported = support.rename is None
            if not self.recursive and support.fid_inode is None:
                self._mark_tree_inodes(path)
            elif self.privileged and support.fid_filesystem is None:
                self._mark_filesystem_subtree(path)
            elif self.privileged and support.fd_mount is None:
                self._mark_mount_fd_mode(path, roots=True)
            elif support.fid_inode is None:
                self._mark_tree_inodes(path)
            else:
                raise OSError(
                    support.fid_inode, os.strerror(support.fid_inode), os.fsdecode(path)
                )

    def _mark_filesystem_subtree(self, path: bytes) -> None:
        source = self._new_source(True, roots=[])
        source.group.mark(path, self._fid_mask(True), kind=FAN_MARK_FILESYSTEM)
        source.roots.append(path)
        self._resolver.add_mount(path)
        self.stats.marks += 1
        # The table of directories below path is kept in event order, so
        # each event's path is the one it had when the event happened.
        if os.path.isdir(path):
            self._walk_dirs(source, path, mark=False)
        else:
            self._resolver.add_dir(os.path.dirname(path))
        self.mode_description = "filesystem mark filtered to the watched trees"

    def _mark_mount_fd_mode(self, path: bytes, roots: bool) -> None:
        """An fd-reporting group with a mount mark: exact paths, but only
        the events that need no file handles."""
        source = self._new_source(False, roots=[] if roots else None)
        mask = self.events & FD_MODE_EVENTS
        if not mask:
            raise NotSupportedError(
                f"{os.fsdecode(path)}: none of the requested events can be reported "
                "on this filesystem without file handles"
            )
        source.group.mark(path, mask, kind=FAN_MARK_MOUNT)
        if roots:
            source.roots.append(path)
        self.stats.marks += 1
        if self.events & ~FD_MODE_EVENTS:
            why = (
                "a mount mark cannot report them; use --filesystem"
                if self.scope is Scope.MOUNT
                else "this filesystem cannot report file handles for mount or "
                "filesystem marks"
            )
            where = "this mount" if self.scope is Scope.MOUNT else os.fsdecode(path)
            self._note(
                f"{where}: creations, deletions, renames and attribute "
                f"changes are not reported ({why})"
            )
        self.mode_description = "mount mark with file descriptors"

    def _mark_tree_inodes(self, path: bytes) -> None:
        source = self._new_source(True, roots=[], tracks_dirs=self.recursive)
        source.roots.append(path)
        if not os.path.isdir(path):
            self._resolver.add_dir(os.path.dirname(path))
            source.group.mark(path, self._fid_mask(True), flags=FAN_MARK_DONT_FOLLOW)
            self.stats.marks += 1
        elif self.recursive:
            self._walk_dirs(source, path, mark=True)
        else:
            self._mark_dir(source, path, mark=True)
        self.mode_description = "one inode mark per directory"

    def _mark_dir(self, source: _Source, path: bytes, mark: bool) -> bool:
        """Record one directory's handle, and mark it if *mark*; False if it
        vanished or cannot be read. Raises OSError for the mark limit and
        the like."""
        try:
            if mark:
                source.group.mark(
                    path,
                    self._fid_mask(False),
                    flags=FAN_MARK_ONLYDIR | FAN_MARK_DONT_FOLLOW,
                )
                self.stats.marks += 1
            self._resolver.add_dir(path)
        except OSError as exc:
            if exc.errno in UNMARKABLE_ERRNOS:
                self.stats.unmarkable.append(path)
                return False
            raise

        return True

    def _walk_dirs(self, source: _Source, top: bytes, mark: bool) -> None:
        """Record (and mark) *top* and every directory under it, symlinks
        not followed."""
        pending = [top]
        while pending:
            path = pending.pop()
            if not self._mark_dir(source, path, mark):
                continue
            if self._starting and mark and self.stats.marks % 512 == 0:
                self._read_early(source)
            try:
                with os.scandir(path) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
            except OSError:
                self.stats.unmarkable.append(path)

    def _start_whole(self, scope: Scope) -> None:
        for path in self.paths:
            support = mark_support(path)
            self._rename_supported = support.rename is None
            if scope is Scope.MOUNT and self.privileged:
                self._mark_mount_fd_mode(path, roots=False)
                self.mode_description = "mount mark"
            elif scope is Scope.MOUNT and support.fid_mount is None:
                # A user namespace that mounted this filesystem itself
                # (Linux 6.16+): file handles only, and no directory events.
                self._mark_whole_fid(
                    path, FAN_MARK_MOUNT, self.events & ~INODE_ONLY_EVENTS
                )
                self.mode_description = "mount mark"
            elif scope is Scope.FILESYSTEM and support.fid_filesystem is None:
                self._mark_whole_fid(path, FAN_MARK_FILESYSTEM, self._fid_mask(True))
                self.mode_description = "filesystem mark"
            elif self.privileged:
                source = self._new_source(False)
                source.group.mark(
                    path, self.events & FD_MODE_EVENTS, kind=FAN_MARK_FILESYSTEM
                )
                self.stats.marks += 1
                self.notes.append(
                    f"{os.fsdecode(path)}: creations, deletions and renames are not "
                    "reported (no file handles on this filesystem)"
                )
                self.mode_description = "filesystem mark with file descriptors"
            else:
                raise NotSupportedError(
                    f"watching a whole {scope.value} needs CAP_SYS_ADMIN in the "
                    "initial user namespace",
                    hint="watch a directory tree instead (works unprivileged), or "
                    "run 'fanwatch doctor --for watch-mount'",
                )

    def _mark_whole_fid(self, path: bytes, kind: int, mask: int) -> None:
        """A mount or filesystem mark on a group reporting file handles."""
        source = self._new_source(True)
        source.group.mark(path, mask, kind=kind)
        self.stats.marks += 1
        self._resolver.add_mount(path)
        if not self._resolver.opens_handles_of(path) and os.path.isdir(path):
            # Without CAP_DAC_READ_SEARCH (every container runtime's default)
            # handles resolve only through the directory table.
            self._walk_dirs(source, path, mark=False)

    # -- reading -------------------------------------------------------------

    def _read_early(self, source: _Source) -> None:
        """Empty the queue while a large tree is being marked: listing each
        directory is itself an event (ours, dropped), and a limited queue
        would otherwise overflow before the first read()."""
        self._early.extend(self._read_source(source))

    def read(self, timeout: float | None = None) -> list[FileEvent]:
        """The events ready now, waiting up to *timeout* seconds (None: until
        some arrive). May return an empty list if every event was filtered."""
        events, self._early = self._early, []
        if events:
            timeout = 0
        ms = None if timeout is None else max(0, int(timeout * 1000))
        for fd, _flags in self._poll.poll(ms):
            events.extend(self._read_source(self._by_fd[fd]))

        return events

    def _read_source(self, source: _Source) -> list[FileEvent]:
        """Read and convert what one group has ready, closing its fds."""
        try:
            batch = source.group.read(0)
        except OSError:
            # The kernel could not hand over one event (for instance an fd
            # for a file that vanished); that event is lost, the rest keep
            # coming.
            self.stats.read_errors += 1
            return []
        events = []
        with batch:
            now = time.time()
            if self._remembers_files:
                self._note_deletions(batch)
            for raw in batch:
                event = self._convert(source, raw, now)
                if event is not None:
                    events.append(event)

        return events

    def __iter__(self) -> Iterator[FileEvent]:
        while True:
            yield from self.read()

    async def __aiter__(self) -> AsyncIterator[FileEvent]:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        fds = [source.group.fileno() for source in self._sources]
        for fd in fds:
            loop.add_reader(fd, ready.set)
        try:
            while True:
                for event in self.read(0):
                    yield event
                await ready.wait()
                ready.clear()
        finally:
            for fd in fds:
                loop.remove_reader(fd)

    def _convert(self, source: _Source, raw: RawEvent, now: float) -> FileEvent | None:
        if raw.malformed:
            self.stats.malformed += 1
            return None
        if raw.is_overflow:
            self.stats.overflows += 1
            return FileEvent(raw.mask, None, UNKNOWN, now)
        own = raw.pid == self._own_pid
        if own and not (raw.mask & FAN_ONDIR and raw.mask & TRACKING_EVENTS):
            self.stats.own += 1
            return None
        if not own and not self.filter.pid_ok(raw.pid):
            self.stats.filtered += 1
            return None

        event = self._locate(source, raw, now)
        if own:
            # Our own directory changes still had to move the table along.
            self.stats.own += 1
            return None
        if event is None or not event.mask & self._visible:
            self.stats.filtered += 1
            return None
        if not self.filter.path_ok(event.path, event.old_path):
            self.stats.filtered += 1
            return None

        if self.process_details:
            event.process = self._process(raw)
        if self.filter.needs_process and not self.filter.process_ok(event):
            self.stats.filtered += 1
            return None

        self.stats.events += 1
        return event

    def _process(self, raw: RawEvent) -> ProcessInfo:
        if raw.mask & FAN_OPEN_EXEC:
            # execve() changes comm and exe under the same identity.
            self._processes.forget(raw.pid)

        return self._processes.lookup(raw.pid, raw.pidfd)

    def _locate(self, source: _Source, raw: RawEvent, now: float) -> FileEvent | None:
        """Give *raw* its path(s); None if it falls outside the watched roots."""
        # With process details, _convert replaces this once the event has
        # passed the path filters: building a ProcessInfo here would be
        # wasted (about a tenth of the time per event).
        if raw.pid and not self.process_details:
            process = ProcessInfo(pid=raw.pid)
        else:
            process = UNKNOWN
        if not source.reports_fids:
            path, deleted = path_of_fd(raw.fd) if raw.fd >= 0 else (None, False)
            event = FileEvent(raw.mask, path, process, now, deleted=deleted)
        elif raw.new_dir_fid is not None or raw.old_dir_fid is not None:
            event = FileEvent(
                raw.mask,
                self._entry_path(raw.new_dir_fid, raw.new_name),
                process,
                now,
                old_path=self._entry_path(raw.old_dir_fid, raw.old_name),
            )
        elif raw.dir_fid is not None:
            event = FileEvent(
                raw.mask, self._entry_path(raw.dir_fid, raw.name), process, now
            )
        elif raw.fid is not None:
            path = None
            if raw.mask & FAN_DELETE_SELF:
                # Known from the batch without a failing open_by_handle_at.
                path = self._deleted_paths.get(raw.fid.key())
            if path is None:
                path = self._resolver.resolve(raw.fid)
            event = FileEvent(raw.mask, path, process, now)
        else:
            event = FileEvent(raw.mask, None, process, now)
        if event.path is None and event.old_path is None:
            self.stats.unresolved += 1

        if event.is_dir and raw.mask & (
            DIRENT_EVENTS | FAN_DELETE_SELF | FAN_MOVE_SELF
        ):
            self._directory_changed(source, event, raw.fid)
        elif self._remembers_files and raw.fid is not None:
            self._remember_file(raw, event)
        if source.roots is not None and not self._under_roots(
            source.roots, event.path, event.old_path
        ):
            return None
        event.mask &= self._visible | FAN_ONDIR

        return event

    def _note_deletions(self, batch: list[RawEvent]) -> None:
        """The kernel queues a file's delete_self before the delete event of
        its last name, which carries the path: look ahead in the batch."""
        self._deleted_paths = {}
        for raw in batch:
            if raw.mask & FAN_DELETE and raw.fid is not None and raw.dir_fid:
                path = self._entry_path(raw.dir_fid, raw.name)
                if path is not None:
                    self._deleted_paths[raw.fid.key()] = path

    def _remember_file(self, raw: RawEvent, event: FileEvent) -> None:
        """Events on a file itself (delete_self, move_self) carry only its
        handle: remember the path each other event of that file gave."""
        if raw.mask & FAN_DELETE_SELF:
            self._resolver.forget_file(raw.fid)
        elif event.path is not None and (raw.dir_fid or raw.new_dir_fid):
            self._resolver.remember_file(raw.fid, event.path)

    def _entry_path(self, dir_fid: FileId | None, name: bytes | None) -> bytes | None:
        if dir_fid is None:
            return None
        directory = self._resolver.resolve(dir_fid)
        if directory is None:
            return None

        return directory if name is None else join(directory, name)

    @staticmethod
    def _under_roots(roots: list[bytes], *paths: bytes | None) -> bool:
        # Runs for every event: compare in place rather than building
        # "root/" prefixes each time.
        for path in paths:
            if path is None:
                continue
            for root in roots:
                if path.startswith(root) and (
                    len(path) == len(root)
                    or root.endswith(b"/")
                    or path[len(root)] == 0x2F  # "/"
                ):
                    return True

        return False

    def _directory_changed(
        self, source: _Source, event: FileEvent, target: FileId | None
    ) -> None:
        """Keep the directory table in step with the event stream.

        *target* is the handle of the directory itself, reported with
        FAN_REPORT_TARGET_FID; without it the handle is read from the path
        now, which is wrong if the directory moved again since.
        """
        mask = event.mask
        marks_new = source.tracks_dirs
        removed = mask & FAN_DELETE_SELF or (
            mask & FAN_DELETE and not mask & FAN_CREATE
        )
        if removed and event.path in self.paths:
            self.roots_gone.add(event.path)
        if mask & FAN_CREATE and mask & FAN_DELETE and target is not None:
            # mkdir and rmdir merged by the kernel into one event, queued
            # where the mkdir was: the events queued after it, from inside
            # the directory, still need its path.
            if event.path is not None:
                self._resolver.add_removed_dir(target.key(), event.path)
        elif (
            mask & FAN_RENAME and event.old_path is not None and event.path is not None
        ):
            known = self._resolver.knows_dir(event.old_path)
            self._resolver.move_tree(event.old_path, event.path)
            if not known:
                self._add_new_dir(source, event.path, target, marks_new)
        elif mask & (FAN_DELETE | FAN_MOVED_FROM) and event.path is not None:
            self._resolver.forget_tree(event.path)
        elif mask & (FAN_CREATE | FAN_MOVED_TO) and event.path is not None:
            self._add_new_dir(source, event.path, target, marks_new)
        else:
            self._resolver.forget_cached()

    def _add_new_dir(
        self, source: _Source, path: bytes, target: FileId | None, mark: bool
    ) -> None:
        if source.roots is not None and not self._under_roots(source.roots, path):
            return
        if mark and target is not None and not self._still_at(path, target):
            # The directory moved away (or was replaced) before this event
            # was read: the later event that moved it marks it where it is.
            return
        if target is not None:
            self._resolver.dirs.set(target.key(), path)
        if mark or target is None:
            # Whatever was created inside before the mark exists is not seen.
            self._walk_dirs(source, path, mark)

    @staticmethod
    def _still_at(path: bytes, target: FileId) -> bool:
        """True if *path* still names the directory *target*."""
        try:
            return handle_key(path, target.fsid) == target.key()
        except OSError:
            return False

    # -- teardown ------------------------------------------------------------

    def close(self) -> None:
        """Close every group; safe to call more than once."""
        for source in self._sources:
            source.group.close()
        self._sources.clear()
        self._by_fd.clear()
        self._resolver.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

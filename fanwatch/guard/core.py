"""The guard: answer fanotify permission events by a policy, and never hang.

The decision loop runs in the main thread. For each permission event it
finds the path from the event fd (``readlink`` of ``/proc/self/fd/N``; the
file is never opened again), asks the compiled policy, writes the answer,
and only then does anything that may wait: logging goes to a queue drained
by a thread, and process details are read from /proc by worker threads,
only when a rule needs them, under a deadline after which the default
verdict is sent. A watchdog thread closes the group (which makes the kernel
allow every pending access) and exits if the loop stops making progress.
"""

from __future__ import annotations

import errno
import os
import queue
import select
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass, field

from .. import syscalls
from ..cli import exitcodes
from ..constants import (
    AT_FDCWD,
    FAN_ACCESS_PERM,
    FAN_ALLOW,
    FAN_CLASS_CONTENT,
    FAN_CLASS_PRE_CONTENT,
    FAN_CLOSE_WRITE,
    FAN_DENY,
    FAN_DENY_ERRNO,
    FAN_MARK_ADD,
    FAN_MARK_EVICTABLE,
    FAN_MARK_FLUSH,
    FAN_MARK_IGNORE,
    FAN_MARK_IGNORED_MASK,
    FAN_MARK_INODE,
    FAN_MARK_MOUNT,
    FAN_MARK_REMOVE,
    FAN_OPEN_EXEC_PERM,
    FAN_OPEN_PERM,
    FAN_PRE_ACCESS,
    FAN_Q_OVERFLOW,
    FAN_REPORT_PIDFD,
    FAN_UNLIMITED_MARKS,
    FAN_UNLIMITED_QUEUE,
    PERMISSION_EVENTS,
)
from ..errors import FanwatchError, NotSupportedError, PolicyError
from ..group import DEFAULT_EVENT_F_FLAGS, RESPONSE, Group
from ..output import escape
from ..parser import parse_events
from ..policy import (
    CompiledPolicy,
    Policy,
    Subject,
    Verdict,
    guard_own_paths,
    load_policy,
)
from ..policy.compiled import needed_keys
from ..process import ProcessCache, pidfd_identity
from .decisionlog import DecisionLog, put_text
from .notify import Notifier

DEFAULT_DEADLINE = 0.25
DEFAULT_WATCHDOG = 5.0
DEFAULT_WORKERS = 4
# Workers only read /proc; more than this buys nothing and each thread
# costs a stack.
MAX_WORKERS = 64
# Inodes given an ignore mark before the kernel cache is flushed: on tmpfs
# inodes are never evicted, so evictable marks would pile up.
KERNEL_CACHE_LIMIT = 1 << 17
USER_CACHE_LIMIT = 1 << 16
# How long a decision that depends on the process is reused: a process may
# change its uid without execve, and the cache cannot see it.
USER_CACHE_TTL = 1.0
IDLE_POLL = 0.2

# Test-only: seconds a worker sleeps before deciding (to reach the
# deadline), and seconds the loop stalls on its first event (to fire the
# watchdog). Documented in docs/GUARD.md as not for production.
TEST_DELAY_ENV = "FANWATCH_GUARD_TEST_DELAY"
TEST_STALL_ENV = "FANWATCH_GUARD_TEST_STALL"

ACCESS_OF_BIT = {
    FAN_OPEN_PERM: "open",
    FAN_OPEN_EXEC_PERM: "exec",
    FAN_ACCESS_PERM: "access",
    FAN_PRE_ACCESS: "access",
}
BIT_OF_ACCESS = {
    "open": FAN_OPEN_PERM,
    "exec": FAN_OPEN_EXEC_PERM,
    "access": FAN_ACCESS_PERM,
}
EVENT_NAME = {
    FAN_OPEN_PERM: "FAN_OPEN_PERM",
    FAN_OPEN_EXEC_PERM: "FAN_OPEN_EXEC_PERM",
    FAN_ACCESS_PERM: "FAN_ACCESS_PERM",
    FAN_PRE_ACCESS: "FAN_PRE_ACCESS",
    FAN_CLOSE_WRITE: "FAN_CLOSE_WRITE",
}

SELF = Verdict("allow", "(guard-self)", None, True)
OUTSIDE = Verdict("allow", "(outside-paths)", None, True)
ALLOW_ALL = Verdict("allow", None, None, True)


@dataclass
class GuardConfig:
    """What the command line asked for; see ``fanwatch guard --help``."""

    paths: list[str] = field(default_factory=list)
    mount: str | None = None
    policy_path: str | None = None
    permissive: bool = False
    deadline: float = DEFAULT_DEADLINE
    watchdog: float = DEFAULT_WATCHDOG
    log_path: str | None = None
    ready_file: str | None = None
    kernel_cache: bool = True
    workers: int = DEFAULT_WORKERS


@dataclass
class Stats:
    decisions: int = 0
    denied: int = 0
    own: int = 0
    deadlines: int = 0
    overflows: int = 0
    respond_errors: int = 0
    read_errors: int = 0
    unreadable_paths: int = 0
    kernel_cached: int = 0
    user_cache_hits: int = 0


class Pending:
    """A permission event handed to a worker, waiting for its verdict."""

    __slots__ = ("fd", "serial", "access", "path", "pid", "started", "deadline")

    def __init__(self, fd, serial, access, path, pid, started, deadline) -> None:
        self.fd = fd
        self.serial = serial
        self.access = access
        self.path = path
        self.pid = pid
        self.started = started
        self.deadline = deadline


class Guard:
    """A fanotify permission listener deciding by a policy (None: allow all).

    :meth:`setup` creates the group and marks (raises OSError,
    NotSupportedError); :meth:`run` answers events until a signal and
    returns an exit code. Output goes to *stdout_fd* / *stderr_fd*.
    """

    def __init__(
        self,
        config: GuardConfig,
        policy: Policy | None,
        *,
        stdout_fd: int = 1,
        stderr_fd: int = 2,
    ) -> None:
        self.config = config
        self.policy = CompiledPolicy(policy) if policy is not None else None
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self.pid = os.getpid()
        self.own_files, self.own_dirs = guard_own_paths()
        self.scope = _scope(config.paths) if not config.mount else None
        self.stats = Stats()
        self.log = DecisionLog()
        self.notifier = Notifier()
        self.group: Group | None = None
        self.group_fd = -1
        self.log_fd: int | None = None
        self.deny_errno = False
        self.pre_access = False
        self.mask = 0
        self.ignore_flags = FAN_MARK_IGNORE | FAN_MARK_EVICTABLE
        self.pending: dict[int, Pending] = {}
        self.user_cache: dict[tuple, tuple[float, Verdict, Subject]] = {}
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.results: list = []
        self.results_lock = threading.Lock()
        self.serial = 0
        self.progress = time.monotonic()
        self.stop_signal: int | None = None
        self.reload_requested = False
        self.reload_result: list = []
        self.stopping = threading.Event()
        self.test_delay = float(os.environ.get(TEST_DELAY_ENV, "0") or 0)
        self.test_stall = float(os.environ.get(TEST_STALL_ENV, "0") or 0)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # -- setup -----------------------------------------------------------------

    def setup(self) -> None:
        """Open the log, create the group, place the marks, start the
        threads, and only then say "ready".

        Raises OSError or NotSupportedError if the group or a mark cannot
        be made, FanwatchError if a thread cannot be started.
        """
        self._open_log()
        ready = self._open_ready_file()
        try:
            self.group = self._make_group()
            self.group_fd = self.group.fileno()
            self.mask = self._wanted_mask()
            self._place_marks()
            self._install_signals()
            self._start_threads()
        except BaseException:
            _discard_ready_file(ready)
            raise
        self._announce_ready(ready)

    def _start_threads(self) -> None:
        """Start the log writer, the workers and the watchdog.

        Raises FanwatchError if the system refuses a thread, after closing
        the group: the kernel then allows every access already waiting.
        """
        self.progress = time.monotonic()
        try:
            self.log.start()
            for n in range(self.config.workers):
                name = f"fanwatch-worker-{n}"
                threading.Thread(target=self._work, name=name, daemon=True).start()
            threading.Thread(
                target=self._watch, name="fanwatch-watchdog", daemon=True
            ).start()
        except RuntimeError as exc:
            self.stopping.set()
            self.group.close()
            raise FanwatchError(
                f"cannot start the guard's threads: {exc}",
                hint="fewer --workers, or raise the task limit (pids cgroup)",
            ) from exc

    def _open_log(self) -> None:
        path = self.config.log_path
        if path is None:
            return
        if path == "-":
            self.log_fd = self.stdout_fd
            return
        # Opened before any mark exists: an open on a guarded mount from
        # the loop's own thread would wait for itself.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self.log_fd = os.open(path, flags, 0o640)

    def _open_ready_file(self) -> tuple[int, str] | None:
        path = self.config.ready_file
        if path is None:
            return None
        temporary = f"{path}.{self.pid}.tmp"
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644
        )
        return fd, temporary

    def _make_group(self) -> Group:
        """The permission group; raises NotSupportedError where the kernel,
        the capabilities or a seccomp filter allow none, OSError otherwise."""
        try:
            return self._make_permission_group()
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOSYS):
                raise
            raise NotSupportedError(
                "permission events are not supported here: the kernel refused "
                f"a permission group ({exc.strerror})",
                hint="they need CAP_SYS_ADMIN in the initial user namespace "
                "and no seccomp filter blocking fanotify_init; "
                "run 'fanwatch doctor --for guard'",
            ) from exc

    def _make_permission_group(self) -> Group:
        flags = FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS
        if self.policy is not None and self.policy.policy.depends_on_process:
            flags |= FAN_REPORT_PIDFD
        if self._wants_pre_content():
            try:
                group = Group(flags | FAN_CLASS_PRE_CONTENT, DEFAULT_EVENT_F_FLAGS)
                self.deny_errno = _probe_deny_errno(group.fileno())
                return group
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
        return Group(flags | FAN_CLASS_CONTENT, DEFAULT_EVENT_F_FLAGS)

    def _wants_pre_content(self) -> bool:
        if self.policy is None:
            return False
        policy = self.policy.policy
        named = any(r.errno not in (None, "EPERM") for r in policy.rules)
        return named or "access" in policy.accesses

    def _wanted_mask(self) -> int:
        if self.policy is None:
            return FAN_OPEN_PERM | FAN_CLOSE_WRITE
        mask = FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM
        if "access" in self.policy.policy.accesses:
            mask |= FAN_ACCESS_PERM
        return mask

    def _place_marks(self) -> None:
        targets = [self.config.mount] if self.config.mount else self.config.paths
        for target in targets:
            self._mark(target, self.mask)

    def _mark(self, target: str, mask: int) -> None:
        if mask & FAN_ACCESS_PERM and self.group.flags & FAN_CLASS_PRE_CONTENT:
            try:
                self.group.mark(
                    target,
                    (mask & ~FAN_ACCESS_PERM) | FAN_PRE_ACCESS,
                    kind=FAN_MARK_MOUNT,
                )
                self.pre_access = True
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                self._say(
                    f"{target}: no pre-content events on this filesystem; "
                    "using FAN_ACCESS_PERM"
                )
        try:
            self.group.mark(target, mask, kind=FAN_MARK_MOUNT)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise NotSupportedError(
                    f"{target}: the kernel refused permission events (EINVAL)",
                    hint="the kernel may lack CONFIG_FANOTIFY_ACCESS_PERMISSIONS",
                ) from exc
            raise

    def _announce_ready(self, ready: tuple[int, str] | None) -> None:
        self._warn_unsupported_errnos()
        if ready is not None:
            fd, temporary = ready
            os.write(fd, f"{self.pid}\n".encode())
            os.close(fd)
            os.rename(temporary, self.config.ready_file)
        mode = "permissive" if self.config.permissive else "enforcing"
        source = self.config.policy_path or "no policy: allowing everything"
        self._say(f"ready ({mode}; {source}; pid {self.pid})")
        self.notifier.notify(f"READY=1\nMAINPID={self.pid}\nSTATUS=guarding ({mode})")

    def _warn_unsupported_errnos(self) -> None:
        if self.policy is None or self.deny_errno:
            return
        named = [
            r.id for r in self.policy.policy.rules if r.errno not in (None, "EPERM")
        ]
        if named:
            self._say(
                f"rules {', '.join(named)} name an errno, but this kernel cannot deny "
                "with a chosen errno (FAN_DENY_ERRNO needs Linux 6.14+ and a "
                "pre-content group); they deny with EPERM"
            )

    # -- the loop --------------------------------------------------------------

    def run(self) -> int:
        """Answer events until SIGTERM/SIGINT; returns the exit code.

        Call :meth:`setup` first: it starts the threads this loop needs.
        """
        # The loop competes with the log writer and the workers for the
        # GIL; a short switch interval bounds how long it can wait.
        sys.setswitchinterval(0.0005)
        poller = select.poll()
        poller.register(self.group_fd, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        try:
            while self.stop_signal is None:
                self._step(poller)
        finally:
            self._shutdown()

        if self.stop_signal == signal.SIGINT:
            return exitcodes.INTERRUPTED
        return exitcodes.TERMINATED

    def _step(self, poller: select.poll) -> None:
        now = time.monotonic()
        self.progress = now
        timeout = IDLE_POLL
        if self.pending:
            first = next(iter(self.pending.values()))
            timeout = min(timeout, max(0.0, first.deadline - now))
        for fd, _ in poller.poll(timeout * 1000):
            if fd == self.group_fd:
                self._read_events()
            else:
                _drain_pipe(self.wake_r)
        if self.results:
            self._collect_results()
        if self.pending:
            self._expire(time.monotonic())
        if self.reload_requested:
            self._start_reload()
        if self.reload_result:
            self._finish_reload(self.reload_result.pop())

    def _read_events(self) -> None:
        # Keep reading while events keep coming: an opener that waits for
        # each answer has usually queued its next event by the time this
        # one is logged, and a poll() per event would cost a syscall.
        handle = self._handle
        for _ in range(64):
            try:
                data = os.read(self.group_fd, 256 * 1024)
            except BlockingIOError:
                return
            except OSError as exc:
                # The kernel could not hand over one event (no fd could be
                # made for it); it has answered that event itself.
                self.stats.read_errors += 1
                if self.stats.read_errors == 1:
                    self._say(f"an event could not be read: {exc.strerror}")
                continue
            for event in parse_events(data):
                handle(event)
            self.progress = time.monotonic()
            if self.results or self.stop_signal is not None:
                return

    def _handle(self, event) -> None:
        fd = event.fd
        mask = event.mask
        pidfd = event.pidfd
        if fd < 0:
            if mask & FAN_Q_OVERFLOW:
                self.stats.overflows += 1
                self._say("the event queue overflowed: some accesses were not seen")
            _close(pidfd)
            return
        if not mask & PERMISSION_EVENTS:
            self._print_event(mask, fd)
            _close_both(fd, pidfd)
            return
        if event.pid == self.pid:
            # Our own accesses (imports, /proc reads, the log): always.
            self._respond(fd, FAN_ALLOW)
            self.stats.own += 1
            _close_both(fd, pidfd)
            return
        if self.test_stall:
            time.sleep(self.test_stall)
            self.test_stall = 0
        self._decide(event, fd, mask, pidfd)

    def _decide(self, event, fd: int, mask: int, pidfd: int | None) -> None:
        started = time.monotonic_ns()
        bit = mask & PERMISSION_EVENTS
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            # A file deeper than PATH_MAX has no path to judge: the default
            # decides, and the guard goes on.
            self._answer_without_path(event, fd, bit, pidfd, started)
            return
        access = ACCESS_OF_BIT.get(bit, "open")
        policy = self.policy
        if policy is None:
            self._respond(fd, FAN_ALLOW)
            self.stats.decisions += 1
            self.log.put(
                self.stdout_fd,
                f"{EVENT_NAME.get(bit, hex(bit))}: File {escape(path)}\n",
            )
            self._record(access, path, event.pid, None, ALLOW_ALL, "allow-all", started)
            _close_both(fd, pidfd)
            return
        if path in self.own_files or path.startswith(self.own_dirs):
            verdict, reason = SELF, "guard-self"
        elif self.scope is not None and not _in_scope(path, self.scope):
            verdict, reason = OUTSIDE, "outside-paths"
        else:
            matches = policy.matches(access, path)
            if not matches or matches[0].file_only:
                verdict = policy.decide(matches, None)
                reason = "rule" if verdict.rule_id else "default"
            else:
                self._decide_by_process(
                    event, fd, pidfd, access, path, matches, started
                )
                return
        self._answer(fd, bit, access, path, event.pid, None, verdict, reason, started)
        _close_both(fd, pidfd)

    def _answer_without_path(self, event, fd, bit, pidfd, started) -> None:
        self.stats.unreadable_paths += 1
        if self.policy is None:
            verdict, reason = ALLOW_ALL, "allow-all"
        else:
            verdict = self.policy.default_verdict._replace(file_only=False)
            reason = "path-unreadable"
        access = ACCESS_OF_BIT.get(bit, "open")
        self._answer(fd, bit, access, None, event.pid, None, verdict, reason, started)
        _close_both(fd, pidfd)

    def _decide_by_process(
        self, event, fd, pidfd, access, path, matches, started
    ) -> None:
        pid = event.pid
        exe = _readlink(f"/proc/{pid}/exe")
        key = self._user_cache_key(fd, pidfd, access, path, exe)
        bit = event.mask & PERMISSION_EVENTS
        if key is not None:
            hit = self.user_cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                self.stats.user_cache_hits += 1
                self._answer(
                    fd, bit, access, path, pid, hit[2], hit[1], "user-cache", started
                )
                _close_both(fd, pidfd)
                return
        keys = needed_keys(matches)
        if keys <= {"pid", "exe"} and not self.test_delay:
            subject = Subject(pid=pid, exe=exe)
            verdict = self.policy.decide(matches, subject)
            self._remember(key, verdict, subject)
            self._answer(fd, bit, access, path, pid, subject, verdict, "rule", started)
            _close_both(fd, pidfd)
            return
        self.serial += 1
        deadline = time.monotonic() + self.config.deadline
        self.pending[fd] = Pending(
            fd, self.serial, access, path, pid, started, deadline
        )
        # The worker owns the pidfd from here and closes it.
        self.jobs.put(
            (fd, self.serial, pid, pidfd, exe, keys, matches, self.policy, key)
        )

    def _user_cache_key(self, fd, pidfd, access, path, exe) -> tuple | None:
        if pidfd is None or pidfd < 0:
            return None
        identity = pidfd_identity(pidfd)
        if identity is None:
            return None
        st = os.fstat(fd)
        return (access, path, st.st_dev, st.st_ino, st.st_ctime_ns, identity, exe)

    def _remember(self, key, verdict: Verdict, subject: Subject) -> None:
        if key is None:
            return
        if len(self.user_cache) >= USER_CACHE_LIMIT:
            self.user_cache.clear()
        self.user_cache[key] = (time.monotonic() + USER_CACHE_TTL, verdict, subject)

    def _answer(
        self, fd, bit, access, path, pid, subject, verdict, reason, started
    ) -> None:
        """Send the verdict, then (only then) cache and log it."""
        enforce = verdict.decision == "deny" and not self.config.permissive
        self._respond(fd, self._deny_response(verdict.errno) if enforce else FAN_ALLOW)
        self.stats.decisions += 1
        if enforce:
            self.stats.denied += 1
        cached = None
        if (
            verdict.decision == "allow"
            and verdict.file_only
            and self.config.kernel_cache
        ):
            cached = self._cache_in_kernel(fd, bit)
        self._record(access, path, pid, subject, verdict, reason, started, cached)

    def _respond(self, fd: int, response: int) -> None:
        # Written here rather than through Group.respond: this is the hot
        # path, and an unknown event (ENOENT) is only counted.
        try:
            os.write(self.group_fd, RESPONSE.pack(fd, response))
        except OSError:
            self.stats.respond_errors += 1

    def _deny_response(self, errno_name: str | None) -> int:
        if errno_name and errno_name != "EPERM" and self.deny_errno:
            return FAN_DENY_ERRNO(getattr(errno, errno_name))
        return FAN_DENY

    def _cache_in_kernel(self, fd: int, bit: int) -> str | None:
        """An ignore mark on the inode: the kernel allows later accesses of
        this kind itself, until the file is modified (the mark does not
        survive modification). Regular files with one link only: a second
        name could be judged differently."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return None
        if bit & (FAN_ACCESS_PERM | FAN_PRE_ACCESS):
            bit = FAN_PRE_ACCESS if self.pre_access else FAN_ACCESS_PERM
        if self.stats.kernel_cached >= KERNEL_CACHE_LIMIT:
            self._flush_kernel_cache()
        try:
            syscalls.fanotify_mark(
                self.group_fd, FAN_MARK_ADD | self.ignore_flags, bit, fd, None
            )
        except OSError as exc:
            if not self._fall_back_ignore(exc, fd, bit):
                return None
        self.stats.kernel_cached += 1
        return "kernel"

    def _fall_back_ignore(self, exc: OSError, fd: int, bit: int) -> bool:
        if exc.errno == errno.EEXIST and self.ignore_flags & FAN_MARK_EVICTABLE:
            # The inode already has a mark that is not evictable.
            flags = self.ignore_flags & ~FAN_MARK_EVICTABLE
        elif exc.errno == errno.EINVAL and self.ignore_flags & FAN_MARK_IGNORE:
            # Before 6.0: the legacy ignored mask, also cleared on modify.
            self.ignore_flags = FAN_MARK_IGNORED_MASK
            flags = self.ignore_flags
        else:
            return False
        try:
            syscalls.fanotify_mark(self.group_fd, FAN_MARK_ADD | flags, bit, fd, None)
        except OSError:
            return False
        return True

    def _flush_kernel_cache(self) -> None:
        try:
            syscalls.fanotify_mark(self.group_fd, FAN_MARK_FLUSH | FAN_MARK_INODE, 0)
        except OSError:
            pass
        self.stats.kernel_cached = 0

    def _record(
        self, access, path, pid, subject, verdict, reason, started, cached=None
    ) -> None:
        if self.log_fd is None:
            return
        record = {
            "time": time.time(),
            "access": access,
            "path": path,
            "pid": pid,
            "rule": verdict.rule_id,
            "decision": verdict.decision,
            "enforced": not self.config.permissive or verdict.decision != "deny",
            "reason": reason,
            "latency_us": (time.monotonic_ns() - started) // 1000,
        }
        # The path (os.readlink of a str path) and process names are
        # decoded with surrogateescape: put_text recovers their bytes.
        if path is not None:
            put_text(record, "path", path)
        if subject is not None:
            record["process"] = _process_fields(subject)
        if verdict.errno and verdict.decision == "deny":
            record["errno"] = verdict.errno if self.deny_errno else "EPERM"
        if cached:
            record["cached"] = cached
        self.log.put(self.log_fd, record)

    def _print_event(self, mask: int, fd: int) -> None:
        path = _readlink(f"/proc/self/fd/{fd}")
        path = "?" if path is None else escape(path)
        self.log.put(
            self.stdout_fd,
            f"{EVENT_NAME.get(mask & FAN_CLOSE_WRITE, hex(mask))}: File {path}\n",
        )

    # -- workers, deadlines ----------------------------------------------------

    def _work(self) -> None:
        cache = ProcessCache()
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fd, serial, pid, pidfd, exe, keys, matches, policy, key = job
            subject = verdict = None
            try:
                if self.test_delay:
                    time.sleep(self.test_delay)
                subject = _subject(cache, pid, pidfd, exe, keys)
                verdict = policy.decide(matches, subject)
            except Exception:  # noqa: BLE001 - a worker must never die
                verdict = None
            finally:
                _close(pidfd)
            with self.results_lock:
                self.results.append((fd, serial, verdict, subject, key))
            _poke(self.wake_w)

    def _collect_results(self) -> None:
        with self.results_lock:
            results, self.results = self.results, []
        for fd, serial, verdict, subject, key in results:
            pending = self.pending.get(fd)
            if pending is None or pending.serial != serial:
                continue  # answered by its deadline already
            del self.pending[fd]
            reason = "rule" if verdict and verdict.rule_id else "default"
            if verdict is None:
                verdict = self.policy.default_verdict._replace(file_only=False)
            else:
                self._remember(key, verdict, subject)
            bit = BIT_OF_ACCESS[pending.access]
            self._answer(
                fd,
                bit,
                pending.access,
                pending.path,
                pending.pid,
                subject,
                verdict,
                reason,
                pending.started,
            )
            _close(fd)

    def _expire(self, now: float) -> None:
        while self.pending:
            first = next(iter(self.pending.values()))
            if first.deadline > now:
                return
            self._answer_default(self.pending.pop(first.fd), "deadline")
            self.stats.deadlines += 1

    def _answer_default(self, pending: Pending, reason: str) -> None:
        verdict = self.policy.default_verdict._replace(file_only=False)
        bit = BIT_OF_ACCESS[pending.access]
        self._answer(
            pending.fd,
            bit,
            pending.access,
            pending.path,
            pending.pid,
            None,
            verdict,
            reason,
            pending.started,
        )
        _close(pending.fd)

    # -- reload ------------------------------------------------------------------

    def _start_reload(self) -> None:
        self.reload_requested = False
        if self.config.policy_path is None:
            self._say("SIGHUP: no policy file to reload")
            return
        threading.Thread(target=self._load_in_background, daemon=True).start()

    def _load_in_background(self) -> None:
        try:
            result = CompiledPolicy(load_policy(self.config.policy_path))
        except PolicyError as exc:
            result = exc
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            result = PolicyError(f"{type(exc).__name__}: {exc}")
        self.reload_result.append(result)
        _poke(self.wake_w)

    def _finish_reload(self, result) -> None:
        if isinstance(result, Exception):
            self._say(f"reload refused, the running policy stays in force: {result}")
            return
        self.policy = result
        self.user_cache.clear()
        self._flush_kernel_cache()
        self._adjust_mask(self._wanted_mask())
        self._warn_unsupported_errnos()
        self._say(
            f"policy reloaded: {len(result.rules)} rules, default {result.default}"
        )

    def _adjust_mask(self, mask: int) -> None:
        """Mark the access kinds the reloaded policy needs, unmark the rest."""
        targets = [self.config.mount] if self.config.mount else self.config.paths
        removed = self.mask & ~mask
        for target in targets:
            try:
                if removed:
                    flags = FAN_MARK_REMOVE | FAN_MARK_MOUNT
                    syscalls.fanotify_mark(
                        self.group_fd, flags, removed | FAN_PRE_ACCESS, AT_FDCWD, target
                    )
                if mask & ~self.mask:
                    self._mark(target, mask)
            except OSError as exc:
                self._say(f"{target}: could not change the marks on reload: {exc}")
        self.mask = mask

    # -- signals, watchdog, shutdown ---------------------------------------------

    def _install_signals(self) -> None:
        def stop(signum, _frame):
            self.stop_signal = signum

        def reload(_signum, _frame):
            self.reload_requested = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)

    def _watch(self) -> None:
        limit = self.config.watchdog
        interval = min(limit / 4, 0.5)
        feed_every = self.notifier.watchdog_interval
        fed = time.monotonic()
        while not self.stopping.wait(interval):
            now = time.monotonic()
            stalled = now - self.progress
            if stalled > limit:
                self._fire_watchdog(stalled)
            if feed_every and now - fed >= feed_every:
                self.notifier.notify("WATCHDOG=1")
                fed = now

    def _fire_watchdog(self, stalled: float) -> None:
        # Closing the group makes the kernel allow every pending access.
        # Close first, then speak: stderr itself might block.
        os.close(self.group_fd)
        self.notifier.notify("STATUS=watchdog: decision loop stalled\nWATCHDOG=trigger")
        message = (
            f"fanwatch guard: WATCHDOG: the decision loop made no progress for "
            f"{stalled:.1f} s; the fanotify group is closed, so the kernel allows "
            "every pending access; exiting\n"
        )
        try:
            os.write(self.stderr_fd, message.encode())
        finally:
            os._exit(exitcodes.WATCHDOG)

    def _shutdown(self) -> None:
        self.stopping.set()
        for pending in list(self.pending.values()):
            self._answer_default(pending, "shutdown")
        self.pending.clear()
        self._drain_group()
        for _ in range(self.config.workers):
            self.jobs.put(None)
        self.group.close()
        self.notifier.notify("STOPPING=1")
        self.log.stop()
        s = self.stats
        self._say(
            f"stopped: {s.decisions} decisions, {s.denied} denied, "
            f"{s.deadlines} by deadline, "
            f"{s.overflows} queue overflows, {self.log.dropped} log records dropped, "
            f"{self.log.failed} failed"
        )

    def _drain_group(self) -> None:
        """Answer what is still queued by the default verdict."""
        default = FAN_ALLOW
        if (
            self.policy is not None
            and self.policy.default == "deny"
            and not self.config.permissive
        ):
            default = FAN_DENY
        while True:
            try:
                data = os.read(self.group_fd, 256 * 1024)
            except (BlockingIOError, OSError):
                return
            for event in parse_events(data):
                if event.fd >= 0 and event.mask & PERMISSION_EVENTS:
                    self._respond(
                        event.fd, FAN_ALLOW if event.pid == self.pid else default
                    )
                _close_both(event.fd, event.pidfd)

    def _say(self, message: str) -> None:
        """A notice on stderr, through the writer thread once it runs."""
        line = f"fanwatch guard: {message}\n"
        if self.log.running:
            self.log.put(self.stderr_fd, line)
        else:
            os.write(self.stderr_fd, line.encode())


# -- helpers -------------------------------------------------------------------


def vars_of(subject: Subject) -> dict:
    return {
        "pid": subject.pid,
        "exe": subject.exe,
        "comm": subject.comm,
        "uid": subject.uid,
        "gid": subject.gid,
        "parent_exe": subject.parent_exe,
        "container": subject.container,
    }


def _process_fields(subject: Subject) -> dict:
    fields: dict = {}
    for key, value in vars_of(subject).items():
        if isinstance(value, str):
            put_text(fields, key, value)
        elif value is not None:
            fields[key] = value
    return fields


def _subject(cache: ProcessCache, pid, pidfd, exe, keys) -> Subject:
    info = cache.lookup(pid, pidfd)
    parent_exe = None
    if "parent_exe" in keys and info.ppid:
        parent_exe = _readlink(f"/proc/{info.ppid}/exe")
    return Subject(
        pid=pid,
        exe=info.exe or exe,
        comm=info.comm,
        uid=info.uid,
        gid=info.gid,
        parent_exe=parent_exe,
        container=info.container_id,
    )


def _probe_deny_errno(group_fd: int) -> bool:
    """Does this group accept FAN_DENY_ERRNO? The kernel validates the
    response before looking up the event, so answering an event that does
    not exist gives ENOENT if it does, EINVAL if it does not."""
    try:
        os.write(group_fd, RESPONSE.pack(1 << 30, FAN_DENY_ERRNO(errno.EIO)))
    except OSError as exc:
        return exc.errno == errno.ENOENT
    return True


def _scope(paths: list[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    real = [os.path.realpath(p) for p in paths]
    return frozenset(real), tuple(p.rstrip("/") + "/" for p in real)


def _in_scope(path: str, scope: tuple[frozenset[str], tuple[str, ...]]) -> bool:
    exact, prefixes = scope
    return path in exact or path.startswith(prefixes)


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _discard_ready_file(ready: tuple[int, str] | None) -> None:
    if ready is None:
        return
    fd, temporary = ready
    _close(fd)
    try:
        os.unlink(temporary)
    except OSError:
        pass


def _close(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def _close_both(fd: int, pidfd: int | None) -> None:
    os.close(fd)
    if pidfd is not None and pidfd >= 0:
        os.close(pidfd)


def _poke(fd: int) -> None:
    try:
        os.write(fd, b"!")
    except BlockingIOError:
        pass


def _drain_pipe(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass

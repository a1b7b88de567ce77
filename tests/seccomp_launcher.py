"""Run a command under a seccomp filter that refuses fanotify syscalls.

    python tests/seccomp_launcher.py [--action errno:EPERM|errno:ENOSYS|kill]
                                     [--syscall fanotify_init] -- CMD [ARG...]

It sets no_new_privs, installs a classic-BPF filter that answers the named
syscalls (fanotify_init by default) with the action and allows everything
else, then execs CMD, which inherits the filter. This is how a container's
seccomp profile looks from inside, without a container: the tests use it
to check that doctor and watch blame seccomp, not the kernel.

Tests import :func:`under_seccomp` to build the command line.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import errno
import os
import platform
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# Classic BPF opcodes: BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K.
LD_ABS_W = 0x20
JEQ_K = 0x15
RET_K = 0x06

# struct seccomp_data: int nr; __u32 arch; ...
OFFSET_NR = 0
OFFSET_ARCH = 4

# machine -> (AUDIT_ARCH_*, {syscall name: number}), from the kernel's tables.
ARCHES = {
    "x86_64": (0xC000003E, {"fanotify_init": 300, "fanotify_mark": 301}),
    "aarch64": (0xC00000B7, {"fanotify_init": 262, "fanotify_mark": 263}),
    "riscv64": (0xC00000F3, {"fanotify_init": 262, "fanotify_mark": 263}),
}

# struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }
SOCK_FILTER = struct.Struct("=HBBI")

HERE = os.path.abspath(__file__)


def action_value(action: str) -> int:
    """The SECCOMP_RET_* value for "kill" or "errno:NAME"."""
    if action == "kill":
        return SECCOMP_RET_KILL_PROCESS
    kind, _, name = action.partition(":")
    if kind != "errno" or not hasattr(errno, name):
        raise ValueError(f"unknown action {action!r}: use kill or errno:NAME")

    return SECCOMP_RET_ERRNO | getattr(errno, name)


def build_program(arch: int, numbers: list[int], action: int) -> bytes:
    """A filter returning *action* for *numbers* on *arch*, allowing the rest.

    Layout: load arch, compare, load nr, one compare per number, action,
    allow. BPF jump offsets count from the next instruction.
    """
    count = len(numbers)
    action_at = 3 + count
    allow_at = action_at + 1
    # Another ABI (say, 32-bit calls on x86_64) has other numbers: allow it.
    insns = [(LD_ABS_W, 0, 0, OFFSET_ARCH), (JEQ_K, 0, allow_at - 2, arch)]
    insns.append((LD_ABS_W, 0, 0, OFFSET_NR))
    for index, number in enumerate(numbers):
        here = 3 + index
        last = index == count - 1
        insns.append((JEQ_K, action_at - here - 1, 1 if last else 0, number))
    insns.append((RET_K, 0, 0, action))
    insns.append((RET_K, 0, 0, SECCOMP_RET_ALLOW))

    return b"".join(SOCK_FILTER.pack(*insn) for insn in insns)


def install(syscall_names: list[str], action: str) -> None:
    """Set no_new_privs and install the filter on this process (OSError if refused)."""
    machine = platform.machine()
    if machine not in ARCHES:
        raise OSError(errno.ENOTSUP, f"no syscall table for {machine}")
    arch, table = ARCHES[machine]
    program = build_program(
        arch, [table[name] for name in syscall_names], action_value(action)
    )

    buffer = ctypes.create_string_buffer(program)

    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program) // SOCK_FILTER.size, ctypes.addressof(buffer))
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    for args in (
        (PR_SET_NO_NEW_PRIVS, 1, None, 0, 0),
        (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0),
    ):
        if libc.prctl(*args) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


def under_seccomp(
    argv: list[str],
    action: str = "errno:EPERM",
    syscalls: tuple[str, ...] = ("fanotify_init",),
) -> list[str]:
    """Prefix *argv* so that it runs under a filter refusing *syscalls*."""
    prefix = [sys.executable, HERE, "--action", action]
    for name in syscalls:
        prefix += ["--syscall", name]

    return [*prefix, "--", *argv]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--action", default="errno:EPERM")
    parser.add_argument("--syscall", action="append", dest="syscalls")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    install(args.syscalls or ["fanotify_init"], args.action)
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())

"""The fixed vocabularies of seccomp profiles: actions, operators,
architectures, capabilities, and how the machine names its architecture."""

from __future__ import annotations

import errno
import os

# Actions a runtime profile may name. SCMP_ACT_KILL is the historical name
# of SCMP_ACT_KILL_THREAD: runc turns both into the same libseccomp action.
ACTIONS = frozenset(
    {
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
    }
)

# Only these two actions carry a return code (errnoRet) in the filter.
ACTIONS_WITH_ERRNO = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})

OPERATORS = frozenset(
    {
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    }
)

# Architecture names as moby's `includes.arches` / `excludes.arches` spell
# them (Go's names, mostly), and the libseccomp name each one loads as.
NATIVE_TO_SCMP = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "x32": "SCMP_ARCH_X32",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "mips": "SCMP_ARCH_MIPS",
    "mipsel": "SCMP_ARCH_MIPSEL",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mipsel64n32": "SCMP_ARCH_MIPSEL64N32",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
}
SCMP_TO_NATIVE = {scmp: native for native, scmp in NATIVE_TO_SCMP.items()}
SCMP_ARCHES = frozenset(NATIVE_TO_SCMP.values()) | {
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
}

# `uname -m` spellings that differ from the native names above.
_MACHINE_TO_NATIVE = {
    "x86_64": "amd64",
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "armv6l": "arm",
    "armv7l": "arm",
    "armv8l": "arm",
    "loongarch64": "loong64",
}

CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

# The bounding set `docker run` gives a container without --cap-add/--cap-drop.
DOCKER_DEFAULT_CAPS = frozenset(
    {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    }
)


def capability_name(text: str) -> str:
    """``CAP_X`` for *text* given as ``x``, ``cap_x`` or ``CAP_X``.

    Raises ValueError for a name that is not a Linux capability.
    """
    name = text.strip().upper()
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if name not in CAPABILITIES:
        raise ValueError(f"unknown capability {text!r}")

    return name


def capability_set(add: list[str] = (), drop: list[str] = ()) -> frozenset[str]:
    """Docker's default bounding set with *add* added and *drop* removed.

    ``ALL`` (any case) in either list means every capability. Raises
    ValueError for an unknown capability name.
    """
    caps = set(DOCKER_DEFAULT_CAPS)
    for text in drop:
        caps -= _expand(text)
    for text in add:
        caps |= _expand(text)

    return frozenset(caps)


def _expand(text: str) -> set[str]:
    if text.strip().upper() in ("ALL", "CAP_ALL"):
        return set(CAPABILITIES)

    return {capability_name(text)}


def native_arch(text: str | None = None) -> str:
    """The moby name (``amd64``, ``arm64``...) for *text*, which may be a
    moby name, a ``uname -m`` name or ``SCMP_ARCH_*``; None means this
    machine. Raises ValueError for an architecture seccomp does not know."""
    name = os.uname().machine if text is None else text.strip()
    if name in NATIVE_TO_SCMP:
        return name
    if name.upper() in SCMP_TO_NATIVE:
        return SCMP_TO_NATIVE[name.upper()]
    if name in _MACHINE_TO_NATIVE:
        return _MACHINE_TO_NATIVE[name]

    raise ValueError(f"unknown architecture {name!r}")


def parse_kernel(text: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` from a release such as ``5.13`` or
    ``6.18.0-1-amd64``, compared the way moby compares minKernel.

    Raises ValueError when *text* does not start with ``X.Y``.
    """
    head = text.strip().split("-", 1)[0].split("+", 1)[0]
    parts = head.split(".")
    if len(parts) < 2 or not all(part.isdigit() for part in parts[:3]):
        raise ValueError(f"not a kernel version: {text!r}")
    numbers = [int(part) for part in parts[:3]]

    return tuple(numbers + [0] * (3 - len(numbers)))


def machine_kernel() -> tuple[int, int, int]:
    """The running kernel's version, as :func:`parse_kernel` returns it."""
    return parse_kernel(os.uname().release)


def errno_name(number: int | None) -> str:
    """``EPERM`` for 1 and so on; ``errno N`` for numbers Linux does not name."""
    if number is None:
        return ""

    return errno.errorcode.get(number, f"errno {number}")

"""Recording what doctor read, as a tree that ``doctor --replay`` judges.

:class:`RecordingHost` is the live :class:`~.facts.Host` that also copies
every file the fact collectors read into a tree (``proc/``, ``sys/``,
``root/``), in the layout :meth:`Host.from_tree` expects. Only what was
read is written, with three reductions that change no fact:

- an environment (``/proc/*/environ`` and this process's own) keeps only
  the variables the facts look at, so no secret leaves the machine;
- a kernel config keeps only its ``CONFIG_FANOTIFY`` lines;
- of the ``/proc/PID/fd/N`` links read while looking for fanotify groups,
  only the ``anon_inode:[fanotify]`` ones are kept (as symlinks).

A file that was missing or unreadable is absent from the tree; a
directory that could not be listed (another user's ``/proc/PID/fd``) is
written as an empty file, so listing it in the tree fails too. Whether the
judged directory was writable is not recorded: a replay as root finds it
writable.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Mapping

from ..errors import FanwatchError
from .facts import ENVIRON_KEYS, FANOTIFY_LINK, Host, parse_environ

# In a recorded tree, the probe and self-test results sit beside proc/.
RECORDING = "recorded.json"

# Only these kernel config lines are kept: the facts read no other.
KERNEL_CONFIG_OPTION = "CONFIG_FANOTIFY"


class RecordingHost(Host):
    """The live host, writing what is read from it under *tree*.

    Raises FanwatchError if *tree* exists and is not an empty directory,
    or cannot be made.
    """

    def __init__(self, tree: str) -> None:
        super().__init__()
        self.tree = tree
        _make_empty_dir(tree)

    def read_bytes(self, path: str) -> bytes | None:
        data = super().read_bytes(path)
        if data is not None:
            self._write(path, _reduced(self._relative(path), data))

        return data

    def exists(self, path: str) -> bool:
        found = super().exists(path)
        if found and not super().is_dir(path):
            self._write(path, b"")
        elif found:
            self._make_dir(path)

        return found

    def is_dir(self, path: str) -> bool:
        found = super().is_dir(path)
        if found:
            self._make_dir(path)

        return found

    def listdir(self, path: str) -> list[str]:
        try:
            names = super().listdir(path)
        except FileNotFoundError:
            raise
        except OSError:
            self._write(path, b"")
            raise

        # A listing is not written: the tree's directories hold only what
        # was read from them, and an absent directory lists as empty.
        return names

    def readlink(self, path: str) -> str:
        target = super().readlink(path)
        where = self._in_tree(path)
        if target == FANOTIFY_LINK and where and not os.path.lexists(where):
            os.makedirs(os.path.dirname(where), exist_ok=True)
            os.symlink(target, where)

        return target

    def save(self, recording: dict) -> None:
        """Write this process's environment, its RLIMIT_NOFILE (as
        ``proc/self/limits``) and *recording* as ``recorded.json``."""
        environ = _environ_block(self.environ)
        self._write(os.path.join(self.proc, "self/environ"), environ)
        # The live run asks getrlimit; a replay reads the limits file.
        self.read_bytes_proc("self/limits")
        with open(os.path.join(self.tree, RECORDING), "w", encoding="utf-8") as file:
            json.dump(recording, file, indent=2)
            file.write("\n")

    def _relative(self, path: str) -> str | None:
        """*path* as ``proc/...``, ``sys/...`` or ``root/...``, or None."""
        for base, name in ((self.proc, "proc"), (self.sys, "sys"), (self.root, "root")):
            if path == base or path.startswith(base.rstrip("/") + "/"):
                return os.path.join(name, os.path.relpath(path, base))

        return None

    def _in_tree(self, path: str) -> str | None:
        relative = self._relative(path)
        return None if relative is None else os.path.join(self.tree, relative)

    def _make_dir(self, path: str) -> None:
        where = self._in_tree(path)
        if where and not os.path.isdir(where):
            os.makedirs(where, exist_ok=True)

    def _write(self, path: str, data: bytes) -> None:
        where = self._in_tree(path)
        if where is None or os.path.isdir(where):
            return
        os.makedirs(os.path.dirname(where), exist_ok=True)
        with open(where, "wb") as file:
            file.write(data)


def _make_empty_dir(tree: str) -> None:
    try:
        os.makedirs(tree, exist_ok=True)
        if os.listdir(tree):
            raise FanwatchError(f"doctor: --record {tree}: exists and is not empty")
    except OSError as exc:
        raise FanwatchError(f"doctor: --record {tree}: {exc.strerror}") from None


def _reduced(relative: str | None, data: bytes) -> bytes:
    """*data* with only what the facts use, for the tree file *relative*."""
    if relative is None:
        return data
    if relative.startswith("proc/") and relative.endswith("/environ"):
        return _environ_block(parse_environ(data))
    if relative == "proc/config.gz":
        try:
            text = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return data  # as broken in the tree as it was here
        return gzip.compress(_config_lines(text), mtime=0)
    if relative.startswith("root/boot/config-"):
        return _config_lines(data)

    return data


def _environ_block(env: Mapping[str, str]) -> bytes:
    """The variables of *env* the facts use, NUL-separated like /proc's."""
    kept = [f"{key}={env[key]}\0" for key in ENVIRON_KEYS if key in env]

    return b"".join(os.fsencode(item) for item in kept)


def _config_lines(text: bytes) -> bytes:
    option = KERNEL_CONFIG_OPTION.encode()
    lines = [line for line in text.splitlines(True) if option in line]

    return b"".join(lines)

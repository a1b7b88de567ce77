"""The Python consumers the watch benchmark times, one per process.

usage: python -m bench.watch.consumers raw|watcher PATH [--mount]
       [--unprivileged] [--include GLOB ...]

Each prints ``ready`` once its marks are in place, waits for the first
event, drains the queue until nothing is left, and prints one JSON line of
counts and its peak RSS (VmHWM). The benchmark stops the process before the workload runs and
continues it afterwards, so every event is already queued when it reads.

* ``raw``: the library's lowest layer, exactly what the C consumer's ``fd``
  mode does: a ``Group`` with ``FAN_UNLIMITED_QUEUE`` and a mount mark,
  ``Group.read`` batches, ``readlink`` of ``/proc/self/fd/N`` for each event,
  every fd closed by the batch.
* ``watcher``: :class:`fanwatch.watcher.Watcher` on PATH with its defaults,
  as ``fanwatch watch`` builds it: paths and process details resolved;
  ``--mount``, ``--unprivileged`` and ``--include`` as for ``fanwatch watch``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from fanwatch.constants import FAN_CLASS_NOTIF, FAN_MARK_MOUNT, FAN_UNLIMITED_QUEUE
from fanwatch.filters import EventFilter
from fanwatch.group import Group
from fanwatch.watcher import FD_MODE_EVENTS, Scope, Watcher


def drain_raw(path: str) -> dict:
    counts = {"events": 0, "overflows": 0, "unresolved": 0}
    with Group(FAN_CLASS_NOTIF | FAN_UNLIMITED_QUEUE) as group:
        group.mark(path, FD_MODE_EVENTS, kind=FAN_MARK_MOUNT)
        _ready()
        group.wait()
        readlink = os.readlink
        while True:
            with group.read(0) as batch:
                if not batch:
                    break
                counts["events"] += len(batch)
                for event in batch:
                    if event.is_overflow:
                        counts["overflows"] += 1
                    elif event.fd >= 0:
                        readlink(b"/proc/self/fd/%d" % event.fd)

    return counts


def drain_watcher(
    path: str, mount: bool, unprivileged: bool, include: list[str]
) -> dict:
    watcher = Watcher(
        [path],
        scope=Scope.MOUNT if mount else Scope.TREE,
        mode="unprivileged" if unprivileged else "auto",
        filter=EventFilter(include=include),
    )
    with watcher:
        _ready()
        events = 0
        while not any(_progress(watcher)[1:]):
            # Wait for an event of the workload: the watcher's own walk of
            # the tree may be queued already (and is dropped as its own).
            events += len(watcher.read())
        while True:
            before = _progress(watcher)
            events += len(watcher.read(0))
            if _progress(watcher) == before:
                break
        stats = watcher.stats

        return {
            # Records read from the kernel, whatever became of them: the
            # figure the C consumer counts.
            "events": sum(_progress(watcher)),
            "emitted": events,
            "overflows": stats.overflows,
            "unresolved": stats.unresolved,
            "filtered": stats.filtered,
            "mode": watcher.mode_description,
            "marks": stats.marks,
        }


def _progress(watcher: Watcher) -> tuple[int, ...]:
    """Every counter a read can move: unchanged means nothing was read."""
    s = watcher.stats
    return (s.own, s.events, s.overflows, s.filtered, s.malformed)


def _peak_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def _ready() -> None:
    print("ready", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watch.consumers")
    parser.add_argument("kind", choices=("raw", "watcher"))
    parser.add_argument("path")
    parser.add_argument("--mount", action="store_true")
    parser.add_argument("--unprivileged", action="store_true")
    parser.add_argument("--include", action="append", default=[])
    args = parser.parse_args(argv)
    if args.kind == "raw":
        counts = drain_raw(args.path)
    else:
        counts = drain_watcher(args.path, args.mount, args.unprivileged, args.include)
    counts["vmhwm_kib"] = _peak_rss_kib()
    print(json.dumps(counts), flush=True)

    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

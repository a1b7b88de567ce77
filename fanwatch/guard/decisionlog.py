"""The decision log: records queued by the decision loop, written by a thread.

The decision loop must never wait on a disk, a pipe or a logger (any of
them may be waiting on a permission event the loop has not answered yet),
so it only appends to a bounded in-memory queue. When the queue is full the
record is dropped and counted; when a write fails (a full disk) the records
are counted as failed. A writer thread drains the queue every few
milliseconds.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque

from ..output import put_name

DEFAULT_CAPACITY = 65536
_json = json.JSONEncoder(separators=(",", ":")).encode
DEFAULT_INTERVAL = 0.05


class DecisionLog:
    """A bounded queue of (fd, item) drained to file descriptors by a thread.

    An item is a dict (written as one JSON line) or a str (written as is).
    :meth:`put` never blocks and never raises.
    """

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, interval: float = DEFAULT_INTERVAL
    ) -> None:
        self.capacity = capacity
        self.interval = interval
        self.dropped = 0
        self.failed = 0
        self.written = 0
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="fanwatch-log", daemon=True
        )

    def put(self, fd: int, item: dict | str) -> None:
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            return
        self._queue.append((fd, item))

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Write what is queued and stop; gives up after *timeout* seconds
        (a writer blocked on a full pipe must not keep us from exiting)."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)
            self._drain()
        self._drain()

    def _drain(self) -> None:
        queue = self._queue
        batches: dict[int, list[bytes]] = {}
        while queue:
            # Encoding holds the GIL: give it back every few records so the
            # decision loop never waits a whole switch interval for it.
            for _ in range(min(len(queue), 32)):
                fd, item = queue.popleft()
                batches.setdefault(fd, []).append(_encode(item))
            time.sleep(0)
        for fd, lines in batches.items():
            self._write(fd, lines)

    def _write(self, fd: int, lines: list[bytes]) -> None:
        try:
            _write_all(fd, b"".join(lines))
            self.written += len(lines)
            return
        except OSError:
            pass
        # Part of the batch may be on disk: write line by line to count.
        for line in lines:
            try:
                _write_all(fd, line)
                self.written += 1
            except OSError:
                self.failed += 1


def put_text(record: dict, key: str, text: str) -> None:
    """Store *text*, a name decoded with ``os.fsdecode``, as
    :func:`fanwatch.output.put_name` does for ``fanwatch watch --json``."""
    if text.isascii():
        record[key] = text
        return
    put_name(record, key, os.fsencode(text))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _encode(item: dict | str) -> bytes:
    if isinstance(item, str):
        return item.encode("utf-8", "surrogateescape")
    if isinstance(item.get("time"), float):
        item["time"] = timestamp(item["time"])
    return _json(item).encode() + b"\n"


_last_second: list = [None, ""]


def timestamp(seconds: float | None = None) -> str:
    """An RFC 3339 UTC time with microseconds (the date part is cached per
    second: formatting it is the dearest part of writing a record)."""
    seconds = time.time() if seconds is None else seconds
    whole = int(seconds)
    if _last_second[0] != whole:
        _last_second[0] = whole
        _last_second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_last_second[1]}.{int((seconds - whole) * 1e6):06d}Z"

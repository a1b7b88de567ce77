"""The events a :class:`~fanwatch.watcher.Watcher` yields."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .constants import FAN_ONDIR, FAN_Q_OVERFLOW, event_names
from .process import ProcessInfo


@dataclass(slots=True)
class FileEvent:
    """Who touched which file, and how.

    ``mask`` holds every event bit the kernel merged into this record (an
    ``open`` and its ``close_nowrite`` often arrive together). ``path`` is
    bytes because Linux names are bytes; ``path_text`` decodes it losslessly
    (undecodable bytes become surrogate escapes). For a rename, ``old_path``
    is where the entry was and ``path`` where it is now. ``path`` is None
    when the kernel's handle could not be mapped to a path; ``deleted`` is
    True when the file had no links left when the event was read.
    """

    mask: int
    path: bytes | None
    process: ProcessInfo
    time: float
    old_path: bytes | None = None
    deleted: bool = False

    @property
    def kinds(self) -> list[str]:
        """Short names of the events in this record, e.g. ``["open"]``."""
        return event_names(self.mask)

    @property
    def is_dir(self) -> bool:
        return bool(self.mask & FAN_ONDIR)

    @property
    def is_overflow(self) -> bool:
        """The kernel's queue overflowed: events after the last read were lost."""
        return bool(self.mask & FAN_Q_OVERFLOW)

    @property
    def path_text(self) -> str | None:
        return None if self.path is None else os.fsdecode(self.path)

    @property
    def old_path_text(self) -> str | None:
        return None if self.old_path is None else os.fsdecode(self.old_path)

"""fanwatch: file-access monitoring and control with Linux fanotify.

The top level re-exports the high-level API; the layers below are
:mod:`fanwatch.constants`, :mod:`fanwatch.syscalls`, :mod:`fanwatch.parser`,
:mod:`fanwatch.group` and :mod:`fanwatch.probe`.
"""

__version__ = "0.1.0"

from .errors import FanwatchError, NotSupportedError  # noqa: E402
from .events import FileEvent  # noqa: E402
from .filters import EventFilter  # noqa: E402
from .group import Batch, Group  # noqa: E402
from .parser import FileId, RawEvent, parse_events  # noqa: E402
from .probe import Features, probe  # noqa: E402
from .process import ProcessInfo  # noqa: E402
from .watcher import Scope, Watcher  # noqa: E402

__all__ = [
    "Batch",
    "EventFilter",
    "FanwatchError",
    "Features",
    "FileEvent",
    "FileId",
    "Group",
    "NotSupportedError",
    "ProcessInfo",
    "RawEvent",
    "Scope",
    "Watcher",
    "parse_events",
    "probe",
]

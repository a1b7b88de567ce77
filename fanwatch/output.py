"""Formatting events as text lines, JSON lines, CSV rows or a user template.

Every formatter turns one :class:`~fanwatch.events.FileEvent` into exactly
one line: names containing newlines or control characters are escaped in
text and CSV, and JSON keeps undecodable names lossless with a base64 copy
of the raw bytes (``path_b64``) beside the text.
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import json
import os
import string
import time
from collections.abc import Callable

from .constants import FAN_ONDIR, FAN_OPEN, event_names
from .errors import FanwatchError
from .events import FileEvent
from .process import UNKNOWN, ProcessInfo

# The JSON keys, stable across releases (docs/OUTPUT.md describes each).
JSON_SCHEMA_VERSION = 1
CSV_FIELDS = (
    "time",
    "events",
    "path",
    "old_path",
    "is_dir",
    "pid",
    "comm",
    "exe",
    "uid",
    "gid",
    "ppid",
    "container_id",
    "process_gone",
)
FORMAT_FIELDS = frozenset(CSV_FIELDS) | {"ts", "process"}

_ESCAPES = {i: f"\\x{i:02x}" for i in range(32)} | {
    ord("\n"): "\\n",
    ord("\t"): "\\t",
    ord("\r"): "\\r",
    ord("\\"): "\\\\",
    0x7F: "\\x7f",
}


def escape(text: str) -> str:
    """Make *text* safe on one terminal line: control characters, invisible
    formatting characters (such as bidirectional overrides, which can make a
    name read as another) and undecodable bytes become backslash escapes."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for char in text:
        code = ord(char)
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")

    return "".join(out)


# The events of one read share a timestamp, and a stream has few distinct
# masks: caching both saves a strftime and a scan of every event name per
# line, a fifth of the time fanwatch watch spends per event.
@functools.lru_cache(maxsize=64)
def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1e6):06d}"


@functools.lru_cache(maxsize=64)
def _iso(ts: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
        + f".{int(ts % 1 * 1e6):06d}Z"
    )


@functools.lru_cache(maxsize=256)
def _kinds(mask: int) -> tuple[str, ...]:
    return tuple(event_names(mask))


@functools.lru_cache(maxsize=256)
def _kinds_text(mask: int) -> str:
    return ",".join(event_names(mask))


def process_label(event: FileEvent) -> str:
    proc = event.process
    if proc.pid == 0:
        return "?"
    if proc.gone:
        return f"[exited]({proc.pid})"

    return f"{escape(proc.comm or '?')}({proc.pid})"


def _path_label(path: bytes | None) -> str:
    return "?" if path is None else escape(os.fsdecode(path))


def format_text(event: FileEvent) -> str:
    """``HH:MM:SS.ffffff comm(pid) events path`` (``old -> new`` for renames)."""
    if event.is_overflow:
        return f"{_clock(event.time)} - overflow (events were lost)"
    kinds = _kinds_text(event.mask)
    slash = "/" if event.is_dir else ""
    path = _path_label(event.path) + slash
    if event.old_path is not None:
        path = f"{_path_label(event.old_path)}{slash} -> {path}"

    return f"{_clock(event.time)} {process_label(event)} {kinds} {path}"


def put_name(record: dict, key: str, path: bytes | None) -> None:
    """Store a file name under *key* as valid UTF-8 text; where its bytes are
    not UTF-8, U+FFFD replaces each bad byte and ``<key>_b64`` keeps the
    exact bytes in base64 (lone surrogates would be invalid JSON text)."""
    if path is None:
        record[key] = None
        return
    try:
        record[key] = path.decode("utf-8")
    except UnicodeDecodeError:
        record[key] = path.decode("utf-8", "replace")
        record[f"{key}_b64"] = base64.b64encode(path).decode("ascii")


def to_record(event: FileEvent) -> dict:
    """The JSON object for *event* (keys documented in docs/OUTPUT.md)."""
    proc = event.process
    record: dict = {
        "time": _iso(event.time),
        "ts": round(event.time, 6),
        "events": list(_kinds(event.mask)),
    }
    put_name(record, "path", event.path)
    if event.old_path is not None:
        put_name(record, "old_path", event.old_path)
    record["is_dir"] = event.is_dir
    if event.deleted:
        record["deleted"] = True
    record.update(
        pid=proc.pid,
        comm=proc.comm,
        exe=proc.exe,
        uid=proc.uid,
        gid=proc.gid,
        ppid=proc.ppid,
        container_id=proc.container_id,
        process_gone=proc.gone,
    )

    return record


_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# The C string encoder the JSONEncoder above uses for str values.
_encode_string = json.encoder.encode_basestring


def format_json(event: FileEvent) -> str:
    """The JSON line for *event*: exactly ``to_record`` encoded, but built
    from fragments, the parts shared by many events (the time of a batch,
    a set of event names, a process) encoded once."""
    parts = [_json_time(event.time), _json_kinds(event.mask)]
    parts.append(_json_name("path", event.path))
    if event.old_path is not None:
        parts.append(_json_name("old_path", event.old_path))
    parts.append('"is_dir":true,' if event.mask & FAN_ONDIR else '"is_dir":false,')
    if event.deleted:
        parts.append('"deleted":true,')
    parts.append(_json_process(event.process))

    return "".join(parts)


@functools.lru_cache(maxsize=64)
def _json_time(ts: float) -> str:
    return f'{{"time":{_encode_string(_iso(ts))},"ts":{_encode_json(round(ts, 6))},'


@functools.lru_cache(maxsize=256)
def _json_kinds(mask: int) -> str:
    return f'"events":{_encode_json(list(_kinds(mask)))},'


def _json_name(key: str, path: bytes | None) -> str:
    if path is None:
        return f'"{key}":null,'
    try:
        return f'"{key}":{_encode_string(path.decode("utf-8"))},'
    except UnicodeDecodeError:
        record: dict = {}
        put_name(record, key, path)
        return _encode_json(record)[1:-1] + ","


@functools.lru_cache(maxsize=4096)
def _json_process(proc: ProcessInfo) -> str:
    fields = {
        "pid": proc.pid,
        "comm": proc.comm,
        "exe": proc.exe,
        "uid": proc.uid,
        "gid": proc.gid,
        "ppid": proc.ppid,
        "container_id": proc.container_id,
        "process_gone": proc.gone,
    }
    return _encode_json(fields)[1:]


def _row(event: FileEvent) -> dict:
    record = to_record(event)
    proc = event.process
    record["events"] = _kinds_text(event.mask)
    record["time"] = _iso(event.time)
    record["path"] = None if event.path is None else escape(os.fsdecode(event.path))
    if event.old_path is not None:
        record["old_path"] = escape(os.fsdecode(event.old_path))
    record["comm"] = None if proc.comm is None else escape(proc.comm)

    return record


class CsvFormatter:
    """CSV rows with a header first; fields escaped to stay on one line."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.DictWriter(
            self._buffer, CSV_FIELDS, extrasaction="ignore", lineterminator=""
        )

    def header(self) -> str:
        return self._take(self._writer.writeheader)

    def __call__(self, event: FileEvent) -> str:
        return self._take(lambda: self._writer.writerow(_row(event)))

    def _take(self, write: Callable[[], object]) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        write()

        return self._buffer.getvalue()


class TemplateFormatter:
    """``--format`` templates such as ``"{time} {comm} {events} {path}"``.

    Raises FanwatchError at construction for an unknown placeholder or a
    template that cannot be formatted (unbalanced braces, a format spec that
    does not fit the value, such as ``{uid:d}`` for an unknown uid).
    """

    def __init__(self, template: str) -> None:
        if not template:
            raise FanwatchError("an empty --format template prints nothing")
        self.template = template.replace("\\t", "\t").replace("\\n", "\n")
        known = ", ".join(sorted(FORMAT_FIELDS))
        try:
            fields = list(string.Formatter().parse(self.template))
        except ValueError as exc:
            raise FanwatchError(f"bad --format template: {exc}") from None
        for _text, name, _spec, _conv in fields:
            if name is not None and name not in FORMAT_FIELDS:
                raise FanwatchError(
                    f"unknown placeholder {{{name}}} in --format",
                    hint=f"known placeholders: {known}",
                )
        self._try_samples()

    def _try_samples(self) -> None:
        """Format events with and without process details, so that a spec
        that fails for some value fails now rather than mid-stream."""
        for process in (UNKNOWN, ProcessInfo(1, "comm", "/exe", 0, 0, 0)):
            try:
                self(FileEvent(FAN_OPEN, b"/", process, 0.0))
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                raise FanwatchError(f"bad --format template: {exc}") from None

    def __call__(self, event: FileEvent) -> str:
        values = {k: ("" if v is None else v) for k, v in _row(event).items()}
        values["ts"] = f"{event.time:.6f}"
        values["process"] = process_label(event)

        return self.template.format_map(values)


def formatter_for(kind: str, template: str | None = None) -> Callable[[FileEvent], str]:
    if kind == "json":
        return format_json
    if kind == "csv":
        return CsvFormatter()
    if kind == "format":
        return TemplateFormatter(template or "")

    return format_text

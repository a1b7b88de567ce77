"""The formatters: pure functions of a FileEvent, so events are built here."""

from __future__ import annotations

import base64
import csv
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanwatch.constants import (
    FAN_CLOSE_WRITE,
    FAN_CREATE,
    FAN_ONDIR,
    FAN_OPEN,
    FAN_Q_OVERFLOW,
    FAN_RENAME,
)
from fanwatch.errors import FanwatchError
from fanwatch.events import FileEvent
from fanwatch.output import (
    CSV_FIELDS,
    CsvFormatter,
    TemplateFormatter,
    escape,
    format_json,
    format_text,
    formatter_for,
    to_record,
)
from fanwatch.process import UNKNOWN, ProcessInfo

TS = 1700000000.25
PROC = ProcessInfo(42, "cat", "/usr/bin/cat", 1000, 100, 1, None)


def event(path=b"/srv/f", mask=FAN_OPEN, process=PROC, **kwargs) -> FileEvent:
    return FileEvent(mask, path, process, TS, **kwargs)


ODD_PATHS = [
    b"/a\nb",
    b"/with space",
    b"/-dash",
    b"/bad\xff\xfe",
    b"/t\tb\\s\r\x1b\x7f",
]


def test_text_line():
    line = format_text(event(mask=FAN_OPEN | FAN_CLOSE_WRITE))
    clock, process, kinds, path = line.split(" ")
    assert (process, kinds, path) == ("cat(42)", "close_write,open", "/srv/f")
    assert clock.endswith(".250000")


def test_text_rename_directory_and_unknown_process():
    line = format_text(
        event(b"/new", FAN_RENAME | FAN_ONDIR, UNKNOWN, old_path=b"/old")
    )
    assert line.endswith(" ? rename /old/ -> /new/")


def test_text_gone_process():
    assert " [exited](7) " in format_text(event(process=ProcessInfo(7, gone=True)))


@pytest.mark.parametrize("path", ODD_PATHS, ids=repr)
def test_text_is_one_escaped_line(path):
    line = format_text(event(path))
    assert "\n" not in line and "\r" not in line and line.isprintable()


def test_escape_is_readable():
    assert escape("/a\nb\\c\xff") == "/a\\nb\\\\c\xff"
    assert escape("/bad\udcff") == "/bad\\xff"
    assert escape("/esc\x1b") == "/esc\\x1b"


def test_json_record_keys():
    record = json.loads(format_json(event(mask=FAN_CREATE)))
    assert record == {
        "time": "2023-11-14T22:13:20.250000Z",
        "ts": TS,
        "events": ["create"],
        "path": "/srv/f",
        "is_dir": False,
        "pid": 42,
        "comm": "cat",
        "exe": "/usr/bin/cat",
        "uid": 1000,
        "gid": 100,
        "ppid": 1,
        "container_id": None,
        "process_gone": False,
    }


@pytest.mark.parametrize("path", ODD_PATHS, ids=repr)
def test_json_is_lossless_and_one_line(path):
    text = format_json(event(path, old_path=path + b"x", mask=FAN_RENAME))
    assert "\n" not in text
    record = json.loads(text)
    for key, raw in (("path", path), ("old_path", path + b"x")):
        if f"{key}_b64" in record:
            assert base64.b64decode(record[f"{key}_b64"]) == raw
        else:
            assert record[key].encode() == raw


def test_json_deleted_and_overflow():
    assert to_record(event(deleted=True))["deleted"] is True
    overflow = to_record(FileEvent(FAN_Q_OVERFLOW, None, UNKNOWN, TS))
    assert overflow["events"] == ["overflow"] and overflow["path"] is None
    assert overflow["pid"] == 0


def test_text_overflow():
    line = format_text(FileEvent(FAN_Q_OVERFLOW, None, UNKNOWN, TS))
    assert line.endswith(" - overflow (events were lost)")


def test_csv_header_and_rows():
    formatter = CsvFormatter()
    header = formatter.header()
    assert header == ",".join(CSV_FIELDS)
    rows = [formatter(event(path)) for path in ODD_PATHS + [b'/a,b"c']]
    assert all("\n" not in row and "\r" not in row for row in rows)
    parsed = list(csv.reader(io.StringIO("\n".join([header, *rows]))))
    assert len(parsed) == len(rows) + 1
    assert parsed[-1][CSV_FIELDS.index("path")] == '/a,b"c'
    assert parsed[1][CSV_FIELDS.index("path")] == "/a\\nb"
    assert parsed[1][CSV_FIELDS.index("pid")] == "42"


def test_template_placeholders():
    formatter = TemplateFormatter(
        "{ts}\\t{process} {pid:>5} {events} {path} {is_dir} {uid} {comm}"
    )
    line = formatter(event(b"/a\nb", FAN_OPEN | FAN_CLOSE_WRITE))
    assert (
        line
        == "1700000000.250000\tcat(42)    42 close_write,open /a\\nb False 1000 cat"
    )


def test_template_unknown_values_are_empty():
    line = TemplateFormatter("[{comm}][{uid}][{exe}]")(event(process=UNKNOWN))
    assert line == "[][][]"


@pytest.mark.parametrize(
    "template", ["{nope}", "{path", "{uid:d}", "{0}", "{path.x}", "{}"]
)
def test_bad_templates_are_refused_at_once(template):
    with pytest.raises(FanwatchError):
        TemplateFormatter(template)


def test_formatter_for():
    assert formatter_for("json") is format_json
    assert formatter_for("text") is format_text
    assert isinstance(formatter_for("csv"), CsvFormatter)
    assert isinstance(formatter_for("format", "{path}"), TemplateFormatter)


names = st.one_of(st.none(), st.binary(max_size=40).map(lambda b: b"/" + b))


@given(
    path=names,
    old_path=names,
    mask=st.integers(min_value=0, max_value=0x7FFFFFFF),
    deleted=st.booleans(),
    comm=st.one_of(st.none(), st.text(max_size=15)),
    exe=st.one_of(st.none(), st.text(max_size=30)),
    pid=st.integers(min_value=0, max_value=2**22),
    gone=st.booleans(),
    ts=st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
@settings(max_examples=300, deadline=None)
def test_json_lines_are_the_records_encoded(
    path, old_path, mask, deleted, comm, exe, pid, gone, ts
):
    process = ProcessInfo(pid=pid, comm=comm, exe=exe, uid=pid, gid=0, gone=gone)
    item = FileEvent(mask, path, process, ts, old_path=old_path, deleted=deleted)

    line = format_json(item)

    assert line == json.dumps(
        to_record(item), ensure_ascii=False, separators=(",", ":")
    )

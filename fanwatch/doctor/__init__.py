"""``fanwatch doctor``: why fanotify fails here, and the least-privilege fix.

The report is built in three steps, each replaceable for tests: facts read
from /proc, /sys and / (:mod:`.facts`), probes and self-tests run in child
processes (:mod:`.probes`, :mod:`.selftests`), and findings computed from
those as data (:mod:`.findings`). :func:`replay` builds the same report from
a recorded tree without touching the live system.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from ..errors import FanwatchError, short_path
from .facts import Host, collect
from .findings import JOBS, Inputs, diagnose
from .probes import run_probes
from .record import RECORDING, RecordingHost
from .selftests import DEFAULT_EVENT_TIMEOUT, choose_workdir, run_selftests

SCHEMA_VERSION = 1

__all__ = [
    "JOBS",
    "SCHEMA_VERSION",
    "Host",
    "build_report",
    "examine",
    "replay",
    "run_live",
]


def build_report(
    facts: dict,
    probes: dict,
    selftests: dict,
    job: str = "watch",
    *,
    path: str | None = None,
    selftest_dir: str | None = None,
    notes: list[str] | None = None,
) -> dict:
    """The whole report (schema version 1) from its parts; does no I/O."""
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}: one of {', '.join(JOBS)}")
    inputs = Inputs(facts, probes, selftests, job, list(notes or []))
    verdict, findings = diagnose(inputs)

    return {
        "version": SCHEMA_VERSION,
        "job": job,
        "path": path,
        "selftest_dir": selftest_dir,
        "verdict": verdict,
        "findings": findings,
        "facts": facts,
        "probes": probes,
        "selftests": selftests,
    }


def run_live(
    path: str | None = None,
    job: str = "watch",
    *,
    event_timeout: float = DEFAULT_EVENT_TIMEOUT,
    host: Host | None = None,
    record: str | None = None,
) -> dict:
    """Collect facts, run probes and self-tests on this machine; the report.

    With *record*, also write into that directory every file read, and the
    probe and self-test results, as a tree :func:`replay` judges the same
    way (see :mod:`.record`).

    Raises FanwatchError if *path* is not an existing directory, or if
    *record* exists and is not an empty directory.
    """
    _check_dir(path)
    recorder = RecordingHost(record) if record else None
    facts, recording = examine(path, event_timeout=event_timeout, host=recorder or host)
    if recorder:
        recorder.save(recording)

    return build_report(
        facts,
        recording["probes"],
        recording["selftests"],
        job,
        path=path,
        selftest_dir=recording["selftest_dir"],
        notes=recording["notes"],
    )


def examine(
    path: str | None = None,
    *,
    event_timeout: float = DEFAULT_EVENT_TIMEOUT,
    host: Host | None = None,
) -> tuple[dict, dict]:
    """The facts of this machine, and what :func:`replay` reads from
    ``recorded.json`` (``path``, ``notes``, ``selftest_dir``, ``probes``,
    ``selftests``), from the live probes and self-tests.

    Raises FanwatchError if *path* is not an existing directory.
    """
    _check_dir(path)
    host = host or Host()
    workdir, note = choose_workdir(path)
    try:
        target = path if path is not None else tempfile.gettempdir()
        facts = collect(host, target)
        probes = run_probes(target)
        judged = path if note else None
        selftests = run_selftests(workdir, probes, event_timeout, judged)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    recording = {
        "path": target,
        "notes": [note] if note else [],
        "selftest_dir": workdir,
        "probes": probes,
        "selftests": selftests,
    }

    return facts, recording


def _check_dir(path: str | None) -> None:
    if path is not None and not os.path.isdir(path):
        raise FanwatchError(f"doctor: {short_path(path)}: not an existing directory")


def replay(tree: str, job: str = "watch") -> dict:
    """The report for a recorded tree: ``proc/``, ``sys/``, ``root/`` and
    ``recorded.json`` (``path``, ``notes``, ``probes``, ``selftests``).

    Raises FanwatchError if the recording is missing or not valid JSON.
    """
    recording = _read_recording(tree)
    path = recording.get("path") or "/tmp"
    facts = collect(Host.from_tree(tree), path)

    return build_report(
        facts,
        recording.get("probes") or {},
        recording.get("selftests") or {},
        job,
        path=path,
        selftest_dir=recording.get("selftest_dir"),
        notes=recording.get("notes"),
    )


def _read_recording(tree: str):
    """The decoded ``recorded.json`` of *tree*; FanwatchError (exit code 2)
    when it cannot be read or decoded."""
    try:
        with open(os.path.join(tree, RECORDING), encoding="utf-8") as file:
            recording = json.load(file)
    except OSError as exc:
        raise _bad_recording(tree, f"cannot read {RECORDING}: {exc.strerror}") from None
    except ValueError as exc:
        raise _bad_recording(tree, f"cannot read {RECORDING}: {exc}") from None
    except RecursionError:
        raise _bad_recording(tree, f"{RECORDING}: nested too deeply") from None
    problem = _recording_problem(recording)
    if problem:
        raise _bad_recording(tree, f"{RECORDING}: {problem}")

    return recording


def _recording_problem(recording) -> str | None:
    """What keeps *recording* from being replayed, in words, or None.

    ``probes`` (at least one) and ``selftests`` map a name to a result
    object with a string ``outcome`` and plain values, as a live run
    records them; ``path`` and ``selftest_dir`` are strings or null,
    ``notes`` a list of strings.
    """
    if not isinstance(recording, dict):
        return f"must be an object, not {_kind(recording)}"
    if "probes" not in recording:
        return "probes: missing"
    for key in ("probes", "selftests"):
        problem = _results_problem(key, recording.get(key, {}))
        if problem:
            return problem
    if not recording["probes"]:
        return "probes: no probe recorded"
    for key in ("path", "selftest_dir"):
        if not isinstance(recording.get(key), (str, type(None))):
            return f"{key}: must be a string, not {_kind(recording[key])}"
    notes = recording.get("notes") or []
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        return "notes: must be a list of strings"

    return None


def _results_problem(key: str, results) -> str | None:
    if not isinstance(results, dict):
        return f"{key}: must be an object, not {_kind(results)}"
    for name, result in results.items():
        where = f"{key}.{name}"
        if not isinstance(result, dict):
            return f"{where}: must be an object, not {_kind(result)}"
        if "outcome" not in result:
            return f"{where}.outcome: missing"
        outcome = result["outcome"]
        if not isinstance(outcome, str):
            return f"{where}.outcome: must be a string, not {_kind(outcome)}"
        for field, value in result.items():
            if isinstance(value, (dict, list)):
                return f"{where}.{field}: must be a string, number, boolean or null"

    return None


def _kind(value) -> str:
    """The JSON type of decoded *value*, with its article."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = {dict: "an object", list: "a list", str: "a string"}

    return kinds.get(type(value), "a number")


def _bad_recording(tree: str, message: str) -> FanwatchError:
    error = FanwatchError(f"doctor: {short_path(tree)}: {message}")
    error.exit_code = 2  # a bad recording is bad input, like a bad PATH

    return error

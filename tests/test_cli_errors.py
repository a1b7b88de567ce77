"""One-line errors at the terminal: argument errors, hostile paths, and bad
``doctor --replay`` recordings. Each error is one line on stderr with a
documented exit code, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from fanwatch.cli import exitcodes, main

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "proc")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()

    return code, out, err


# --- doctor --replay ----------------------------------------------------------------


@pytest.fixture
def recorded(tmp_path):
    """A copy of a recorded tree; call it with the text of recorded.json."""
    tree = tmp_path / "tree"
    shutil.copytree(os.path.join(FIXTURES, "docker-default"), tree)

    def write(text: str) -> str:
        (tree / "recorded.json").write_text(text)
        return str(tree)

    return write


def test_replay_of_a_deeply_nested_recording(capsys, recorded):
    tree = recorded('{"a":' * 100_000 + "1" + "}" * 100_000)
    code, out, err = run(capsys, "doctor", "--replay", tree)

    assert (code, out) == (exitcodes.USAGE, "")
    assert err == f"fanwatch: doctor: {tree}: recorded.json: nested too deeply\n"


@pytest.mark.parametrize(
    "recording, problem",
    [
        ([], "must be an object, not a list"),
        ({}, "probes: missing"),
        ({"probes": {}}, "probes: no probe recorded"),
        ({"probes": []}, "probes: must be an object, not a list"),
        (
            {"probes": {"init-fid": "ok"}},
            "probes.init-fid: must be an object, not a string",
        ),
        ({"probes": {"init-fid": {}}}, "probes.init-fid.outcome: missing"),
        (
            {"probes": {"init-fid": {"outcome": 1}}},
            "probes.init-fid.outcome: must be a string, not a number",
        ),
        (
            {"probes": {"init-fid": {"outcome": "ok", "errno": {"a": 1}}}},
            "probes.init-fid.errno: must be a string, number, boolean or null",
        ),
        (
            {"probes": {"init-fid": {"outcome": "ok"}}, "selftests": [1]},
            "selftests: must be an object, not a list",
        ),
        (
            {"probes": {"init-fid": {"outcome": "ok"}}, "path": 7},
            "path: must be a string, not a number",
        ),
        (
            {"probes": {"init-fid": {"outcome": "ok"}}, "notes": "x"},
            "notes: must be a list of strings",
        ),
        (
            {"probes": {"init-fid": {"outcome": "ok"}}, "notes": [None]},
            "notes: must be a list of strings",
        ),
        (
            {"probes": {"init-fid": {"outcome": "ok"}}, "selftest_dir": []},
            "selftest_dir: must be a string, not a list",
        ),
    ],
)
def test_replay_of_a_recording_of_the_wrong_shape(capsys, recorded, recording, problem):
    tree = recorded(json.dumps(recording))
    code, out, err = run(capsys, "doctor", "--replay", tree)

    assert (code, out) == (exitcodes.USAGE, "")
    assert err == f"fanwatch: doctor: {tree}: recorded.json: {problem}\n"


def test_replay_of_a_minimal_recording(capsys, recorded):
    recording = {"probes": {"init-fid": {"outcome": "ok"}}, "path": None}
    code, out, err = run(capsys, "doctor", "--replay", recorded(json.dumps(recording)))

    assert code in (exitcodes.OK, exitcodes.NOT_SUPPORTED) and out and err == ""


# --- argument errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, prog, message",
    [
        (["--bogus"], "fanwatch", "unrecognized arguments: --bogus"),
        (["nosuch"], "fanwatch", "argument COMMAND: invalid choice: 'nosuch'"),
        (
            ["watch", "/tmp", "--bogus"],
            "fanwatch watch",
            "unrecognized arguments: --bogus",
        ),
        (
            ["doctor", "--timeout", "0"],
            "fanwatch doctor",
            "argument --timeout: must be more than 0",
        ),
        (
            ["seccomp", "check"],
            "fanwatch seccomp check",
            "the following arguments are required: PROFILE",
        ),
        (
            ["seccomp", "patch", "p.json", "--for", "x", "-o", "-"],
            "fanwatch seccomp patch",
            "argument --for: invalid choice: 'x'",
        ),
        (
            ["seccomp"],
            "fanwatch seccomp",
            "the following arguments are required: ACTION",
        ),
    ],
)
def test_argument_errors_are_one_line(capsys, argv, prog, message):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    out, err = capsys.readouterr()

    assert caught.value.code == exitcodes.USAGE and out == ""
    assert err.startswith(f"{prog}: {message}")
    assert err.endswith(f" (see '{prog} --help')\n") and err.count("\n") == 1


def test_argument_error_in_a_whole_process():
    done = subprocess.run(
        [sys.executable, "-m", "fanwatch", "watch", "/tmp", "--bogus"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == exitcodes.USAGE and done.stdout == ""
    assert done.stderr == (
        "fanwatch watch: unrecognized arguments: --bogus"
        " (see 'fanwatch watch --help')\n"
    )


# --- paths in error messages ---------------------------------------------------------

LONG = "/tmp/" + "d" * 250 + "/" + "e" * 250 + "/end"


def shortened(path: str) -> str:
    return path[:100] + "..." + path[-100:]


@pytest.mark.parametrize(
    "argv, err",
    [
        (
            ["doctor", "/tmp/w/new\nline"],
            "fanwatch: doctor: /tmp/w/new\\nline: not an existing directory\n",
        ),
        (
            ["doctor", LONG],
            f"fanwatch: doctor: {shortened(LONG)}: not an existing directory\n",
        ),
        (
            ["doctor", "--replay", "/nonexistent/\x1b[31mred"],
            "fanwatch: doctor: /nonexistent/\\x1b[31mred: cannot read recorded.json: "
            "No such file or directory\n",
        ),
        (
            ["seccomp", "check", "/nonexistent/tab\there"],
            "fanwatch: /nonexistent/tab\\there: No such file or directory\n",
        ),
        (
            ["seccomp", "check", LONG],
            f"fanwatch: {shortened(LONG)}: No such file or directory\n",
        ),
        (
            ["watch", LONG],
            f"fanwatch: {shortened(LONG)}: no such file or directory\n",
        ),
        (
            ["policy", "check", LONG],
            f"fanwatch: {shortened(LONG)}: cannot read the policy: "
            "No such file or directory\n",
        ),
    ],
)
def test_paths_in_errors_are_escaped_and_shortened(capsys, argv, err):
    code, out, printed = run(capsys, *argv)

    assert code in (exitcodes.USAGE, exitcodes.FAILURE) and out == ""
    assert printed == err


def test_path_deeper_than_path_max(capsys, tmp_path):
    deep = str(tmp_path) + "/x" * 3000
    code, _, err = run(capsys, "seccomp", "check", deep)

    assert code == exitcodes.FAILURE
    assert err == f"fanwatch: {shortened(deep)}: File name too long\n"


def test_profile_error_location_is_escaped_and_shortened(capsys, tmp_path):
    directory = tmp_path / ("p" * 200)
    directory.mkdir()
    path = directory / "bad\nname.json"
    path.write_text("[]")
    code, _, err = run(capsys, "seccomp", "check", str(path))

    shown = shortened(str(path)).replace("\n", "\\n")
    assert code == exitcodes.USAGE
    assert err == f"fanwatch: {shown}:1: (top level): must be an object, not a list\n"


def test_existing_output_path_is_escaped(capsys, tmp_path):
    out_path = tmp_path / "out\r.json"
    out_path.write_text("keep")
    profile = os.path.join(os.path.dirname(__file__), "profiles", "docker-default.json")
    code, _, err = run(capsys, "seccomp", "resolve", profile, "-o", str(out_path))

    assert code == exitcodes.FAILURE
    assert err.splitlines()[0] == (
        f"fanwatch: {tmp_path}/out\\r.json: already exists, not overwritten"
    )

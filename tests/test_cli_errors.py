"""One-line errors at the terminal: argument errors, hostile paths, and bad
``doctor --replay`` recordings. Each error is one line on stderr with a
documented exit code, never a traceback."""

from __future__ import annotations

import json
import os
import shutil

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

"""Line numbers for values inside a JSON text, by path.

The stdlib parser reports positions only for syntax errors. To point at a
value that parsed but means nothing (``syscalls[12].action``), the text is
walked once more here, recording where each value starts.
"""

from __future__ import annotations

import json
from json.decoder import scanstring

_WHITESPACE = " \t\n\r"
_DECODER = json.JSONDecoder()

Path = tuple[str | int, ...]


def value_offsets(text: str) -> dict[Path, int]:
    """Map the path of every value in *text* (valid JSON) to its offset.

    A path is a tuple of object keys and array indices; ``()`` is the root.
    """
    offsets: dict[Path, int] = {}
    _walk(text, _skip(text, 0), (), offsets)

    return offsets


def line_of(text: str, path: Path) -> int | None:
    """The 1-based line where the value at *path* (or its nearest existing
    parent) starts, or None when *text* is not valid JSON."""
    try:
        offsets = value_offsets(text)
    except ValueError:
        return None
    while path not in offsets and path:
        path = path[:-1]

    return text.count("\n", 0, offsets[path]) + 1 if path in offsets else None


def format_path(path: Path) -> str:
    """``syscalls[12].action`` for ``("syscalls", 12, "action")``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"

    return text.lstrip(".") or "(top level)"


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1

    return index


def _walk(text: str, index: int, path: Path, offsets: dict[Path, int]) -> int:
    """Record the value starting at *index*; return the index after it."""
    offsets[path] = index
    opener = text[index]
    if opener == "{":
        return _walk_object(text, index + 1, path, offsets)
    if opener == "[":
        return _walk_array(text, index + 1, path, offsets)
    _, end = _DECODER.raw_decode(text, index)

    return end


def _walk_object(text: str, index: int, path: Path, offsets) -> int:
    index = _skip(text, index)
    while text[index] != "}":
        key, index = scanstring(text, index + 1)
        index = _skip(text, _skip(text, index) + 1)  # past the colon
        index = _skip(text, _walk(text, index, path + (key,), offsets))
        if text[index] == ",":
            index = _skip(text, index + 1)

    return index + 1


def _walk_array(text: str, index: int, path: Path, offsets) -> int:
    index = _skip(text, index)
    position = 0
    while text[index] != "]":
        index = _skip(text, _walk(text, index, path + (position,), offsets))
        position += 1
        if text[index] == ",":
            index = _skip(text, index + 1)

    return index + 1

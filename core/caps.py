"""Caps on what a process sends to Prefect's API. Prefect caps no request size, and one
server serves every event, so each value Cronium sends (a run's input, an error, a state
message) is checked or cut here before the request leaves; a cut says so in the text.
Pure: no Prefect, no I/O."""

from __future__ import annotations

import json
from typing import Any

from .errors import CroniumError

__all__ = [
    "ERROR_CHARS",
    "JSON_DEPTH",
    "InputTooLarge",
    "NestedTooDeep",
    "check_input",
    "cap_text",
    "check_depth",
    "json_depth",
    "load_json",
]

ERROR_CHARS = 4_000  # an error message or state message: the start says what went wrong
# Nesting of a JSON value that crosses a process (input, output, variables, HTTP answers):
# deeper data is refused, as Prefect's serializers (orjson stops at 255 levels) and
# recursive code on the way (masking, templates) would fail on it in the middle of a run.
JSON_DEPTH = 64


class InputTooLarge(CroniumError):
    """A run's input is over CRONIUM_INPUT_LIMIT."""


class NestedTooDeep(CroniumError):
    """A JSON value nests deeper than JSON_DEPTH."""


def json_depth(value: Any) -> int:
    """Levels of arrays and objects in `value` (a scalar: 0), without recursion."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            pending.extend((v, depth) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def check_depth(value: Any, what: str) -> Any:
    """`value`, or NestedTooDeep naming `what` when it nests deeper than JSON_DEPTH."""
    depth = json_depth(value)
    if depth > JSON_DEPTH:
        raise NestedTooDeep(f"{what} nests {depth} levels deep, over the limit of {JSON_DEPTH}")
    return value


def load_json(text: str, what: str) -> Any:
    """Parsed JSON no deeper than JSON_DEPTH; ValueError (invalid) or NestedTooDeep."""
    try:
        value = json.loads(text)
    except RecursionError:  # thousands of levels: the parser itself gives up
        raise NestedTooDeep(
            f"{what} nests too deep to read, over the limit of {JSON_DEPTH} levels"
        ) from None
    return check_depth(value, what)


def json_size(value: Any) -> int:
    """Bytes of `value` as JSON (UTF-8): what it weighs wherever it is sent or stored."""
    return len(json.dumps(value, ensure_ascii=False, default=str).encode())


def check_input(value: Any, limit: int, source: str) -> None:
    """Raise InputTooLarge when `value`, as the JSON Prefect stores, is over `limit` bytes
    (`source` names where it came from: "--input", "the output of nightly", ...)."""
    check_depth(value, source)
    size = json_size(value)
    if size > limit:
        raise InputTooLarge(
            f"{source} is {size} bytes of JSON, over the input limit of {limit} bytes "
            "(CRONIUM_INPUT_LIMIT); pass a reference (a path, a URL, a variable's name) instead"
        )


def cap_text(text: str | None, limit: int = ERROR_CHARS) -> str | None:
    """`text` cut to `limit` characters, saying so."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... [cut: {len(text)} characters in all]"

"""Caps on what a process sends to Prefect's API. Prefect caps no request size, and one
server serves every event, so each value Cronium sends (a run's input, an error, a state
message) is checked or cut here before the request leaves; a cut says so in the text.
Pure: no Prefect, no I/O."""

from __future__ import annotations

import json
from typing import Any

from .errors import CroniumError

__all__ = ["ERROR_CHARS", "InputTooLarge", "check_input", "cap_text"]

ERROR_CHARS = 4_000  # an error message or state message: the start says what went wrong


class InputTooLarge(CroniumError):
    """A run's input is over CRONIUM_INPUT_LIMIT."""


def check_input(value: Any, limit: int, source: str) -> None:
    """Raise InputTooLarge when `value`, as the JSON Prefect stores, is over `limit` bytes
    (`source` names where it came from: "--input", "the output of nightly", ...)."""
    size = len(json.dumps(value, ensure_ascii=False, default=str).encode())
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

"""Durations as users write them: `30s`, `15m`, `2h`, `1d`, `1h30m`, or plain seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

__all__ = ["parse_duration", "Duration"]

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: object) -> float:
    """Seconds in `value`; raises ValueError with the accepted forms when it is not one."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 15m, 2h, 1d or seconds, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value) if abs(value) < 1e300 else math.inf
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif re.fullmatch(rf"(?:{_PART.pattern})+", text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(f"expected a duration like 30s, 15m, 2h, 1d or seconds, got {value!r}")
    else:
        raise ValueError(f"expected a duration like 30s, 15m, 2h, 1d or seconds, got {value!r}")
    if not math.isfinite(seconds):  # YAML's .inf and .nan, 1e999, a thousand-digit number
        raise ValueError(f"a duration must be a finite number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def _serialize(seconds: float) -> int | float:
    return int(seconds) if float(seconds).is_integer() else seconds


# Seconds as a float inside Python; written back as plain numbers, which parse again.
Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(_serialize, return_type=int | float)
]

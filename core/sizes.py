"""Sizes as Docker writes them (`256m`, `1g`): one reading for events and settings."""

from __future__ import annotations

import re

__all__ = ["size_bytes"]

_UNIT_BYTES = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def size_bytes(value: object) -> int:
    """The bytes `value` stands for; ValueError naming the accepted form otherwise."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmg]?)b?", str(value).strip().lower())
    if not match:
        raise ValueError(f"expected a size like 256m or 1g, got {value!r}")
    return int(float(match[1]) * _UNIT_BYTES[match[2]])

"""Stress sizes. Every reliability test keeps its shape at the size CI runs, which is
enough to prove its property; `CRONIUM_TEST_SIZE=full` runs them at the sizes the
Guarantees page promises (e.g. 200,000 lines instead of 20,000)."""

from __future__ import annotations

import os

CHOICES = ("ci", "full")
CHOSEN = os.environ.get("CRONIUM_TEST_SIZE", "ci") or "ci"
if CHOSEN not in CHOICES:
    raise SystemExit(f"CRONIUM_TEST_SIZE={CHOSEN!r} is not one of {', '.join(CHOICES)}")


def size(ci: int, full: int) -> int:
    """`ci` by default, `full` with CRONIUM_TEST_SIZE=full."""
    return full if CHOSEN == "full" else ci

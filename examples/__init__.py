"""The example events, shipped in the package: `cronium init` copies them, and `cronium up`
applies them when there is no ./events folder."""

from pathlib import Path

EVENTS = Path(__file__).parent / "events"

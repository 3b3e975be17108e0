"""Cronium on Prefect: script automation as Prefect deployments.

from cronium_prefect import Event, load_paths
"""

from .errors import (
    CroniumError,
    ExecutorError,
    HelperProtocolError,
    InvalidEvent,
)
from .event import Event
from .loader import load_paths, parse_text

__all__ = [
    "Event",
    "load_paths",
    "parse_text",
    "CroniumError",
    "ExecutorError",
    "HelperProtocolError",
    "InvalidEvent",
]

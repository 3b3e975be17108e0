"""Cronium on Prefect: script automation as Prefect deployments.

from cronium_prefect import Event, Workflow, load_paths
"""

from .errors import (
    CroniumError,
    ExecutorError,
    HelperProtocolError,
    InvalidEvent,
)
from .event import Event
from .loader import load_definitions, load_paths, parse_text
from .workflow import Step, Workflow

__all__ = [
    "Event",
    "Workflow",
    "Step",
    "load_definitions",
    "run_event",
    "docker_script",
    "ssh_script",
    "load_paths",
    "parse_text",
    "CroniumError",
    "ExecutorError",
    "HelperProtocolError",
    "InvalidEvent",
]


def __getattr__(name: str):
    # The flow-side API imports Prefect's engine; load it only when asked for.
    if name in ("run_event", "docker_script", "ssh_script"):
        from .flows import api

        return getattr(api, name)
    raise AttributeError(name)

"""Prefect flows: the `cronium-event` flow and what it is built from.

`cronium_event` is loaded on first use: importing it loads Prefect's engine and the
executors (~0.7 s), which the commands that only talk to the API (`apply`, `events`, ...)
do not need.
"""

from typing import Any

__all__ = ["cronium_event", "FLOW_NAME"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import event_flow

        return getattr(event_flow, name)
    raise AttributeError(name)

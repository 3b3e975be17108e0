"""Prefect flows: the `cronium-event` flow and what it is built from."""

from .event_flow import FLOW_NAME, cronium_event

__all__ = ["cronium_event", "FLOW_NAME"]

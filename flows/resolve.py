"""Turning the flow's `event` parameter (a definition or a name) into an Event."""

from __future__ import annotations

import re
from typing import Any

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from pydantic import ValidationError

from cronium_prefect.errors import EventNotFound, InvalidEvent, Problem
from cronium_prefect.event import NAME_PATTERN, Event

__all__ = ["resolve_event", "deployment_name"]

FLOW_NAME = "cronium-event"


def deployment_name(event_name: str) -> str:
    """The deployment's name; a text that is no event name never goes into an API path."""
    if not re.fullmatch(NAME_PATTERN, event_name):
        raise EventNotFound(f"{event_name!r} is not an event name (a-z, 0-9 and '-')")
    return f"{FLOW_NAME}/{event_name}"


async def resolve_event(event: Event | str | dict[str, Any]) -> Event:
    if isinstance(event, Event):
        return event
    if isinstance(event, dict):
        return _validated(event, "the flow's event parameter")
    async with get_client() as client:
        try:
            deployment = await client.read_deployment_by_name(deployment_name(event))
        except ObjectNotFound:
            raise EventNotFound(
                f"no event named {event!r}: there is no deployment {deployment_name(event)!r}"
            ) from None
    return _validated(deployment.parameters.get("event"), f"deployment {deployment_name(event)}")


def _validated(data: Any, source: str) -> Event:
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(
            [
                Problem(e["msg"], field=".".join(map(str, e["loc"])), source=source)
                for e in exc.errors(include_url=False)
            ]
        ) from None

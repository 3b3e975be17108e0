"""Turning the flow's `event` parameter (a definition or a name) into an Event, and
starting a deployed event's run by name."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, ValidationError

from cronium_prefect.caps import check_input
from cronium_prefect.errors import EventNotFound, InvalidEvent, Problem
from cronium_prefect.event import NAME_PATTERN, Event
from cronium_prefect.names import FLOW_NAME, WORKFLOW_FLOW_NAME, Trigger
from cronium_prefect.settings import get_settings

__all__ = [
    "resolve_event",
    "deployment_name",
    "read_runnable",
    "run_now",
    "validated",
    "FLOW_NAME",
]


def deployment_name(event_name: str, flow: str = FLOW_NAME) -> str:
    """The deployment's name (of an event, or of a workflow with its flow's name); a text
    that is no event name never goes into an API path."""
    if not re.fullmatch(NAME_PATTERN, event_name):
        raise EventNotFound(f"{event_name!r} is not an event name (a-z, 0-9 and '-')")
    return f"{flow}/{event_name}"


async def resolve_event(event: Event | str | dict[str, Any]) -> Event:
    if isinstance(event, Event):
        return event
    if isinstance(event, dict):
        return validated(event, "the flow's event parameter")
    async with get_client() as client:
        try:
            deployment = await client.read_deployment_by_name(deployment_name(event))
        except ObjectNotFound:
            raise EventNotFound(
                f"no event named {event!r}: there is no deployment {deployment_name(event)!r}"
            ) from None
    return validated(deployment.parameters.get("event"), f"deployment {deployment_name(event)}")


M = TypeVar("M", bound=BaseModel)


def validated(data: Any, source: str, model: type[M] = Event) -> M:  # type: ignore[assignment]
    """`data` as an Event (or `model`), or InvalidEvent naming each field and `source`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(
            [
                Problem(e["msg"], field=".".join(map(str, e["loc"])), source=source)
                for e in exc.errors(include_url=False)
            ]
        ) from None


async def read_runnable(client: PrefectClient, name: str) -> Any:
    """The deployment of the event, or else of the workflow, named `name`."""
    for flow in (FLOW_NAME, WORKFLOW_FLOW_NAME):
        try:
            return await client.read_deployment_by_name(deployment_name(name, flow))
        except ObjectNotFound:
            continue
    raise EventNotFound(
        f"no event or workflow named {name!r} (see `cronium events`, `cronium workflows`)"
    )


async def run_now(client: PrefectClient, name: str, input: Any = None) -> FlowRun:
    """Start a run of the deployed event (or workflow) `name` through its deployment (a
    worker runs it): "Run now", from the CLI (`cronium trigger`) and the dashboard alike.
    Raises EventNotFound for a name nothing deployed has."""
    check_input(input, get_settings().input_limit, "the input")
    deployment = await read_runnable(client, name)
    return await client.create_flow_run_from_deployment(
        deployment.id,
        parameters={"input": input, "trigger": Trigger.MANUAL.value},
        tags=[Trigger.MANUAL.tag],
    )

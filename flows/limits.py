"""`max_executions`: an event pauses itself once it has finished that many runs since it
was last activated (resuming starts the count again)."""

from __future__ import annotations

import logging
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound

from cronium_prefect.event import Event, EventStatus

from .deploy import activated_at, apply_events

__all__ = ["enforce_max_executions", "max_executions_reached"]

_FINISHED = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]


async def _finished_since_activation(client: Any, deployment: Any, limit: int) -> int:
    since = activated_at(deployment.tags)
    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_FINISHED)),
            start_time=FlowRunFilterStartTime(after_=since) if since else None,
        ),
        limit=limit + 1,
    )
    return len(runs)


async def max_executions_reached(event: Event, deployment: Any) -> bool:
    """Checked before a deployed run starts: a run already queued when the limit was
    reached must not execute (it ends Cancelled instead)."""
    if not event.max_executions or deployment is None:
        return False
    async with get_client() as client:
        done = await _finished_since_activation(client, deployment, event.max_executions)
    return done >= event.max_executions


async def enforce_max_executions(event: Event, deployment: Any, log: logging.Logger) -> None:
    """Called at the end of each deployed run (this run counts, though not final yet), with
    the deployment as the run read it when it started."""
    if not event.max_executions or deployment is None:
        return
    async with get_client() as client:
        finished = await _finished_since_activation(client, deployment, event.max_executions) + 1
        if finished < event.max_executions:
            return
        # Read again only now: the event may have been applied anew, paused or resumed
        # since (a resume starts a new count: count again from it).
        started_with = activated_at(deployment.tags)
        try:
            deployment = await client.read_deployment(deployment.id)
        except ObjectNotFound:
            return  # deleted while it ran
        if deployment.paused:
            return
        if activated_at(deployment.tags) != started_with:
            since = await _finished_since_activation(client, deployment, event.max_executions)
            finished = since + 1
            if finished < event.max_executions:
                return
    current = Event.model_validate(deployment.parameters.get("event"))
    await apply_events(
        [current.model_copy(update={"status": EventStatus.paused})], {deployment.name: deployment}
    )
    log.warning(
        "max_executions (%d) reached after %d runs since activation: event %s paused; "
        "`cronium resume %s` starts a new count",
        event.max_executions,
        finished,
        event.name,
        event.name,
    )

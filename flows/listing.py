"""What `cronium events` (and later the dashboard) shows about each deployed event."""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort

from .deploy import STATUS_TAG, read_event_deployments

__all__ = ["list_events", "event_status", "schedule_text"]

_FINAL = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]


def event_status(tags: list[str]) -> str:
    return next((t.removeprefix(STATUS_TAG) for t in tags if t.startswith(STATUS_TAG)), "draft")


def schedule_text(event: dict[str, Any]) -> str | None:
    schedule = event.get("schedule")
    if not schedule:
        return None
    if schedule.get("cron"):
        return f"cron {schedule['cron']} ({schedule.get('timezone', 'UTC')})"
    if schedule.get("interval"):
        return f"every {schedule['interval']}s"
    return f"once at {schedule.get('start_time')}"


async def list_events(status: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
    async with get_client() as client:
        deployments = await read_event_deployments(client)
        chosen = [
            d
            for d in deployments.values()
            if (status is None and event_status(d.tags) != "archived")
            or event_status(d.tags) == status
        ]
        chosen = [d for d in chosen if tag is None or tag in d.tags]
        ids = [d.id for d in chosen]
        next_runs: dict[Any, Any] = {}
        last_runs: dict[Any, Any] = {}
        if ids:
            by_deployment = FlowRunFilterDeploymentId(any_=ids)
            scheduled = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=by_deployment,
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                    ),
                ),
                sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC,
                limit=200,
            )
            for run in scheduled:
                next_runs.setdefault(run.deployment_id, run)
            finished = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=by_deployment,
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_FINAL)),
                ),
                sort=FlowRunSort.END_TIME_DESC,
                limit=200,
            )
            for run in finished:
                last_runs.setdefault(run.deployment_id, run)
    rows = []
    for deployment in sorted(chosen, key=lambda d: d.name):
        event = deployment.parameters.get("event") or {}
        upcoming, last = next_runs.get(deployment.id), last_runs.get(deployment.id)
        rows.append(
            {
                "name": deployment.name,
                "type": event.get("type"),
                "status": event_status(deployment.tags),
                "schedule": schedule_text(event),
                "tags": event.get("tags", []),
                "next_run": upcoming.next_scheduled_start_time.isoformat()
                if upcoming and upcoming.next_scheduled_start_time
                else None,
                "last_run": last.end_time.isoformat() if last and last.end_time else None,
                "last_status": last.state.name if last and last.state else None,
                "deployment_id": str(deployment.id),
            }
        )
    return rows

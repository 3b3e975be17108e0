"""What `cronium events` (and later the dashboard) shows about each deployed event."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from prefect.client.orchestration import PrefectClient, get_client

from cronium_prefect.names import FINAL_STATE_TYPES, WORKFLOW_FLOW_NAME

from .deploy import read_deployed_events
from .status import deployed_status

__all__ = ["list_events", "list_workflows", "schedule_text"]

_RUNS = 200


def schedule_text(event: dict[str, Any]) -> str | None:
    schedule = event.get("schedule")
    if not schedule:
        return None
    if schedule.get("cron"):
        return f"cron {schedule['cron']} ({schedule.get('timezone', 'UTC')})"
    if schedule.get("interval"):
        return f"every {schedule['interval']}s"
    return f"once at {schedule.get('start_time')}"


async def _runs(
    client: PrefectClient, ids: list[str], state: list[str], sort: str
) -> dict[str, dict[str, Any]]:
    """The first run (in `sort` order) of each deployment that has one.

    A batch of _RUNS runs can belong to a few busy events (one firing every minute fills
    it), so each next batch asks only for the deployments not found yet: every full batch
    finds at least one, and a short batch means the rest have no such run."""
    first: dict[str, dict[str, Any]] = {}
    remaining = ids
    while remaining:
        response = await client.request(
            "POST",
            "/flow_runs/filter",
            json={
                "flow_runs": {
                    "deployment_id": {"any_": remaining},
                    "state": {"type": {"any_": state}},
                },
                "sort": sort,
                "limit": _RUNS,
            },
        )
        batch = response.json()
        for run in batch:
            first.setdefault(run["deployment_id"], run)
        if len(batch) < _RUNS:
            break
        remaining = [i for i in remaining if i not in first]
    return first


async def list_events(status: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
    """One row per deployed event (archived ones only when asked for), read as plain JSON."""
    async with get_client() as client:
        deployments = await read_deployed_events(client)
        statuses = {n: deployed_status(d.paused, d.tags).value for n, d in deployments.items()}
        chosen = [
            d
            for d in deployments.values()
            if (status is None and statuses[d.name] != "archived") or statuses[d.name] == status
        ]
        chosen = [d for d in chosen if tag is None or tag in d.tags]
        ids = [d.id for d in chosen]
        next_runs: dict[str, dict[str, Any]] = {}
        last_runs: dict[str, dict[str, Any]] = {}
        if ids:
            next_runs, last_runs = await asyncio.gather(
                _runs(client, ids, ["SCHEDULED"], "NEXT_SCHEDULED_START_TIME_ASC"),
                _runs(client, ids, list(FINAL_STATE_TYPES), "END_TIME_DESC"),
            )
    rows = []
    for deployment in sorted(chosen, key=lambda d: d.name):
        event = deployment.parameters.get("event") or {}
        upcoming, last = next_runs.get(deployment.id), last_runs.get(deployment.id)
        rows.append(
            {
                "name": deployment.name,
                "type": event.get("type"),
                "status": statuses[deployment.name],
                "schedule": schedule_text(event),
                "tags": event.get("tags", []),
                "next_run": _iso(upcoming.get("next_scheduled_start_time")) if upcoming else None,
                "last_run": _iso(last.get("end_time")) if last else None,
                "last_status": (last.get("state") or {}).get("name") if last else None,
                "deployment_id": deployment.id,
            }
        )
    return rows


async def list_workflows() -> list[dict[str, Any]]:
    """One row per deployed workflow, as `list_events` gives events."""
    async with get_client() as client:
        deployments = await read_deployed_events(client, WORKFLOW_FLOW_NAME)
        ids = [d.id for d in deployments.values()]
        last_runs: dict[str, dict[str, Any]] = {}
        if ids:
            last_runs = await _runs(client, ids, list(FINAL_STATE_TYPES), "END_TIME_DESC")
    rows = []
    for deployment in sorted(deployments.values(), key=lambda d: d.name):
        workflow = deployment.parameters.get("workflow") or {}
        last = last_runs.get(deployment.id)
        rows.append(
            {
                "name": deployment.name,
                "status": deployed_status(deployment.paused, deployment.tags).value,
                "schedule": schedule_text(workflow),
                "steps": len(workflow.get("steps") or []),
                "tags": workflow.get("tags", []),
                "last_run": _iso(last.get("end_time")) if last else None,
                "last_status": (last.get("state") or {}).get("name") if last else None,
                "deployment_id": deployment.id,
            }
        )
    return rows


def _iso(value: str | None) -> str | None:
    """The API's timestamp as `datetime.isoformat()` writes it (what --json always showed)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat() if value else None

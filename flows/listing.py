"""What `cronium events` (and later the dashboard) shows about each deployed event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect.client.orchestration import PrefectClient, get_client

from cronium_prefect.event import EventStatus
from cronium_prefect.names import (
    FINAL_STATE_TYPES,
    FLOW_NAME,
    OWNER_TAG,
    SERVER_TAG,
    TYPE_TAG,
    WORKFLOW_FLOW_NAME,
)

from .deploy import read_deployed_events
from .status import deployed_status, status_query

__all__ = [
    "EventFilter",
    "count_events",
    "event_pages",
    "list_events",
    "list_workflows",
    "quiet_task",
    "schedule_text",
]

_RUNS = 200
_PAGE = 200  # the most Prefect's /deployments/filter returns at once


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


@dataclass(frozen=True)
class EventFilter:
    """Which events a listing shows; every field is asked of the API (the facet tags
    `apply` writes), so a page costs the same with 10 or 10,000 events. `status` None:
    every status but archived."""

    status: str | None = None
    name: str = ""  # a part of the name, any case
    tag: str = ""
    type: str = ""
    server: str = ""
    owner: str = ""

    def deployments(self, status: str | None = None) -> dict[str, Any]:
        """The `deployments` part of a filter body (for `status`, else the filter's own)."""
        status = status or self.status
        deployments: dict[str, Any] = status_query(status) if status else {}
        if self.name:
            deployments["name"] = {"like_": self.name}
        facets = [(TYPE_TAG, self.type), (SERVER_TAG, self.server), (OWNER_TAG, self.owner)]
        tags = [f"{prefix}{value}" for prefix, value in facets if value]
        tags += [self.tag] if self.tag else []
        tags += deployments.get("tags", {}).get("all_", [])
        if tags:
            deployments["tags"] = {"all_": tags}
        return deployments

    def shows(self, status: str) -> bool:
        return status == self.status if self.status else status != EventStatus.archived.value


def _query(deployments: dict[str, Any]) -> dict[str, Any]:
    return {"flows": {"name": {"any_": [FLOW_NAME]}}, "deployments": deployments}


async def count_events(client: PrefectClient, which: EventFilter) -> int:
    """How many events `which` shows (the API cannot exclude a tag: all minus archived)."""

    async def count(deployments: dict[str, Any]) -> int:
        return (await client.request("POST", "/deployments/count", json=_query(deployments))).json()

    if which.status:
        return await count(which.deployments())
    every, archived = await asyncio.gather(
        count(which.deployments()), count(which.deployments(EventStatus.archived.value))
    )
    return every - archived


async def event_pages(
    client: PrefectClient, which: EventFilter, limit: int | None = None
) -> AsyncIterator[list[dict[str, Any]]]:
    """The events `which` shows, by name, a page of rows at a time as the API gives them
    (at most `limit` rows in all; None: every one). Each page's next and last runs are
    read while the next page of deployments is."""
    # Archived events are dropped here when no status is asked for: whole pages then, or a
    # small limit behind many archived names would take a request per name.
    size = _PAGE if limit is None or which.status is None else max(1, min(_PAGE, limit))
    body = {**_query(which.deployments()), "sort": "NAME_ASC", "limit": size}

    async def deployments(offset: int) -> list[dict[str, Any]]:
        page = {**body, "offset": offset}
        return (await client.request("POST", "/deployments/filter", json=page)).json()

    shown, offset = 0, 0
    following: asyncio.Future | None = quiet_task(deployments(0))
    try:
        while following is not None:
            batch = await following
            offset += len(batch)
            chosen = [
                d for d in batch if which.shows(deployed_status(d["paused"], d["tags"]).value)
            ]
            chosen = chosen if limit is None else chosen[: limit - shown]
            shown += len(chosen)
            more = len(batch) == size and (limit is None or shown < limit)
            following = quiet_task(deployments(offset)) if more else None
            if chosen:
                yield await _rows(client, chosen)
    finally:
        if following is not None:
            following.cancel()


def quiet_task(coroutine: Any) -> asyncio.Future:
    """A task whose failure, should nobody await it (the listing ended first), is not
    reported as "never retrieved" with a traceback."""
    task = asyncio.ensure_future(coroutine)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return task


async def list_events(which: EventFilter = EventFilter()) -> list[dict[str, Any]]:
    """Every event `which` shows, as rows."""
    async with get_client() as client:
        return [row async for page in event_pages(client, which) for row in page]


async def _rows(client: PrefectClient, chosen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per deployment (its event, status, next and last run), read as plain JSON."""
    ids = [d["id"] for d in chosen]
    next_runs, last_runs = await asyncio.gather(
        _runs(client, ids, ["SCHEDULED"], "NEXT_SCHEDULED_START_TIME_ASC"),
        _runs(client, ids, list(FINAL_STATE_TYPES), "END_TIME_DESC"),
    )
    rows = []
    for deployment in chosen:
        event = (deployment.get("parameters") or {}).get("event") or {}
        upcoming, last = next_runs.get(deployment["id"]), last_runs.get(deployment["id"])
        rows.append(
            {
                "name": deployment["name"],
                "type": event.get("type"),
                "status": deployed_status(deployment["paused"], deployment["tags"]).value,
                "schedule": schedule_text(event),
                "tags": event.get("tags", []),
                "next_run": _iso(upcoming.get("next_scheduled_start_time")) if upcoming else None,
                "last_run": _iso(last.get("end_time")) if last else None,
                "last_status": (last.get("state") or {}).get("name") if last else None,
                "deployment_id": deployment["id"],
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

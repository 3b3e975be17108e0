"""An event's status, as its deployment holds it: Prefect's `paused` flag is the one truth
for active and paused, so that Prefect's UI, `cronium pause/resume`, the dashboard, `apply`
and the max_executions auto-pause all read and write the same field.

Prefect has no field for the lifecycle (an event still a draft, or archived), so a
`cronium-lifecycle:` tag keeps that: `live`, `draft` or `archived`. A draft or archived
event is paused too. The tag never says active or paused: a deployment that Prefect runs
(not paused) is active whatever its tag says, e.g. a draft resumed in Prefect's UI.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefect.client.orchestration import PrefectClient

from cronium_prefect.event import EventStatus
from cronium_prefect.names import FLOW_NAME, LIFECYCLE_TAG

__all__ = [
    "LIFECYCLE_TAG",
    "lifecycle_tag",
    "deployed_status",
    "status_query",
    "migrate_legacy_status",
]

# Before the paused flag was the one truth, the status was also a tag (and a parameter),
# and a paused event's schedules were inactive. Read while not yet migrated.
LEGACY_STATUS_TAG = "cronium-status:"
_MIGRATE_PAGE = 200

_LIVE = "live"
_SHELVED = (EventStatus.draft, EventStatus.archived)


def lifecycle_tag(status: EventStatus) -> str:
    return f"{LIFECYCLE_TAG}{status.value if status in _SHELVED else _LIVE}"


def deployed_status(paused: bool, tags: Iterable[str]) -> EventStatus:
    """The status of a deployment with this `paused` flag and these tags."""
    if not paused:
        return EventStatus.active
    tags = set(tags)
    for status in _SHELVED:
        if lifecycle_tag(status) in tags:
            return status
    if not any(t.startswith(LIFECYCLE_TAG) for t in tags):  # written before: see above
        for status in _SHELVED:
            if f"{LEGACY_STATUS_TAG}{status.value}" in tags:
                return status
    return EventStatus.paused


def status_query(status: EventStatus | str) -> dict[str, Any]:
    """The `deployments` part of a /deployments/filter (or /count, /paginate) body that
    selects the events with `status` (merge other tag filters into `tags.all_`)."""
    status = EventStatus(status)
    if status == EventStatus.active:
        return {"paused": {"eq_": False}}
    return {"paused": {"eq_": True}, "tags": {"all_": [lifecycle_tag(status)]}}


async def migrate_legacy_status(client: PrefectClient) -> list[str]:
    """Deployments written before the paused flag was the one truth get their lifecycle
    tag (from their old status tag) and active schedules (their paused flag alone stops
    them now). Idempotent; returns the events migrated. Called as `apply` and a worker
    start, so an upgrade needs nothing by hand."""
    legacy = [f"{LEGACY_STATUS_TAG}{status.value}" for status in EventStatus]
    migrated: list[str] = []
    while True:  # each pass re-reads: migrated ones drop out of the filter
        response = await client.request(
            "POST",
            "/deployments/filter",
            json={
                "flows": {"name": {"any_": [FLOW_NAME]}},
                "deployments": {"tags": {"any_": legacy}},
                "limit": _MIGRATE_PAGE,
            },
        )
        found = response.json()
        for deployment in found:
            tags = deployment.get("tags") or []
            old = next(t.removeprefix(LEGACY_STATUS_TAG) for t in tags if t in legacy)
            kept = [t for t in tags if not t.startswith((LEGACY_STATUS_TAG, LIFECYCLE_TAG))]
            await client.request(
                "PATCH",
                "/deployments/{id}",
                path_params={"id": deployment["id"]},
                json={"tags": sorted({*kept, lifecycle_tag(EventStatus(old))})},
            )
            for schedule in deployment.get("schedules") or []:
                if not schedule.get("active"):
                    await client.request(
                        "PATCH",
                        "/deployments/{id}/schedules/{schedule_id}",
                        path_params={"id": deployment["id"], "schedule_id": schedule["id"]},
                        json={"active": True},
                    )
            migrated.append(deployment["name"])
        if len(found) < _MIGRATE_PAGE:
            return migrated

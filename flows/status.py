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

from cronium_prefect.event import EventStatus
from cronium_prefect.names import LIFECYCLE_TAG

__all__ = ["LIFECYCLE_TAG", "lifecycle_tag", "deployed_status", "status_query"]

_LIVE = "live"
_SHELVED = (EventStatus.draft, EventStatus.archived)


def lifecycle_tag(status: EventStatus) -> str:
    return f"{LIFECYCLE_TAG}{status.value if status in _SHELVED else _LIVE}"


def deployed_status(paused: bool, tags: Iterable[str]) -> EventStatus:
    """The status of a deployment with this `paused` flag and these tags."""
    if not paused:
        return EventStatus.active
    for status in _SHELVED:
        if lifecycle_tag(status) in tags:
            return status
    return EventStatus.paused


def status_query(status: EventStatus | str) -> dict[str, Any]:
    """The `deployments` part of a /deployments/filter (or /count, /paginate) body that
    selects the events with `status` (merge other tag filters into `tags.all_`)."""
    status = EventStatus(status)
    if status == EventStatus.active:
        return {"paused": {"eq_": False}}
    return {"paused": {"eq_": True}, "tags": {"all_": [lifecycle_tag(status)]}}

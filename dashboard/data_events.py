"""Events as the dashboard reads them: one page of the list, one event in detail.

Everything is filtered and paginated by the API (the facet tags `apply` writes), so a page
costs the same with 10 or 10,000 events. Results are plain dicts, cached a few seconds.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import streamlit as st
from prefect.client.orchestration import PrefectClient

from cronium_prefect.event import is_event_name
from cronium_prefect.flows.listing import EventFilter, schedule_text
from cronium_prefect.flows.report import RECORD_TYPES, record_from_artifact
from cronium_prefect.flows.resolve import deployment_name
from cronium_prefect.flows.status import deployed_status
from cronium_prefect.names import (
    CHAINS_TAG,
    FINAL_STATE_TYPES,
    TRIGGER_TAG,
    WEBHOOK_TAG,
    Trigger,
    tag_value,
)
from cronium_prefect.record import RunRecord

from .api import call, cronium_flows, jsonable, status_of

__all__ = [
    "events_page",
    "event_detail",
    "post",
    "tagged_events",
    "run_row",
    "next_times",
]

FINALS = list(FINAL_STATE_TYPES)
_BATCH = 200  # the most the API returns at once
_TRIGGERS = {trigger.value for trigger in Trigger}
HISTORY = 50  # runs the event page lists (runs of earlier versions: two artifacts each)
TAGGED_LIMIT = 200


async def post(client: PrefectClient, path: str, body: dict[str, Any]) -> Any:
    """POST a filter body; Prefect's client raises for error statuses."""
    return (await client.request("POST", path, json=body)).json()


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    """The fields of a flow run every table shows."""
    state = run.get("state") or {}
    tags = run.get("tags") or []
    trigger = tag_value(tags, TRIGGER_TAG) or (
        "schedule" if "auto-scheduled" in tags else (run.get("parameters") or {}).get("trigger")
    )
    # Tags and parameters are anyone's to set through Prefect's API: only what Cronium
    # writes there reaches a page (a "trigger" or "event" of markdown would render).
    trigger = trigger if trigger in _TRIGGERS else None
    hook = tag_value(tags, WEBHOOK_TAG)
    return {
        "run_id": run["id"],
        "run_name": run.get("name"),
        "event": _event_name(run),
        "status": status_of(state.get("name"), state.get("type")),
        "state": state.get("name"),
        "trigger": trigger,
        # whose webhook started it: an event name, or nothing (see the note above)
        "webhook": hook if trigger == "webhook" and is_event_name(hook) else None,
        "start": run.get("start_time") or run.get("expected_start_time"),
        "end": run.get("end_time"),
        "duration_s": run.get("total_run_time"),
        "deployment_id": run.get("deployment_id"),
    }


def _event_name(run: dict[str, Any]) -> str | None:
    event = (run.get("parameters") or {}).get("event")
    name = event.get("name") if isinstance(event, dict) else event
    return name if is_event_name(name) else None


async def _runs_by_deployment(
    client: PrefectClient, ids: list[str], flow_runs: dict[str, Any], sort: str, per: int
) -> dict[str, list[dict[str, Any]]]:
    """Up to `per` runs of each deployment: one query for all of them, then one per
    deployment only where a busier one filled the batch first."""
    found: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return found
    body = {"flow_runs": {**flow_runs, "deployment_id": {"any_": ids}}, "sort": sort}
    batch = await post(client, "/flow_runs/filter", {**body, "limit": _BATCH})
    for run in batch:
        if len(found[run["deployment_id"]]) < per:
            found[run["deployment_id"]].append(run)
    if len(batch) == _BATCH:
        short = [i for i in ids if len(found[i]) < per]

        async def one(deployment_id: str) -> None:
            query = {**body, "flow_runs": {**flow_runs, "deployment_id": {"any_": [deployment_id]}}}
            found[deployment_id] = await post(client, "/flow_runs/filter", {**query, "limit": per})

        await asyncio.gather(*(one(i) for i in short))
    return found


async def tagged_events(client: PrefectClient, tag: str) -> list[str]:
    """Names of the first TAGGED_LIMIT events whose deployment carries `tag`."""
    found = await post(
        client,
        "/deployments/filter",
        {"flows": cronium_flows(), "deployments": {"tags": {"all_": [tag]}}, "limit": TAGGED_LIMIT},
    )
    return sorted(d["name"] for d in found)


@st.cache_data(ttl=5, show_spinner=False)
def events_page(
    search: str = "",
    status: str = "",
    tag: str = "",
    type_: str = "",
    server: str = "",
    owner: str = "",
    page: int = 1,
    page_size: int = 25,
    last_n: int = 10,
) -> dict[str, Any]:
    """One page of events matching the filters, with next/last run and success rate."""
    which = EventFilter(status or None, search, tag, type_, server, owner)
    deployments = which.deployments()

    async def fetch(client: PrefectClient) -> dict[str, Any]:
        listing = await post(
            client,
            "/deployments/paginate",
            {
                "page": page,
                "limit": page_size,
                "sort": "NAME_ASC",
                "flows": cronium_flows(),
                "deployments": deployments,
            },
        )
        ids = [d["id"] for d in listing["results"]]
        finished, upcoming = await asyncio.gather(
            _runs_by_deployment(
                client,
                ids,
                {"state": {"type": {"any_": list(FINAL_STATE_TYPES)}}},
                "END_TIME_DESC",
                last_n,
            ),
            _runs_by_deployment(
                client,
                ids,
                {"state": {"type": {"any_": ["SCHEDULED"]}}},
                "NEXT_SCHEDULED_START_TIME_ASC",
                1,
            ),
        )
        rows = []
        for d in listing["results"]:
            event = (d.get("parameters") or {}).get("event") or {}
            last = [run_row(r) for r in finished[d["id"]]]
            following = upcoming[d["id"]]
            # As on the overview: a cancelled run (skipped overlap, Ctrl-C) is not a failure.
            counted = [r for r in last if r["status"] != "CANCELLED"]
            good = sum(r["status"] == "SUCCESS" for r in counted)
            rows.append(
                {
                    "name": d["name"],
                    "status": deployed_status(bool(d.get("paused")), d.get("tags") or []).value,
                    "type": event.get("type"),
                    "schedule": schedule_text(event) or "-",
                    "next_run": following[0].get("next_scheduled_start_time")
                    if following
                    else None,
                    "last_run": last[0]["end"] if last else None,
                    "last_status": last[0]["status"] if last else None,
                    "success_rate": good / len(counted) if counted else None,
                    "runs_counted": len(counted),
                    "tags": event.get("tags") or [],
                    "owner": event.get("owner"),
                    "servers": event.get("servers") or [],
                    "description": event.get("description") or "",
                }
            )
        return {"rows": rows, "total": listing["count"], "pages": listing["pages"]}

    return call(fetch)


async def next_times(schedule: dict[str, Any], n: int = 5) -> list[str]:
    """The next `n` times of a deployment schedule, from Prefect's own schedule model (the
    one its scheduler runs), not a parser of ours."""
    from cronium_prefect.prefect_adapter import next_schedule_times

    dates = await next_schedule_times(schedule, datetime.now(timezone.utc), n)
    return [jsonable(d) for d in dates]


@st.cache_data(ttl=3, show_spinner=False)
def event_detail(name: str) -> dict[str, Any]:
    """An event's deployment, schedule, recent runs with their records, and action graph."""

    async def fetch(client: PrefectClient) -> dict[str, Any]:
        deployment = await client.read_deployment_by_name(deployment_name(name))
        event = (deployment.parameters or {}).get("event") or {}
        runs = await post(
            client,
            "/flow_runs/filter",
            {
                "flow_runs": {
                    "deployment_id": {"any_": [str(deployment.id)]},
                    "expected_start_time": {"before_": datetime.now(timezone.utc).isoformat()},
                },
                "sort": "START_TIME_DESC",
                "limit": HISTORY,
            },
        )
        records: dict[str, RunRecord] = {}
        if runs:
            artifacts = await post(
                client,
                "/artifacts/filter",
                {
                    "artifacts": {
                        "type": {"any_": RECORD_TYPES},
                        "flow_run_id": {"any_": [r["id"] for r in runs]},
                    },
                    "sort": "CREATED_DESC",  # the newest record of a run comes first
                    "limit": 2 * HISTORY,  # earlier versions' runs: a record and a summary each
                },
            )
            for artifact in artifacts:
                record = record_from_artifact(artifact.get("type"), artifact.get("data"))
                if record is not None:
                    records.setdefault(artifact["flow_run_id"], record)
        chained_from = await tagged_events(client, f"{CHAINS_TAG}{name}")
        schedules = []
        for item in deployment.schedules:
            spec = item.schedule.model_dump(mode="json", exclude_none=True)
            schedules.append(
                {
                    "active": item.active,
                    "text": schedule_text(event) or str(spec),
                    "next": await next_times(spec) if item.active else [],
                }
            )
        rows = []
        for run in runs:
            row = run_row(run)
            record = records.get(run["id"])
            if record is not None:
                row.update(
                    output=record.output,
                    condition=record.condition,
                    exit_code=record.exit_code,
                    error=record.error,
                    duration_s=record.duration_s,
                )
            else:
                row.update(output=None, condition=None, exit_code=None, error=None)
            rows.append(row)
        current = next((r for r in rows if r["status"] in ("RUNNING", "PENDING")), None)
        return {
            "name": name,
            "deployment_id": str(deployment.id),
            "status": deployed_status(deployment.paused, deployment.tags).value,
            "event": event,
            "schedules": schedules,
            "runs": rows,
            "current_run": current,
            "chained_from": chained_from,
            "chained_from_capped": len(chained_from) >= TAGGED_LIMIT,
        }

    return call(fetch)

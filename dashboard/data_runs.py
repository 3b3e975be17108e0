"""Runs as the dashboard reads them: the overview's counts, the filtered run list, one run
in detail, and a run's log lines since an offset (for the live log)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import streamlit as st
from prefect.client.orchestration import PrefectClient

from cronium_prefect.flows.report import record_from_artifact
from cronium_prefect.flows.status import status_query
from cronium_prefect.names import FINAL_STATE_TYPES, Trigger

from .api import STATUS_STATES, NotFound, call, cronium_flows, jsonable, status_of
from .data_events import post, run_row

__all__ = ["overview", "runs_page", "run_detail", "log_lines", "checked_run_id", "TRIGGERS"]

LOG_PAGE = 200
LOG_LIMIT = 5_000  # lines a run page shows; the page says when there are more
# Prefect tags scheduled runs "auto-scheduled"; Cronium tags the others it starts.
TRIGGERS = {
    Trigger.SCHEDULE.value: "auto-scheduled",
    Trigger.MANUAL.value: Trigger.MANUAL.tag,
    Trigger.ACTION.value: Trigger.ACTION.tag,
    Trigger.WEBHOOK.value: Trigger.WEBHOOK.tag,
}
_EVENT_STATUSES = ["active", "paused", "draft", "archived"]


async def _count_events(client: PrefectClient, status: str) -> int:
    body = {"flows": cronium_flows(), "deployments": status_query(status)}
    return await post(client, "/deployments/count", body)


@st.cache_data(ttl=5, show_spinner=False)
def overview(hours: int = 24) -> dict[str, Any]:
    """Events by status; runs of the last `hours` by status and per hour; recent and
    running runs."""
    now = datetime.now(timezone.utc)
    # Whole hours, the current one last, so each bar is one clock hour.
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

    async def fetch(client: PrefectClient) -> dict[str, Any]:
        counts = await asyncio.gather(*(_count_events(client, s) for s in _EVENT_STATUSES))
        history, recent, running = await asyncio.gather(
            post(
                client,
                "/flow_runs/history",
                {
                    "history_start": (end - timedelta(hours=hours)).isoformat(),
                    "history_end": end.isoformat(),
                    "history_interval_seconds": 3600,
                    "flows": cronium_flows(),
                },
            ),
            post(
                client,
                "/flow_runs/filter",
                {
                    "flows": cronium_flows(),
                    "flow_runs": {"expected_start_time": {"before_": now.isoformat()}},
                    "sort": "START_TIME_DESC",
                    "limit": 15,
                },
            ),
            post(
                client,
                "/flow_runs/filter",
                {
                    "flows": cronium_flows(),
                    "flow_runs": {"state": {"type": {"any_": ["RUNNING", "CANCELLING"]}}},
                    "sort": "START_TIME_DESC",
                    "limit": 100,
                },
            ),
        )
        per_hour = []
        for interval in history:
            # Every hour gets a row (0 runs when idle), so the chart always spans the day.
            hour = datetime.fromisoformat(interval["interval_start"]).strftime("%d %H:00")
            per_hour.append({"hour": hour, "status": "SUCCESS", "runs": 0})
            for state in interval["states"]:
                if state["state_type"] == "SCHEDULED":
                    continue  # not run yet: the chart shows what happened
                per_hour.append(
                    {
                        "hour": hour,
                        "status": status_of(state["state_name"], state["state_type"]),
                        "runs": state["count_runs"],
                    }
                )
        by_status: dict[str, int] = {}
        for point in per_hour:
            by_status[point["status"]] = by_status.get(point["status"], 0) + point["runs"]
        finished = sum(
            n for s, n in by_status.items() if s in ("SUCCESS", "FAILURE", "TIMEOUT", "PARTIAL")
        )
        return {
            "events_by_status": dict(zip(_EVENT_STATUSES, counts, strict=True)),
            "runs_by_status": by_status,
            "success_rate": by_status.get("SUCCESS", 0) / finished if finished else None,
            "per_hour": per_hour,
            "recent": [run_row(r) for r in recent],
            "running": [run_row(r) for r in running],
        }

    return call(fetch)


@st.cache_data(ttl=3, show_spinner=False)
def runs_page(
    event: str = "",
    status: str = "",
    since_hours: float = 0,
    trigger: str = "",
    page: int = 1,
    page_size: int = 50,
) -> dict[str, Any]:
    """Runs matching the filters, newest first; future scheduled runs only when asked for
    (status PENDING)."""
    # Runs that are due (late and queued ones too); future scheduled runs only when PENDING
    # is asked for.
    flow_runs: dict[str, Any] = {}
    if status:
        flow_runs["state"] = {"name": {"any_": STATUS_STATES[status]}}
    if status != "PENDING":
        flow_runs["expected_start_time"] = {"before_": datetime.now(timezone.utc).isoformat()}
    if since_hours:
        since = datetime.now(timezone.utc) - timedelta(hours=since_hours)
        flow_runs.setdefault("expected_start_time", {})["after_"] = since.isoformat()
    if trigger:
        flow_runs["tags"] = {"all_": [TRIGGERS[trigger]]}
    body: dict[str, Any] = {
        "flows": cronium_flows(),
        "flow_runs": flow_runs,
        "sort": "START_TIME_DESC",  # start time, else expected: nearly unique, stable pages
        "page": page,
        "limit": page_size,
    }
    if event:
        body["deployments"] = {"name": {"like_": event}}

    async def fetch(client: PrefectClient) -> dict[str, Any]:
        found = await post(client, "/flow_runs/paginate", body)
        return {
            "rows": [run_row(r) for r in found["results"]],
            "total": found["count"],
            "pages": found["pages"],
        }

    return call(fetch)


async def _logs(
    client: PrefectClient, run_id: str, limit: int, since: str | None = None
) -> list[dict]:
    """Up to `limit` log lines of a run in time order (from `since`, when given)."""
    logs: dict[str, Any] = {"flow_run_id": {"any_": [run_id]}}
    if since is not None:
        logs["timestamp"] = {"after_": since}
    lines: list[dict] = []
    while len(lines) < limit:
        page = await post(
            client,
            "/logs/filter",
            {
                "logs": logs,
                "sort": "TIMESTAMP_ASC",
                "offset": len(lines),
                "limit": min(LOG_PAGE, limit - len(lines)),
            },
        )
        lines += [
            {
                "id": log["id"],
                "time": log["timestamp"],
                "level": log["level"],
                "message": log["message"],
            }
            for log in page
        ]
        if len(page) < LOG_PAGE:
            break
    return lines


def log_lines(run_id: str, since: str | None) -> dict[str, Any]:
    """A run's log lines from `since` on, and its status (not cached: the live log asks
    again every second)."""
    run_id = checked_run_id(run_id)

    async def fetch(client: PrefectClient) -> dict[str, Any]:
        run, lines = await asyncio.gather(
            client.request("GET", f"/flow_runs/{run_id}"), _logs(client, run_id, 20_000, since)
        )
        state = run.json().get("state") or {}
        return {
            "lines": lines,
            "status": status_of(state.get("name"), state.get("type")),
            "final": state.get("type") in FINAL_STATE_TYPES,
        }

    return call(fetch)


def checked_run_id(text: str) -> str:
    """A flow run id from a URL or a form, refused unless it is one."""
    try:
        return str(UUID(text.strip()))
    except ValueError:
        raise NotFound(f"{text!r} is not a flow run id") from None


@st.cache_data(ttl=3, show_spinner=False)
def run_detail(run_id: str) -> dict[str, Any]:
    """One run: its row, record (timings, servers, output), logs and messages."""
    run_id = checked_run_id(run_id)

    async def fetch(client: PrefectClient) -> dict[str, Any]:
        run = (await client.request("GET", f"/flow_runs/{run_id}")).json()
        artifacts, logs = await asyncio.gather(
            post(
                client,
                "/artifacts/filter",
                # Newest first: a run started again after a crash has two records.
                {
                    "artifacts": {"flow_run_id": {"any_": [run_id]}},
                    "sort": "CREATED_DESC",
                    "limit": 50,
                },
            ),
            _logs(client, run_id, LOG_LIMIT),
        )
        record, messages = None, []
        for artifact in artifacts:
            # A run has one table artifact: its messages.
            if artifact.get("type") == "table":
                data = artifact.get("data")
                messages = json.loads(data) if isinstance(data, str) else data or []
            else:
                record = record or record_from_artifact(artifact.get("type"), artifact.get("data"))
        row = run_row(run)
        row["parameters_input"] = (run.get("parameters") or {}).get("input")
        return {
            "run": {k: jsonable(v) for k, v in row.items()},
            "record": record.to_json() if record else None,
            "logs": logs,
            "logs_capped": len(logs) >= LOG_LIMIT,
            "messages": messages,
        }

    return call(fetch)

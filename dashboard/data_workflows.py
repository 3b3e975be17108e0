"""Workflows as the dashboard reads them: the list, and one workflow with its runs and the
state of each step of the latest one (from the steps' own runs while it runs, from its
record once it ended)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import streamlit as st
from prefect.client.orchestration import PrefectClient
from pydantic import ValidationError

from cronium_prefect.flows.listing import list_workflows, schedule_text
from cronium_prefect.flows.report import RECORD_TYPES, record_from_artifact
from cronium_prefect.flows.resolve import deployment_name
from cronium_prefect.flows.status import deployed_status
from cronium_prefect.names import STEP_TAG, WORKFLOW_FLOW_NAME, tag_value
from cronium_prefect.record import WorkflowRecord
from cronium_prefect.workflow import Workflow

from .api import DashboardError, api_errors, call, status_of
from .data_events import post, run_row

__all__ = ["workflows_list", "workflow_detail", "STEP_COLOURS"]

HISTORY = 50  # runs the workflow page lists
# Graph colours by step status (the run colours of ui.STATUS_COLOURS, and the step-only ones).
STEP_COLOURS = {
    "SUCCESS": "#2e9e44",
    "FAILURE": "#d62728",
    "RUNNING": "#1f77b4",
    "PENDING": "#dddddd",
    "SKIPPED": "#f2f2f2",
    "CANCELLED": "#7f7f7f",
    "NOT_STARTED": "#ffffff",
}


@st.cache_data(ttl=5, show_spinner=False)
def workflows_list() -> list[dict[str, Any]]:
    import asyncio

    with api_errors():
        return asyncio.run(list_workflows())


@st.cache_data(ttl=2, show_spinner=False)
def workflow_detail(name: str) -> dict[str, Any]:
    """The workflow's definition and status, its recent runs (with durations), and the
    latest run's steps: status and run ids, by step."""

    async def fetch(client: PrefectClient) -> dict[str, Any]:
        deployment = await client.read_deployment_by_name(deployment_name(name, WORKFLOW_FLOW_NAME))
        # Parameters are anyone's to set through Prefect's API: only a valid workflow
        # reaches the page (its names are then a-z, 0-9 and '-', safe in DOT and links).
        try:
            workflow = Workflow.model_validate((deployment.parameters or {}).get("workflow"))
        except ValidationError:
            raise DashboardError(
                f"the deployment of {name} does not hold a valid workflow (see `cronium apply`)"
            ) from None
        definition = workflow.to_parameters()
        runs = await post(
            client,
            "/flow_runs/filter",
            {
                "flow_runs": {
                    "deployment_id": {"any_": [str(deployment.id)]},
                    # started, or due: a schedule's future runs are not the latest
                    "expected_start_time": {"before_": datetime.now(timezone.utc).isoformat()},
                },
                "sort": "START_TIME_DESC",
                "limit": HISTORY,
            },
        )
        rows = [run_row(r) for r in runs]
        latest = rows[0] if rows else None
        steps: dict[str, dict[str, Any]] = {}
        if latest is not None:
            steps = await _latest_steps(client, latest)
        return {
            "workflow": definition,
            "status": deployed_status(deployment.paused, deployment.tags).value,
            "schedule": schedule_text(definition),
            "deployment_id": str(deployment.id),
            "runs": rows,
            "latest": latest,
            "steps": steps,
        }

    return call(fetch)


async def _latest_steps(client: PrefectClient, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each step's status and runs: the record's once the run has one; until then, what
    the steps' runs (this run's subflows, tagged with their step) say."""
    artifacts = await post(
        client,
        "/artifacts/filter",
        {
            "artifacts": {"type": {"any_": RECORD_TYPES}, "flow_run_id": {"any_": [run["run_id"]]}},
            "sort": "CREATED_DESC",
            "limit": 4,
        },
    )
    for artifact in artifacts:
        record = record_from_artifact(artifact.get("type"), artifact.get("data"))
        if isinstance(record, WorkflowRecord):
            return {
                s.name: {
                    "status": s.status.value,
                    "run_ids": [i for i in s.run_ids if _is_uuid(i)],  # for links
                    "duration_s": s.duration_s,
                    "error": s.error,
                    "reused": s.reused_from is not None,
                }
                for s in record.steps
            }
    children = await post(
        client,
        "/flow_runs/filter",
        {"flow_runs": {"parent_flow_run_id": {"any_": [run["run_id"]]}}, "limit": 200},
    )
    seen: dict[str, list[str]] = {}
    runs: dict[str, list[str]] = {}
    for child in sorted(children, key=lambda c: c.get("expected_start_time") or ""):
        step = tag_value(child.get("tags"), STEP_TAG)
        if step is None:
            continue
        state = child.get("state") or {}
        seen.setdefault(step, []).append(status_of(state.get("name"), state.get("type")))
        runs.setdefault(step, []).append(child["id"])
    return {
        step: {"status": _step_status(statuses), "run_ids": runs[step], "duration_s": None}
        for step, statuses in seen.items()
    }


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _step_status(statuses: list[str]) -> str:
    """A step's status from its runs' (several for a for_each step)."""
    if any(s in ("RUNNING", "PENDING") for s in statuses):
        return "RUNNING"
    if any(s in ("FAILURE", "TIMEOUT", "PARTIAL") for s in statuses):
        return "FAILURE"
    if any(s == "CANCELLED" for s in statuses):
        return "CANCELLED"
    return "SUCCESS"

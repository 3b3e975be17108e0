"""`cronium workflows | retry`: the deployed workflows, and a run started again."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Annotated, Any

import typer

from cronium_prefect.access import AuditAction

from .common import JsonOption, audit, err, fail_usage, out, print_json

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    for command in (workflows, retry):
        app.command()(command)


def workflows(as_json: JsonOption = False) -> None:
    """List workflows: status, schedule, steps, last run and its status."""
    from cronium_prefect.flows.listing import list_workflows

    rows = asyncio.run(list_workflows())
    if as_json:
        print_json(rows)
        return
    from .listing import columns

    sys.stdout.write(
        columns(
            ("workflow", "status", "schedule", "steps", "last run"),
            [
                (
                    row["name"],
                    row["status"],
                    row["schedule"] or "manual",
                    str(row["steps"]),
                    f"{row['last_run']} {row['last_status']}" if row["last_run"] else "-",
                )
                for row in rows
            ],
        )
        + "\n"
    )


def retry(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    failed: Annotated[
        bool,
        typer.Option(
            "--failed",
            help="A workflow run: run only its failed and not-started steps, reusing the "
            "outputs of those that succeeded.",
        ),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run; exit like `run`.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a run again, with the same input, through its deployment."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from cronium_prefect.flows.deploy import WORKFLOW_ENTRYPOINT
    from cronium_prefect.flows.report import read_record
    from cronium_prefect.names import Trigger
    from cronium_prefect.record import WorkflowRecord

    from .records import exit_with_record, follow_run

    try:
        earlier_id = uuid.UUID(run_id)
    except ValueError:
        raise fail_usage(f"{run_id!r} is not a flow run id") from None

    async def go() -> tuple[Any, Any]:
        async with get_client() as client:
            try:
                earlier = await client.read_flow_run(earlier_id)
                if earlier.deployment_id is None:
                    raise fail_usage(f"flow run {run_id} has no deployment: nothing to retry")
                deployment = await client.read_deployment(earlier.deployment_id)
            except ObjectNotFound:
                raise fail_usage(f"no flow run {run_id} (or its deployment is gone)") from None
            is_workflow = deployment.entrypoint == WORKFLOW_ENTRYPOINT
            if failed and not is_workflow:
                raise fail_usage("--failed retries a workflow run's steps; this is an event run")
            if failed and not (earlier.state and earlier.state.is_final()):
                raise fail_usage(f"flow run {run_id} has not ended: retry it once it has")
            if failed and not isinstance(await read_record(client, earlier_id), WorkflowRecord):
                raise fail_usage(f"flow run {run_id} left no workflow record to retry from")
            parameters: dict[str, Any] = {
                "input": (earlier.parameters or {}).get("input"),
                "trigger": Trigger.MANUAL.value,
            }
            if failed:
                parameters["retry_of"] = run_id
            run = await client.create_flow_run_from_deployment(
                deployment.id, parameters=parameters, tags=[Trigger.MANUAL.tag]
            )
            audit(AuditAction.trigger, deployment.name, run_id=str(run.id), retry_of=run_id)
            err.print(f"retrying {deployment.name}: flow run {run.id}", highlight=False)
            if not wait:
                return run, None
            return await follow_run(client, run.id, as_json)

    run, record = asyncio.run(go())
    if not wait:
        if as_json:
            out.print(json.dumps({"run_id": str(run.id), "retry_of": run_id}))
        return
    exit_with_record(run, record, as_json)

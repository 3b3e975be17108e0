"""Seeded data the dashboard tests read: events (one remote, one chained), a server on the
test sshd, plain and secret variables, and finished runs through a real worker."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client

from cronium_prefect.blocks.variable_store import BlockVariableStore
from cronium_prefect.flows.resolve import deployment_name
from tests.cli import cronium

SECRET = "s3cr3t-dashboard-7f2c9e"
SERVER = "dash-srv"

EVENTS = {
    "hello.yaml": """
        name: dash-hello
        type: bash
        status: active
        owner: ana
        tags: [ops]
        schedule: {cron: "0 3 * * *"}
        script: |
          echo "dash line one"
          echo "token is $(cronium_get_variable DASH_SECRET)"
          cronium_output "{\\"got\\": $(cronium_input)}"
        actions:
          - on: success
            run_event: dash-next
          - on: success
            send_message: {block: dash-hook, message: "hello ran: {{ output }}"}
        """,
    "next.yaml": """
        name: dash-next
        type: python
        status: active
        script: |
          import cronium
          print("next saw", cronium.input())
          cronium.output({"next": True})
        """,
    "remote.yaml": f"""
        name: dash-remote
        type: bash
        status: draft
        run_location: remote
        servers: [{SERVER}]
        script: uname -a
        """,
    "slow.yaml": """
        name: dash-slow
        type: bash
        status: active
        script: |
          for i in $(seq 30); do echo "slow line $i"; sleep 1; done
          cronium_output '"slow done"'
        """,
}


def apply_seed(folder: Path, hook_url: str) -> None:
    """Apply the events (their message goes to a webhook block at `hook_url`)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(
        name="dash-hook", url=hook_url, json_data={"text": "{{body}}"}
    ).save("dash-hook", overwrite=True)
    folder.mkdir(exist_ok=True)
    for name, text in EVENTS.items():
        (folder / name).write_text(textwrap.dedent(text))
    done = cronium("apply", str(folder))
    assert done.returncode == 0, done.stderr
    store = BlockVariableStore()
    store.set("DASH_PLAIN", 42)
    store.set("DASH_SECRET", SECRET, secret=True)


def trigger(name: str, input: Any) -> str:
    from cronium_prefect.dashboard.data_admin import run_now

    return run_now(name, input)


def wait_final(run_id: str, timeout: float = 120) -> Any:
    async def read():
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = asyncio.run(read())
        if run.state and run.state.is_final():
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not end within {timeout} s")


def runs_of(name: str) -> list[Any]:
    async def read():
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(deployment_name(name))
            from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])
                )
            )

    return asyncio.run(read())

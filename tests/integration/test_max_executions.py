"""max_executions from inside the run: the deployment is read once, as the run starts, and
again only by the run that pauses the event, so that pausing keeps what was applied while
the run went."""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path

from prefect.client.orchestration import PrefectClient, get_client

from cronium_prefect.flows import cronium_event
from cronium_prefect.flows.runtime import current_runtime
from cronium_prefect.prefect_adapter import run_flow_run_here

from .test_apply import cronium, write_events

FLOWS = Path(cronium_event.fn.__code__.co_filename).parent

EVENT = """\
name: mx-once
type: bash
script: echo {word}
max_executions: 1
"""


def test_the_pausing_run_keeps_the_definition_applied_while_it_ran(
    prefect_api, docker_client, tmp_path, monkeypatch
):
    folder = write_events(tmp_path / "v1", {"mx.yaml": EVENT.format(word="first")})
    assert cronium("apply", str(folder)).returncode == 0
    reads: list[object] = []  # Cronium's reads (Prefect's engine reads it for its events)
    read_deployment = PrefectClient.read_deployment

    async def counted(self, deployment_id):
        if any(Path(f.filename).is_relative_to(FLOWS) for f in traceback.extract_stack()):
            reads.append(deployment_id)
        return await read_deployment(self, deployment_id)

    async def go():
        async with get_client() as client:
            started_with = await client.read_deployment_by_name("cronium-event/mx-once")
            # Applied anew after the run read its deployment (as the worker hands it over).
            write_events(folder, {"mx.yaml": EVENT.format(word="second")})
            applied = await asyncio.to_thread(cronium, "apply", str(folder))
            assert applied.returncode == 0, applied.stderr
            run = await client.create_flow_run_from_deployment(started_with.id)
            current_runtime().deployments[str(run.id)] = started_with
            monkeypatch.setattr(PrefectClient, "read_deployment", counted)
            try:
                state = await run_flow_run_here(cronium_event, run, run.parameters)
            finally:
                current_runtime().deployments.pop(str(run.id), None)
                monkeypatch.undo()
            return state, await client.read_deployment(started_with.id)

    state, after = asyncio.run(go())
    assert state.is_completed(), state
    # The one read: the pausing run's own, for the definition as it is now.
    assert reads == [after.id]
    assert after.paused
    assert after.parameters["event"]["script"].strip() == "echo second"

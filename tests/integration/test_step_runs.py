"""A workflow hears its steps' runs end through Prefect's flow-run events (real server),
and polls when the event stream cannot be had."""

from __future__ import annotations

import asyncio
import logging
import time

import anyio
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Completed, Failed, Pending, Running

from cronium_prefect.flows import step_runs
from cronium_prefect.names import WORKFLOW_TAG

LOG = logging.getLogger("test")


@flow
def _probe() -> None:
    pass


async def _run(tags: list[str]) -> str:
    async with get_client() as client:
        run = await client.create_flow_run(_probe, state=Pending(), tags=tags)
        await client.set_flow_run_state(run.id, Running(), force=True)
        return str(run.id)


async def _end(run_id: str, end) -> None:
    async with get_client() as client:
        await client.set_flow_run_state(run_id, end, force=True)


@pytest.mark.parametrize("end", [Completed, Failed], ids=["completed", "failed"])
def test_the_end_of_a_running_step_wakes_the_workflow_and_no_other_does(
    prefect_api, monkeypatch, end
):
    monkeypatch.setattr(step_runs, "FALLBACK_POLL_SECONDS", 5.0)
    workflow = f"wf-wake-{end.__name__.lower()}"
    running: set[str] = set()

    async def main() -> dict[str, bool]:
        woke = {}
        async with step_runs.step_run_ends(workflow, running.__contains__, LOG) as next_end:
            await asyncio.sleep(1)
            # Another workflow's step run ends.
            await _end(await _run([f"{WORKFLOW_TAG}someone-else"]), end())
            woke["other workflow"] = await next_end()
            # A run of this workflow's that this run does not wait for (another run's).
            await _end(await _run([f"{WORKFLOW_TAG}{workflow}"]), end())
            woke["not running here"] = await next_end()
            ours = await _run([f"{WORKFLOW_TAG}{workflow}"])
            running.add(ours)
            await _end(ours, end())
            with anyio.fail_after(30):  # the fallback returns False after 5 s
                woke["ours"] = await next_end()
        return woke

    woke = asyncio.run(main())
    assert woke == {"other workflow": False, "not running here": False, "ours": True}, woke


def test_without_the_event_stream_it_looks_every_poll_interval(monkeypatch):
    monkeypatch.setattr(step_runs, "FALLBACK_POLL_SECONDS", 60.0)

    async def main() -> list[float]:
        async with step_runs.step_run_ends("wf-no-stream", lambda _: True, LOG) as next_end:
            waits = []
            for _ in range(3):
                began = time.monotonic()
                assert await next_end() is False  # never an event
                waits.append(time.monotonic() - began)
            return waits

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # nothing listens
        waits = asyncio.run(main())
    # Each look comes after the poll interval, not after the 60 s an event could take.
    assert all(step_runs.POLL_SECONDS <= w < 30 for w in waits), waits

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


async def _ended_run(tags: list[str], end) -> None:
    async with get_client() as client:
        run = await client.create_flow_run(_probe, state=Pending(), tags=tags)
        await client.set_flow_run_state(run.id, Running(), force=True)
        await client.set_flow_run_state(run.id, end, force=True)


@pytest.mark.parametrize("end", [Completed, Failed], ids=["completed", "failed"])
def test_the_end_of_a_steps_run_wakes_the_workflow_and_others_do_not(prefect_api, monkeypatch, end):
    monkeypatch.setattr(step_runs, "FALLBACK_POLL_SECONDS", 60.0)
    workflow = f"wf-wake-{end.__name__.lower()}"

    async def main() -> tuple[bool, bool]:
        async with step_runs.step_run_ends(workflow, LOG) as next_end:
            await asyncio.sleep(1)  # events of before the subscription's backfill end
            with anyio.move_on_after(3):  # drain the backfill (none expected)
                while True:
                    await next_end()
            # Another workflow's run ending: no wake (the fallback is 60 s away).
            await _ended_run([f"{WORKFLOW_TAG}someone-else"], end())
            with anyio.move_on_after(3) as other:
                await next_end()
            await _ended_run([f"{WORKFLOW_TAG}{workflow}"], end())
            began = time.monotonic()
            with anyio.move_on_after(30) as ours:
                await next_end()
            return (
                other.cancelled_caught,
                not ours.cancelled_caught and time.monotonic() - began < 30,
            )

    not_woken_by_others, woken = asyncio.run(main())
    assert not_woken_by_others, "another workflow's step run woke this one"
    assert woken, "the step run's end did not wake the workflow"


def test_without_the_event_stream_it_looks_every_poll_interval(monkeypatch):
    monkeypatch.setattr(step_runs, "FALLBACK_POLL_SECONDS", 60.0)

    async def main() -> list[float]:
        async with step_runs.step_run_ends("wf-no-stream", LOG) as next_end:
            waits = []
            for _ in range(3):
                began = time.monotonic()
                await next_end()
                waits.append(time.monotonic() - began)
            return waits

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # nothing listens
        waits = asyncio.run(main())
    # Each look comes after the poll interval, not after the 60 s an event could take.
    assert all(step_runs.POLL_SECONDS <= w < 30 for w in waits), waits

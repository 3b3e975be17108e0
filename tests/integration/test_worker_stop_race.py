"""A worker that stops ends its runs with a state that is proposed, not forced: Prefect
refuses to leave a final state, so a run whose flow ended a moment before the worker
got to it keeps its own state, whatever the timing (it was turned from Completed to
Crashed once, in CI). Deterministic: the run is made final first, then the worker's
`end_run` is applied to it, as the race would order them."""

from __future__ import annotations

import asyncio

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import AwaitingRetry, Cancelled, Completed, Crashed, Failed, Pending, Running

from cronium_prefect.flows.worker import end_run


@flow(name="stop-race-probe")
def _probe() -> None:
    pass


async def _run_in(*states) -> str:
    async with get_client() as client:
        run = await client.create_flow_run(_probe, state=Pending())
        for state in states:
            await client.set_flow_run_state(run.id, state, force=True)
        return str(run.id)


async def _end(states, proposed, over_final: bool) -> tuple[str, str]:
    key = await _run_in(*states)
    async with get_client() as client:
        said = await end_run(client, key, proposed, over_final)
        stored = (await client.read_flow_run(key)).state
    return said, stored.name


@pytest.mark.parametrize(
    "ended",
    [Completed, Failed, Cancelled, Crashed],
    ids=["completed", "failed", "cancelled", "crashed"],
)
def test_a_run_that_ended_first_keeps_its_state_when_the_worker_stops(prefect_api, ended):
    final = ended()
    said, stored = asyncio.run(
        _end([Running(), final], Crashed(message="worker stopped"), over_final=False)
    )
    assert said == stored == final.name


@pytest.mark.parametrize(
    "before",
    [[Running()], [Running(), AwaitingRetry()], []],
    ids=["running", "awaiting retry", "pending"],
)
def test_a_run_still_going_is_crashed_when_the_worker_stops(prefect_api, before):
    said, stored = asyncio.run(_end(before, Crashed(message="worker stopped"), over_final=False))
    assert said == stored == "Crashed"


def test_a_cancel_asked_for_wins_over_what_the_flow_wrote(prefect_api):
    said, stored = asyncio.run(
        _end([Running(), Failed()], Cancelled(message="stopped"), over_final=True)
    )
    assert said == stored == "Cancelled"

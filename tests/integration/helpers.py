"""Running events through the real flow against the test Prefect server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State

from cronium_prefect import parse_text
from cronium_prefect.errors import RunFailed
from cronium_prefect.event import Event
from cronium_prefect.flows import cronium_event
from cronium_prefect.flows.follow import FINISHED, follow_logs
from cronium_prefect.names import SCRIPT_LINE
from cronium_prefect.prefect_adapter import run_flow_run_here


def event_from(yaml_text: str) -> Event:
    (event,) = parse_text(yaml_text)
    return event


def record_json(result: Any) -> dict[str, Any]:
    """The run record as JSON from a flow run's result: the result itself for a run that
    completed, the `RunFailed` it raises (holding the typed record) for one that failed."""
    if isinstance(result, RunFailed):
        assert result.record is not None, f"a failed run without its record: {result}"
        return result.record.to_json()
    assert isinstance(result, dict), f"not a run record: {result!r}"
    return result


def run_flow(event: Event | str, input: Any = None) -> tuple[Any, dict[str, Any]]:
    """(final state, run record as JSON) of one in-process run of the cronium-event flow."""
    state = asyncio.run(cronium_event(event=event, input=input, return_state=True))
    result = state.result(raise_on_failure=False)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return state, record_json(result)


async def runs_at_once(calls: list[tuple[Event, Any]]) -> list[State]:
    """Final states of in-process runs of (event, input) pairs, all running at once, the
    way a worker runs the flow runs it picked up.

    The flow runs are created one after another first, as Prefect's scheduler and
    `cronium trigger` create them. Created all at once (`cronium_event(...)` 20 times in
    one `gather`), they raced in Prefect's POST /flow_runs/, which on SQLite reads before
    it writes in a deferred transaction: a commit in between refuses it at once (503,
    "database is locked"), and on a loaded machine one create was refused six times in a
    row, past the client's retries (two tests of one CI run).
    """
    async with get_client() as client:
        flow_runs = [
            await client.create_flow_run(cronium_event, parameters={"event": e, "input": i})
            for e, i in calls
        ]
    return list(
        await asyncio.gather(
            *(
                run_flow_run_here(cronium_event, run, {"event": event, "input": input})
                for run, (event, input) in zip(flow_runs, calls, strict=True)
            )
        )
    )


async def _logs(flow_run_id: str) -> list[str]:
    messages: list[str] = []
    async with get_client() as client:
        await follow_logs(client, flow_run_id, lambda log: messages.append(log.message), False)
    return messages


def logs_of(flow_run_id: str, finished: bool = True, timeout: float = 15) -> list[str]:
    """The run's log messages. Logs reach the API in batches after the run: with `finished`,
    wait until the flow's last message ("Finished in state ...") has arrived too."""
    deadline = time.monotonic() + timeout
    while True:
        messages = asyncio.run(_logs(flow_run_id))
        if not finished or any(m.startswith(FINISHED) for m in messages):
            return messages
        if time.monotonic() > deadline:
            raise AssertionError(f"the run's logs did not all arrive within {timeout} s")
        time.sleep(0.2)


def script_lines(flow_run_id: str) -> list[str]:
    """The script's own lines: `[stdout] ...`, or `[server stdout] ...` for remote runs."""
    return [m for m in logs_of(flow_run_id) if SCRIPT_LINE.match(m)]

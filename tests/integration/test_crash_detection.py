"""Prefect's crash automation, alone (the SIGKILL tests in test_worker_process.py drive it
with a real worker): a `cronium` run that goes silent is marked Crashed whether its
last word was a heartbeat or its start — a worker SIGKILLed within a second of starting a
run, before the engine's first heartbeat left its queue, left the run Running for ever
(found by the SIGKILL workflow test, once in three runs) — and a run whose heartbeats keep
coming is left alone, as is a silent run without the `cronium` tag."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Completed, Pending, Running

from cronium_prefect.flows.crash_detection import ensure_crash_detection
from cronium_prefect.names import CRONIUM_TAG
from cronium_prefect.settings import get_settings

CRASH_AFTER = 60  # the smallest CRONIUM_CRASH_AFTER


@flow(name="crash-probe")
def _probe() -> None:
    """Never run: its runs are only created and moved between states."""


def _heartbeat(run_id: str, tags: list[str]) -> dict:
    # What Prefect's flow engine sends (flow_engine._emit_flow_run_heartbeat).
    return {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(timezone.utc).isoformat(),
        "event": "prefect.flow-run.heartbeat",
        "resource": {"prefect.resource.id": f"prefect.flow-run.{run_id}"},
        "related": [
            {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
            for tag in tags
        ],
    }


@pytest.fixture
def crash_after(monkeypatch):
    monkeypatch.setenv("CRONIUM_CRASH_AFTER", str(CRASH_AFTER))
    get_settings.cache_clear()
    yield CRASH_AFTER
    monkeypatch.undo()
    get_settings.cache_clear()

    async def restore() -> None:  # the automation as a worker with the defaults makes it
        async with get_client() as client:
            await ensure_crash_detection(client)

    asyncio.run(restore())


def test_a_silent_run_is_crashed_after_a_heartbeat_or_its_start_and_a_live_one_is_not(
    prefect_api, crash_after
):
    async def scenario() -> dict[str, str]:
        async with get_client() as client, httpx.AsyncClient(base_url=prefect_api) as api:
            await ensure_crash_detection(client)

            async def started(tags: list[str]) -> str:
                run = await client.create_flow_run(_probe, tags=tags, state=Pending())
                await client.set_flow_run_state(run.id, Running(), force=True)
                return str(run.id)

            async def beat(run_id: str, tags: list[str]) -> None:
                sent = await api.post("/events", json=[_heartbeat(run_id, tags)])
                sent.raise_for_status()

            async def state(run_id: str) -> str:
                return (await client.read_flow_run(run_id)).state.name

            runs: dict[str, str] = {}
            try:
                runs["silent from its start"] = await started([CRONIUM_TAG])
                runs["silent after a heartbeat"] = await started([CRONIUM_TAG])
                runs["heartbeats every 10 s"] = await started([CRONIUM_TAG])
                runs["silent, not a cronium run"] = await started(["other"])
                await beat(runs["silent after a heartbeat"], [CRONIUM_TAG])
                # Until both silent runs are Crashed, then 10 s more: a wrong crash of
                # another run, which would land as late as these, is seen too.
                deadline, settled = time.monotonic() + crash_after + 90, None
                while time.monotonic() < deadline:
                    await beat(runs["heartbeats every 10 s"], [CRONIUM_TAG])
                    states = {case: await state(run_id) for case, run_id in runs.items()}
                    silent = (states["silent from its start"], states["silent after a heartbeat"])
                    if silent == ("Crashed", "Crashed"):
                        settled = settled or time.monotonic() + 10
                        if time.monotonic() >= settled:
                            break
                    await asyncio.sleep(10)
                return states
            finally:  # leave nothing Running on the session's server
                for run_id in runs.values():
                    await client.set_flow_run_state(run_id, Completed(), force=True)

    states = asyncio.run(scenario())
    assert states == {
        "silent from its start": "Crashed",
        "silent after a heartbeat": "Crashed",
        "heartbeats every 10 s": "Running",
        "silent, not a cronium run": "Running",
    }, states

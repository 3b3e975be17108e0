"""Several runs at once in one `cronium worker`: each runs on an event loop of its own, so a
run that blocks its loop (as Prefect's engine does at times) delays no other; and a slot
that frees up takes a waiting run at once instead of at the next poll."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

from prefect.client.orchestration import get_client

from cronium_prefect.flows.worker import LISTENING
from tests.cli import cronium
from tests.processes import stop, wait_until

from .test_apply import write_events

BLOCKER = """\
import time

from prefect import flow, get_run_logger


@flow(name="cronium-test-blocker")
async def blocker(seconds: float = 25) -> None:
    get_run_logger().info("blocking now")
    time.sleep(seconds)  # holds its event loop, as Prefect's engine does at times
"""


async def _run_of(deployment: str) -> str:
    async with get_client() as client:
        found = await client.read_deployment_by_name(deployment)
        return str((await client.create_flow_run_from_deployment(found.id)).id)


async def _state(run_id: str) -> str:
    async with get_client() as client:
        return (await client.read_flow_run(run_id)).state.type.value


async def _logged(run_id: str, text: str) -> bool:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
        )
    return any(text in log.message for log in logs)


def test_a_run_that_blocks_its_event_loop_delays_no_other(worker, tmp_path):
    folder = write_events(
        tmp_path / "e", {"q.yaml": "name: wc-quick\ntype: bash\noverlap: allow\nscript: echo hi\n"}
    )
    assert cronium("apply", str(folder)).returncode == 0
    (tmp_path / "blocker.py").write_text(BLOCKER)

    async def deploy_blocker() -> None:
        async with get_client() as client:
            flow_id = await client.create_flow_from_name("cronium-test-blocker")
            await client.create_deployment(
                flow_id=flow_id,
                name="blocker",
                entrypoint=f"{tmp_path / 'blocker.py'}:blocker",
                work_pool_name="cronium",
                work_queue_name="normal",
            )

    asyncio.run(deploy_blocker())
    blocked = asyncio.run(_run_of("cronium-test-blocker/blocker"))
    wait_until(lambda: asyncio.run(_logged(blocked, "blocking now")), 90, "the blocker starting")
    quick = asyncio.run(_run_of("cronium-event/wc-quick"))
    took = wait_until(
        lambda: asyncio.run(_state(quick)) in ("COMPLETED", "FAILED"), 60, "quick run"
    )
    print(f"\na run beside one blocking its loop for 25 s: done in {took:.1f} s")
    assert asyncio.run(_state(quick)) == "COMPLETED"
    assert asyncio.run(_state(blocked)) == "RUNNING", "the quick run waited for the blocker"
    wait_until(lambda: asyncio.run(_state(blocked)) == "COMPLETED", 60, "the blocker ending")


def test_a_freed_slot_takes_a_waiting_run_without_waiting_for_the_poll(
    prefect_api, docker_client, tmp_path
):
    # Its own pool (the module's worker serves `cronium`), polled every 120 s: only the
    # flow-run events and the freed slots can start these runs in time. Each run lasts
    # long enough for every run's Scheduled event to arrive while the slot is taken.
    env = {**os.environ, "CRONIUM_WORK_POOL": "wc-one-slot", "CRONIUM_WORKER_POLL_SECONDS": "120"}
    folder = write_events(
        tmp_path / "s",
        {
            "s.yaml": textwrap.dedent("""\
                name: wc-slot
                type: bash
                overlap: allow
                script: sleep 5
                """)
        },
    )
    assert cronium("apply", str(folder), env=env).returncode == 0
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "worker", "--limit", "1"],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_until(lambda: LISTENING in log.read_text(), 60, "the worker listening for new runs")

        async def three() -> list[str]:
            return list(await asyncio.gather(*(_run_of("cronium-event/wc-slot") for _ in "abc")))

        runs = asyncio.run(three())
        took = wait_until(
            lambda: all(asyncio.run(_state(r)) in ("COMPLETED", "FAILED") for r in runs),
            90,
            "three runs through one slot",
        )
    finally:
        stop(worker)
    print(f"\nthree 5 s runs through one slot, polled every 120 s: {took:.1f} s")
    assert [asyncio.run(_state(r)) for r in runs] == ["COMPLETED"] * 3, log.read_text()

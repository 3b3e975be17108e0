"""A workflow whose worker is killed mid-run (SIGKILL) is recovered like an event run: the
crash automation schedules the workflow run and the running step's run again, the next
worker resumes the workflow where it was, and the step that had succeeded is not run
again."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import docker
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

from cronium_prefect.executors.docker import RUN_LABEL
from cronium_prefect.flows.report import read_record
from cronium_prefect.names import STEP_TAG, WORKFLOW_TAG
from tests.cli import cronium
from tests.processes import stop, wait_until

from .test_apply import write_events
from .test_worker_process import CRASH_AFTER, _start_worker, _state


def _step_runs(step: str) -> list:
    async def read():
        async with get_client() as client:
            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    tags=FlowRunFilterTags(all_=[f"{WORKFLOW_TAG}wfc", f"{STEP_TAG}{step}"])
                )
            )

    return asyncio.run(read())


def test_a_workflow_resumes_after_its_worker_is_killed_without_rerunning_done_steps(
    prefect_api, private_dockerd, tmp_path
):
    docker_client = docker.DockerClient(base_url=private_dockerd.url)
    folder = write_events(
        tmp_path / "c",
        {
            "wfc.yaml": """\
            name: wfc-a
            type: bash
            status: active
            script: cronium_output '"from a"'
            ---
            name: wfc-b
            type: bash
            status: active
            retries: 1
            script: |
              echo started
              sleep 15
              cronium_output "$(cronium_input)"
            ---
            name: wfc-c
            type: bash
            status: active
            script: cronium_output "$(cronium_input)"
            ---
            kind: workflow
            name: wfc
            status: active
            steps:
              - {name: a, event: wfc-a}
              - {name: b, event: wfc-b, needs: [a]}
              - {name: c, event: wfc-c, needs: [b]}
            """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    log = tmp_path / "worker.log"
    first = _start_worker(log, DOCKER_HOST=private_dockerd.url)
    try:
        started = cronium("trigger", "wfc", "--json")
        assert started.returncode == 0, started.stderr
        run_id = json.loads(started.stdout)["run_id"]

        def b_running() -> bool:
            runs = _step_runs("b")
            return (
                bool(runs)
                and runs[0].state.is_running()
                and bool(
                    docker_client.containers.list(filters={"label": f"{RUN_LABEL}={runs[0].id}"})
                )
            )

        wait_until(b_running, 120, "step b running")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed_at = time.monotonic()
    second = _start_worker(log, DOCKER_HOST=private_dockerd.url)
    try:
        wait_until(
            lambda: _state(run_id) in ("COMPLETED", "FAILED", "CANCELLED"),
            CRASH_AFTER + 180,
            "the workflow run ending",
        )
    finally:
        stop(second)
    print(f"\nworkflow completed {time.monotonic() - killed_at:.0f} s after the kill")

    async def record_and_history():
        async with get_client() as client:
            states = [s.name for s in await client.read_flow_run_states(run_id)]
            return (await read_record(client, run_id)).to_json(), states

    record, history = asyncio.run(record_and_history())
    assert _state(run_id) == "COMPLETED", (history, log.read_text()[-3000:])
    assert "Crashed" in history and "AwaitingRetry" in history
    steps = {s["name"]: s for s in record["steps"]}
    assert [s["status"] for s in steps.values()] == ["SUCCESS"] * 3
    assert steps["c"]["output"] == "from a"
    (a_run,) = _step_runs("a")  # a ran once, and only once
    assert a_run.run_count == 1 and steps["a"]["run_ids"] == [str(a_run.id)]
    (b_run,) = _step_runs("b")  # b's one run: crashed, then run again by the automation
    assert b_run.run_count == 2
    assert len(_step_runs("c")) == 1

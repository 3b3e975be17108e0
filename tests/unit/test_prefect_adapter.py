"""The contract of cronium_prefect.prefect_adapter: what each shim relies on of Prefect's
non-public surface, checked against the installed Prefect (and a real server), so that an
upgrade that changes it fails here, by name."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone

import prefect
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.settings import PREFECT_WORKER_ENABLE_CANCELLATION, temporary_settings
from prefect.workers.base import BaseJobConfiguration, BaseVariables, BaseWorker, BaseWorkerResult

from cronium_prefect.blocks import CroniumVariable
from cronium_prefect.prefect_adapter import (
    ENGINE_LAST_LINE,
    InProcessSubmission,
    load_block_sync,
    loop_client,
    next_schedule_times,
    prefect_placeholders,
    run_flow_run_here,
    save_block_sync,
    shared_clients,
    worker_logger,
    worker_pool,
    worker_task_group,
)


def test_the_tested_prefect_is_the_one_declared():
    """pyproject.toml declares the range this contract was run on."""
    major, minor, *_ = (int(p) for p in prefect.__version__.split(".")[:3])
    assert (major, minor) == (3, 9), prefect.__version__


def test_blocks_load_and_save_synchronously_even_inside_a_running_loop(prefect_api):
    name = f"global--adapter-{uuid.uuid4().hex[:8]}"

    async def inside_a_loop():
        save_block_sync(CroniumVariable.of("ADAPTER_X", {"n": 1}), name, overwrite=True)
        return load_block_sync(CroniumVariable, name)

    loaded = asyncio.run(inside_a_loop())
    assert isinstance(loaded, CroniumVariable) and loaded.value == {"n": 1}


@flow(name="adapter-probe")
async def _probe(x: int) -> int:
    return x + 1


def test_an_existing_flow_run_runs_here_and_its_last_line_is_the_engines(prefect_api):
    async def go():
        async with get_client() as client:
            run = await client.create_flow_run(_probe, parameters={"x": 41})
            state = await run_flow_run_here(_probe, run, {"x": 41})
            return run.id, state, await state.result()

    run_id, state, result = asyncio.run(go())
    assert state.is_completed() and result == 42

    deadline = time.monotonic() + 30
    while not any(m.startswith(ENGINE_LAST_LINE) for m in asyncio.run(_run_logs(run_id))):
        assert time.monotonic() < deadline, "the engine's last line never arrived"
        time.sleep(0.2)
    assert asyncio.run(_run_logs(run_id))[-1].startswith(ENGINE_LAST_LINE)


async def _run_logs(run_id) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    async with get_client() as client:
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
            sort=LogSort.TIMESTAMP_ASC,
        )
    return [log.message for log in logs]


def test_one_client_per_context():
    async def go():
        async with shared_clients():
            shared = get_client() is get_client()
        async with loop_client():
            looped = get_client() is get_client()
        return shared, looped, get_client() is get_client()

    shared, looped, outside = asyncio.run(go())
    assert shared and looped and not outside


class _ProbeWorker(BaseWorker[BaseJobConfiguration, BaseVariables, BaseWorkerResult]):
    type = "cronium-adapter-probe"
    job_configuration = BaseJobConfiguration
    job_configuration_variables = BaseVariables

    async def run(self, flow_run, configuration, task_status=None):  # never called here
        raise AssertionError("not used")


def test_the_worker_internals_the_cronium_worker_reads(prefect_api):
    pool = f"adapter-probe-{uuid.uuid4().hex[:8]}"

    async def go():
        async with _ProbeWorker(work_pool_name=pool) as worker:
            group = worker_task_group(worker)
            await worker.sync_with_backend()
            read = worker_pool(worker)
            started = asyncio.Event()

            async def mark():
                started.set()

            group.start_soon(mark)
            await asyncio.wait_for(started.wait(), 10)
            return read, worker_logger(worker)

    read, logger = asyncio.run(go())
    assert read is not None and read.name == pool
    assert hasattr(logger, "warning") and hasattr(logger, "debug")


class _InProcessProbe(
    InProcessSubmission, BaseWorker[BaseJobConfiguration, BaseVariables, BaseWorkerResult]
):
    type = "cronium-adapter-in-process"
    job_configuration = BaseJobConfiguration
    job_configuration_variables = BaseVariables

    async def run(self, flow_run, configuration, task_status=None):  # never called here
        raise AssertionError("not used")

    async def run_in_process(self, flow_run, deployment, task_status):
        self.given.append((flow_run.id, deployment.id, self.limiter.available_tokens))
        if deployment.name == "broken":
            raise RuntimeError("no engine here")
        task_status.started(f"here:{flow_run.id}")
        if deployment.name == "failing":
            raise RuntimeError("the engine broke")


def test_a_run_is_started_in_process_through_baseworkers_own_bookkeeping(prefect_api):
    """What InProcessSubmission replaces and uses is still there (the scheduler hands
    `_submit_run` each run it took a slot for). With a real server: a run goes Pending,
    reaches `run_in_process` with its deployment, records its infrastructure id and gives
    its slot back; one that fails before it starts, or after, is Crashed and gives its slot
    back, the worker going on; one the server refuses Pending never reaches `run_in_process`. (A run
    whose deployment is gone between the poll and its start cannot be made here: deleting
    a deployment deletes its scheduled runs.)"""
    import inspect

    from prefect.states import Running

    for name in (
        "_submit_run",
        "_propose_pending_state",
        "_propose_crashed_state",
        "_mark_flow_run_as_cancelled",
        "_release_limit_slot",
    ):
        assert callable(getattr(BaseWorker, name)), name
    assert list(inspect.signature(BaseWorker._submit_run).parameters) == ["self", "flow_run"]
    assert "self._submit_run" in inspect.getsource(BaseWorker._submit_scheduled_flow_runs)

    pool = f"adapter-in-process-{uuid.uuid4().hex[:8]}"

    async def settle(worker, runs: int) -> int:
        for _ in range(100):  # each run handed over, and its slot back as it returned
            await worker.get_and_submit_flow_runs()
            if len(worker.given) >= runs and worker.limiter.available_tokens == 2:
                break
            await asyncio.sleep(0.1)
        return worker.limiter.available_tokens

    async def go():
        async with get_client() as client:
            flow_id = await client.create_flow_from_name("adapter-in-process")
            await client.create_work_pool(WorkPoolCreate(name=pool, type=_InProcessProbe.type))
            kept = await client.create_deployment(flow_id, "kept", work_pool_name=pool)
            broken = await client.create_deployment(flow_id, "broken", work_pool_name=pool)
            failing = await client.create_deployment(flow_id, "failing", work_pool_name=pool)
            runs = [
                (await client.create_flow_run_from_deployment(d)).id
                for d in (kept, broken, failing)
            ]
            # With Prefect's cancellation observer, as `cronium worker` runs: its set of
            # runs in flight is kept too.
            with temporary_settings({PREFECT_WORKER_ENABLE_CANCELLATION: True}):
                async with _InProcessProbe(work_pool_name=pool, limit=2) as worker:
                    worker.given = []
                    await worker.sync_with_backend()
                    assert worker._cancelling_observer is not None
                    free = await settle(worker, 3)
                    # The server refuses Pending to a run already running (elsewhere).
                    taken = await client.create_flow_run_from_deployment(kept)
                    await client.set_flow_run_state(taken.id, Running(), force=True)
                    worker.limiter.acquire_on_behalf_of_nowait(taken.id)  # as the poll does
                    await worker._submit_run(taken)
                    free_after_refusal = worker.limiter.available_tokens
            read = [await client.read_flow_run(r) for r in runs]
            return worker.given, free, free_after_refusal, read, kept, broken

    given, free, free_after_refusal, (run, failed, broke), kept, broken = asyncio.run(go())
    handed = {run_id: rest for run_id, *rest in given}
    assert handed.keys() == {run.id, failed.id, broke.id}, given  # not the one refused Pending
    assert handed[run.id][0] == kept and handed[failed.id][0] == broken
    assert all(free_then <= 1 for _, free_then in handed.values())  # each held a slot
    assert free == 2 and free_after_refusal == 2  # every slot given back
    assert run.state.type.value == "PENDING", run.state  # the probe starts no engine
    assert run.infrastructure_pid == f"here:{run.id}"
    assert failed.state.type.value == "CRASHED", failed.state
    assert "no engine here" in failed.state.message
    assert broke.state.type.value == "CRASHED", broke.state
    assert "the engine broke" in broke.state.message


def test_placeholders_prefect_deploy_would_fill():
    text = "hello {{ name }} and {{x}}, not {{ (name) }}"
    assert prefect_placeholders(text) == ["{{ name }}", "{{x}}"]


def test_next_times_from_the_schedulers_own_models():
    start = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    cron = asyncio.run(next_schedule_times({"cron": "0 3 * * *", "timezone": "UTC"}, start, 3))
    assert [d.isoformat() for d in cron] == [
        "2026-01-02T03:00:00+00:00",
        "2026-01-03T03:00:00+00:00",
        "2026-01-04T03:00:00+00:00",
    ]
    every = asyncio.run(
        next_schedule_times(
            {"interval": 900, "anchor_date": "2020-01-01T00:00:00Z", "timezone": "UTC"}, start, 2
        )
    )
    assert [d.isoformat() for d in every] == [
        "2026-01-01T12:00:00+00:00",
        "2026-01-01T12:15:00+00:00",
    ]


def test_a_poll_asks_for_as_many_runs_as_there_are_free_slots(prefect_api):
    """InProcessSubmission's `_get_scheduled_flow_runs`: 5 runs due, 2 free slots, 2 asked
    for; no free slot, none; the poll after a run was refused Pending, and a worker without
    a limit, ask for every due run (BaseWorker's own poll); a pool not made yet is no runs."""
    import inspect

    from prefect.states import Running

    assert "self._get_scheduled_flow_runs()" in inspect.getsource(
        BaseWorker.get_and_submit_flow_runs
    )
    pool = f"adapter-polls-{uuid.uuid4().hex[:8]}"

    async def go():
        async with get_client() as client:
            flow_id = await client.create_flow_from_name("adapter-polls")
            await client.create_work_pool(WorkPoolCreate(name=pool, type=_InProcessProbe.type))
            due = await client.create_deployment(flow_id, "due", work_pool_name=pool)
            for _ in range(5):
                await client.create_flow_run_from_deployment(due)
            seen = {}
            async with _InProcessProbe(work_pool_name=pool, limit=2) as worker:
                for attribute in ("_prefetch_seconds", "_work_pool_name", "_work_queues"):
                    assert hasattr(worker, attribute), attribute
                seen["two free"] = len(await worker._get_scheduled_flow_runs())
                worker.limiter.acquire_on_behalf_of_nowait("a")
                seen["one free"] = len(await worker._get_scheduled_flow_runs())
                worker._submitting_flow_run_ids.add("being-submitted")  # one more asked for
                seen["one free, one being submitted"] = len(await worker._get_scheduled_flow_runs())
                worker._submitting_flow_run_ids.discard("being-submitted")
                worker.limiter.acquire_on_behalf_of_nowait("b")
                polled = (await client.read_deployment(due)).last_polled
                seen["none free"] = len(await worker._get_scheduled_flow_runs())
                # Still a poll: what keeps the deployment Ready in Prefect's UI.
                seen["polled"] = (await client.read_deployment(due)).last_polled > polled
                worker.limiter.release_on_behalf_of("a")
                taken = await client.create_flow_run_from_deployment(due)
                await client.set_flow_run_state(taken.id, Running(), force=True)
                worker.limiter.acquire_on_behalf_of_nowait(taken.id)
                await worker._submit_run(taken)  # refused Pending: it is running elsewhere
                seen["after a refusal"] = len(await worker._get_scheduled_flow_runs())
                seen["the next"] = len(await worker._get_scheduled_flow_runs())
            async with _InProcessProbe(work_pool_name=pool) as unlimited:
                seen["no limit"] = len(await unlimited._get_scheduled_flow_runs())
            async with _InProcessProbe(work_pool_name=pool, limit=250) as large:
                seen["limit over the API's 200"] = len(await large._get_scheduled_flow_runs())
            async with _InProcessProbe(work_pool_name=pool + "-none", limit=2) as nowhere:
                seen["no pool"] = len(await nowhere._get_scheduled_flow_runs())
            return seen

    assert asyncio.run(go()) == {
        "two free": 2,
        "one free": 1,
        "one free, one being submitted": 2,
        "none free": 0,
        "polled": True,
        "after a refusal": 5,
        "the next": 1,
        "no limit": 5,
        "limit over the API's 200": 5,
        "no pool": 0,
    }

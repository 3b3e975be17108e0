"""Every use of a non-public Prefect name, in one place.

Each shim says why Prefect's public API does not do it. tests/unit/test_prefect_adapter.py
checks what each relies on, so that a Prefect upgrade that changes it fails there, loudly,
and not somewhere in a run. Nothing else in Cronium may use an underscored Prefect name,
`prefect._internal`, `prefect.server` or `prefect.flow_engine`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import logging

    import anyio.abc
    from prefect.blocks.core import Block
    from prefect.client.schemas.objects import FlowRun, WorkPool
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect.workers.base import BaseWorker

__all__ = [
    "ENGINE_LAST_LINE",
    "load_block_sync",
    "save_block_sync",
    "run_flow_run_here",
    "shared_clients",
    "loop_client",
    "worker_task_group",
    "worker_pool",
    "worker_logger",
    "InProcessSubmission",
    "prefect_placeholders",
    "next_schedule_times",
]

B = TypeVar("B", bound="Block")

# Prefect's engine logs this last for a flow run, after its final state is set, from the
# same process and queue as the run's other lines: once it is in, every line is. No API
# says "all logs of this run have arrived".
ENGINE_LAST_LINE = "Finished in state "


def load_block_sync(block_type: type[B], name: str) -> B:
    """`Block.load`, synchronously even where an event loop runs in this thread.

    Public `load` picks sync or async from the calling context (`async_dispatch`); callers
    here are threads and the CLI, some inside code that runs a loop. `_sync=True` is
    Prefect's own switch for that choice; there is no public one."""
    return block_type.load(name, _sync=True)  # type: ignore[return-value]


def save_block_sync(block: Block, name: str, overwrite: bool = False) -> Any:
    """`Block.save`, synchronously (see load_block_sync)."""
    return block.save(name, overwrite=overwrite, _sync=True)


async def run_flow_run_here(flow: Any, flow_run: FlowRun, parameters: dict[str, Any]) -> Any:
    """Run an existing flow run's engine in this process and return its final state.

    `cronium worker` runs flow runs in its own process (no interpreter per run). Prefect's
    public way, `Runner`/`serve`, starts a subprocess per run; `run_flow_async` from
    `prefect.flow_engine` is what that subprocess runs."""
    from prefect.flow_engine import run_flow_async

    return await run_flow_async(
        flow=flow, flow_run=flow_run, parameters=parameters, return_type="state"
    )


@contextlib.asynccontextmanager
async def shared_clients() -> AsyncIterator[None]:
    """One sync and one async API client for everything inside (a worker's lifetime).

    `get_client()` returns the context's client when there is one; otherwise each call
    makes a new client (~20 ms of TLS set-up, a new connection), several per run. The
    contexts are Prefect's own (`prefect.context`), not documented for this use."""
    from prefect.context import AsyncClientContext, SyncClientContext

    with SyncClientContext.get_or_create():
        async with AsyncClientContext.get_or_create():
            yield


@contextlib.asynccontextmanager
async def loop_client() -> AsyncIterator[None]:
    """An async API client for one event loop of the worker's (see run_loops): a client
    belongs to the loop that made it."""
    from prefect.context import AsyncClientContext

    async with AsyncClientContext.get_or_create():
        yield


def worker_task_group(worker: BaseWorker) -> anyio.abc.TaskGroup:
    """The worker's task group for run-related work: tasks started in it end with the
    worker (Prefect's own runs live there). BaseWorker has no public handle on it."""
    return worker._runs_task_group


def worker_pool(worker: BaseWorker) -> WorkPool | None:
    """The worker's work pool as last read from the API (None before the first sync).
    BaseWorker keeps it in `_work_pool`; there is no public accessor."""
    return worker._work_pool


def worker_logger(worker: BaseWorker) -> logging.Logger | logging.LoggerAdapter:
    """The worker's logger (named after the worker, shown in Prefect's worker logs).
    BaseWorker's subclasses in Prefect use `_logger`; there is no public accessor."""
    return worker._logger


# The most runs a poll may ask for: Prefect's API refuses a limit above its default limit
# (PREFECT_SERVER_API_DEFAULT_LIMIT, 200), which is also what BaseWorker's poll gets.
_MOST_RUNS_PER_POLL = 200


class InProcessSubmission:
    """For a BaseWorker whose flow runs execute in its own process: how a run it took is
    started, with three API calls instead of seven and one event instead of four.

    Prefect's `_submit_run` prepares a job for infrastructure elsewhere: it reads the
    deployment (to check it exists), proposes Pending, resolves a job configuration (the
    deployment again, the flow, the pool's template), gives the run the worker's labels,
    proposes Submitting, emits submitted and executed events, and records the
    infrastructure's id. A worker that runs the flow here needs the deployment once (it
    says which flow; the run reads it from the worker instead of asking again), Pending
    (the server's lock on the run: two workers never both take it) and the infrastructure
    id (Prefect's cancellation of a run not started yet goes through it). BaseWorker has
    no public hook between taking a run and running it, so this replaces `_submit_run`,
    keeping its bookkeeping (the submitting set, the cancellation observer, the slot);
    tests/unit/test_prefect_adapter.py pins each private name it uses.

    Its polls ask for as many runs as it has free slots (`_get_scheduled_flow_runs`, for
    which BaseWorker has no option either): BaseWorker asks for every due run (the
    endpoint's default limit, 200) and takes as many as it has slots; with 300 runs waiting
    one poll cost the server 0.40-0.46 CPU-s, against 0.12-0.20 s for 8 (bench/poll_cost.py),
    and a backlog is polled on every freed slot. A run the server refuses Pending (its
    deployment's concurrency) is rescheduled by the server's
    `deployments.concurrency_slot_wait_seconds` (30 s), past the worker's prefetch, so it
    hides nothing from the next poll; should that be set shorter, the poll after a refusal
    asks for every due run, as BaseWorker does.

    The worker defines `run_in_process(flow_run, deployment, task_status)`: it calls
    `task_status.started(infrastructure_id)` once the run is its own, then runs it."""

    _refused_since_poll = False  # a run was refused Pending since the last poll

    async def _get_scheduled_flow_runs(self) -> list[Any]:
        from datetime import datetime, timedelta, timezone

        import httpx
        from prefect.client.schemas.responses import WorkerFlowRunResponse

        worker: Any = self
        limiter, refused = worker._limiter, self._refused_since_poll
        self._refused_since_poll = False
        if limiter is None or refused:
            return await super()._get_scheduled_flow_runs()  # type: ignore[misc]
        # Runs still being submitted here are Scheduled until their Pending is accepted:
        # the server returns them too (BaseWorker skips them), so they are added; and 0
        # free slots still polls, as the poll is what keeps the pool's queues and
        # deployments Ready in Prefect's UI.
        wanted = int(limiter.available_tokens) + len(worker._submitting_flow_run_ids)
        if wanted >= _MOST_RUNS_PER_POLL:  # the endpoint refuses more (422)
            return await super()._get_scheduled_flow_runs()  # type: ignore[misc]
        before = datetime.now(timezone.utc) + timedelta(seconds=int(worker._prefetch_seconds))
        try:
            response = await worker.client.request(
                "POST",
                "/work_pools/{name}/get_scheduled_flow_runs",
                path_params={"name": worker._work_pool_name},
                json={
                    "work_queue_names": list(worker._work_queues),
                    "scheduled_before": before.isoformat(),
                    "limit": wanted,
                },
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:  # as BaseWorker: made on the next heartbeat
                return []
            raise
        return WorkerFlowRunResponse.model_validate_list(response.json())

    async def run_in_process(
        self, flow_run: FlowRun, deployment: DeploymentResponse | None, task_status: Any
    ) -> None:
        raise NotImplementedError

    async def _submit_run(self, flow_run: FlowRun) -> None:
        from prefect.exceptions import ObjectNotFound

        worker: Any = self
        log = worker.get_flow_run_logger(flow_run)
        # Once _run_here has the run, it gives the slot back as the run ends; if it never got
        # it (an error before, the task group closing), this does (twice is harmless).
        handed_over = False
        try:
            deployment = None
            if flow_run.deployment_id is not None:
                try:
                    deployment = await worker.client.read_deployment(flow_run.deployment_id)
                except ObjectNotFound:
                    await worker._mark_flow_run_as_cancelled(
                        flow_run,
                        state_updates={
                            "message": f"Deployment {flow_run.deployment_id} no longer "
                            "exists, cancelled run."
                        },
                    )
                    return
            if not await worker._propose_pending_state(flow_run):
                self._refused_since_poll = True
                return
            started = await worker._runs_task_group.start(self._run_here, flow_run, deployment)
            handed_over = True
            if isinstance(started, Exception):
                return
            try:
                await worker.client.update_flow_run(
                    flow_run_id=flow_run.id, infrastructure_pid=str(started)
                )
            except Exception:
                log.exception("could not record where it runs: it cannot be cancelled early")
            log.info(f"Flow run '{flow_run.name}' submitted to infrastructure")  # as Prefect's
        except Exception:  # the API failed past its client's retries: a later poll takes it
            log.exception("could not start flow run %s here", flow_run.id)
        finally:
            if not handed_over:
                worker._release_limit_slot(flow_run.id)
            worker._submitting_flow_run_ids.discard(flow_run.id)
            if worker._cancelling_observer is not None:
                worker._cancelling_observer.remove_in_flight_flow_run_id(flow_run.id)

    async def _run_here(
        self, flow_run: FlowRun, deployment: DeploymentResponse | None, task_status: Any
    ) -> None:
        worker: Any = self
        status = _Started(task_status)
        try:
            await self.run_in_process(flow_run, deployment, status)
        except Exception as exc:
            if not status.done:  # it failed before the run was its own
                task_status.started(exc)
                message = f"Failed to start the flow run here: {type(exc).__name__}: {exc}"
            else:  # nothing else will end it: no process of its own exits, no heartbeat stops
                worker.get_flow_run_logger(flow_run).exception("the flow run failed here")
                message = f"The flow run failed here: {type(exc).__name__}: {exc}"
            await worker._propose_crashed_state(flow_run, message)  # unless it has ended
        finally:
            worker._release_limit_slot(flow_run.id)


class _Started:
    """A task status that remembers whether it was given."""

    def __init__(self, status: Any):
        self.status, self.done = status, False

    def started(self, value: Any = None) -> None:
        self.done = True
        self.status.started(value)


def prefect_placeholders(text: str) -> list[str]:
    """The `{{ ... }}` placeholders `prefect deploy` would fill in `text`, found with the
    pattern its templating uses (`prefect.utilities.templating`, not a public API)."""
    from prefect.utilities.templating import PLACEHOLDER_CAPTURE_REGEX

    return [match[0] for match in PLACEHOLDER_CAPTURE_REGEX.findall(text)]


async def next_schedule_times(schedule: dict[str, Any], start: Any, n: int) -> list[Any]:
    """The next `n` times of a deployment schedule (its API JSON), from the schedule model
    Prefect's scheduler runs (`prefect.server.schemas`): the client's schedule models
    cannot compute dates, and a parser of ours could disagree with the scheduler."""
    from prefect.server.schemas import schedules

    if "cron" in schedule:
        model: Any = schedules.CronSchedule.model_validate(schedule)
    elif "interval" in schedule:
        model = schedules.IntervalSchedule.model_validate(schedule)
    else:
        model = schedules.RRuleSchedule.model_validate(schedule)
    return list(await model.get_dates(n=n, start=start))

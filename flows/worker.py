"""`cronium worker`: a Prefect worker (type `cronium`) that runs flow runs in its own process.

Prefect's default path starts a fresh interpreter per flow run (about 2 s of imports here)
and polls every 10 s. This worker keeps Prefect, Docker and SSH clients warm and runs each
flow run's engine in a thread of this process, on an event loop of its own (Prefect's
engine blocks its loop at times; see run_loops) — and polls every
`CRONIUM_WORKER_POLL_SECONDS` (default 1 s) — and at once when Prefect announces a new
run of its pool (a flow-run event). Everything else (work pool and queues,
priorities, concurrency limits, heartbeats, state proposals) is Prefect's BaseWorker.

Trade-off: a flow run that crashes the interpreter takes the worker's other runs with it.
If the worker dies (SIGKILL, host down), its runs stop sending heartbeats and Prefect
marks them Crashed (see crash_detection); a worker starting on the same host removes the
containers and run directories they left.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from typing import Any
from uuid import UUID

import anyio
import anyio.abc
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import DeploymentResponse, SetStateStatus
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter
from prefect.flows import load_flow_from_entrypoint
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY
from prefect.states import Cancelled, Crashed, Scheduled, State
from prefect.workers.base import BaseJobConfiguration, BaseVariables, BaseWorker, BaseWorkerResult

from cronium_prefect.prefect_adapter import (
    InProcessSubmission,
    run_flow_run_here,
    shared_clients,
    worker_logger,
    worker_pool,
    worker_task_group,
)

from .crash_detection import HEARTBEAT_SECONDS, STOPPED_MESSAGE, ensure_crash_detection
from .run_loops import RunHandle, RunLoops
from .runtime import Runtime, using_runtime
from .status import migrate_legacy_status

__all__ = ["CroniumWorker", "CroniumWorkerResult"]

CANCEL_GRACE_SECONDS = 10
CANCEL_POLL_SECONDS = 5
SCHEDULED = "prefect.flow-run.Scheduled"
CANCELLING = "prefect.flow-run.Cancelling"
# A run the worker took ahead of its time and gave back when it stopped.
UNSTARTED_MESSAGE = "Its worker stopped before its time: scheduled again for it."
# Logged each time the worker (re)subscribes to its pool's flow-run events: from then on a
# new run wakes it at once.
LISTENING = "listening for new and cancelled flow runs"


class CroniumWorkerResult(BaseWorkerResult):
    """How an in-process flow run ended (0: the engine reached a final state)."""


class CroniumWorker(
    InProcessSubmission, BaseWorker[BaseJobConfiguration, BaseVariables, CroniumWorkerResult]
):
    type = "cronium"
    job_configuration = BaseJobConfiguration
    job_configuration_variables = BaseVariables
    _description = "Runs Cronium event flow runs inside the worker process: no per-run start-up."
    _display_name = "Cronium"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._runs: dict[str, RunHandle] = {}  # the flow runs executing here, by id
        self.runtime = Runtime()  # docker, SSH pool, runs' scripts: closed at teardown
        # Heartbeats at Prefect's minimum interval: a run whose worker dies is marked
        # Crashed after CRONIUM_CRASH_AFTER seconds, not 3 x 180 s. Set once per run loop:
        # a settings copy per run cost ~40 ms of CPU.
        self._loops = RunLoops(
            CANCEL_GRACE_SECONDS, settings={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: HEARTBEAT_SECONDS}
        )
        self._background: list[anyio.CancelScope] = []  # the listener and poll loops
        self._crash_detection_ready = False
        self._cancelling: set[str] = set()
        self._due: dict[str, datetime] = {}  # runs taken ahead of their time, waiting for it
        self._wake: Callable[[], None] = lambda: None  # an event-driven poll, now
        self._full = False  # the last poll left no slot free: runs may be waiting

    async def setup(self) -> None:
        await super().setup()
        problem = await anyio.to_thread.run_sync(self.runtime.reap_leftovers)
        if problem:
            self.log.warning("Docker events cannot run here until this is fixed: %s", problem)
        # setup runs once per `async with worker`; a worker entered twice keeps one of each.
        self._stop_background()
        for loop in (self._poll_on_new_runs, self._poll_cancellations):
            scope = anyio.CancelScope()
            self._background.append(scope)
            worker_task_group(self).start_soon(loop, scope)

    async def sync_with_backend(self) -> None:
        """Prefect's sync (heartbeat) — and, until it has worked once, making sure the
        crashed-run automation exists; the worker starts even while that fails."""
        await super().sync_with_backend()
        if self._crash_detection_ready:
            return
        try:
            await ensure_crash_detection(self.client)
            migrated = await migrate_legacy_status(self.client)
            if migrated:
                self.log.info("events of an earlier version migrated: %s", ", ".join(migrated))
            self._crash_detection_ready = True
        except Exception as exc:
            self.log.warning(
                "crashed-run detection is not set up yet (will retry at the next sync): %s", exc
            )

    async def start(self, *args: Any, **kwargs: Any) -> None:
        # One API client for the worker, one per run loop, one sync client for all:
        # get_client() returns the context's, where each new client costs ~20 ms of TLS
        # set-up (Prefect loads the CA bundle even for http://) and a new connection. The
        # engine would make several per run.
        with using_runtime(self.runtime):
            async with shared_clients():
                await super().start(*args, **kwargs)

    @property
    def log(self) -> Any:
        return worker_logger(self)

    def _stop_background(self) -> None:
        for scope in self._background:
            scope.cancel()
        self._background.clear()

    async def teardown(self, *exc_info: Any) -> None:
        self._stop_background()
        try:
            with anyio.CancelScope(shield=True):  # the worker's task is being cancelled
                await self._stop_runs()
            await super().teardown(*exc_info)
        finally:
            self._loops.close()
            self.runtime.close()  # SSH connections, the Docker client

    async def _stop_runs(self) -> None:
        """The worker is stopping (Ctrl-C, SIGTERM) with runs executing: stop their scripts
        and mark them Crashed, as Prefect marks a run whose infrastructure went away (the
        retry automation starts it again when its event has retries). Left alone, they
        stayed Running until crash detection (CRONIUM_CRASH_AFTER) and their containers
        until the next worker reaped them. Runs taken ahead of their time and still waiting
        for it go back to Scheduled, at that time, for the next worker."""
        running = [key for key in self._runs if key not in self._cancelling]
        if not running:
            return
        self.runtime.stopping = True
        # Taken ahead of their time (and not being cancelled): they never start here. (Run
        # loops' threads remove a run from _due as its time comes: read each once.)
        waiting = {key: self._due.get(key) for key in running if not self._runs[key].cancelled}
        due = {key: when for key, when in waiting.items() if when is not None}
        for key in due:
            self._runs[key].cancel()
        started = [key for key in running if key not in due]
        self.log.warning(
            "worker stopping: stopping the scripts of %d run(s), handing back %d not due yet",
            len(started),
            len(due),
        )
        try:
            await self._end_runs(
                started, lambda: Crashed(message=STOPPED_MESSAGE), over_final=False
            )
            for key, when in due.items():  # for another worker to take, on time
                back = Scheduled(scheduled_time=when, message=UNSTARTED_MESSAGE)
                # Proposed: Prefect releases the run's deployment concurrency slot, and a
                # run cancelled meanwhile stays cancelled.
                await self.client.set_flow_run_state(key, back)
        except Exception as exc:
            self.log.warning("could not record how the stopped runs ended: %s", exc)

    async def _poll_on_new_runs(self, scope: anyio.CancelScope) -> None:
        """Poll as soon as a run of this pool is scheduled, or a slot frees up while runs
        wait — not at the next poll tick.

        Prefect emits `prefect.flow-run.Scheduled` (related to the work pool) when a run is
        created; this worker subscribes to those events and polls at once, so "run now"
        waits for an event's delivery instead of half a poll interval on average. Bursts
        collapse into one poll at a time. While every slot is taken such a poll could
        take nothing: it waits instead for the next run to end, which also polls while the
        last poll left no slot free (runs may be waiting; otherwise each freed slot idled
        until the next tick). The regular polling loop still runs: if the event stream is
        unavailable, runs are only picked up later, never lost.
        """
        wake, announced = anyio.Event(), False

        def on_scheduled() -> None:
            nonlocal announced
            announced = True
            wake.set()

        with scope:
            async with anyio.create_task_group() as group:
                self._wake = lambda: wake.set()  # the current `wake`
                group.start_soon(self._listen, on_scheduled)
                while True:
                    await wake.wait()
                    wake, retry, announced = anyio.Event(), announced, False
                    if self._no_free_slot():
                        self._full = True  # the next run to end polls
                        continue
                    # The event may arrive before the server's transaction is visible
                    # to the query: look again shortly when nothing was found.
                    for delay in (0, 0.2, 0.4) if retry else (0,):
                        await anyio.sleep(delay)
                        try:
                            if await self.get_and_submit_flow_runs():
                                break
                        except Exception as exc:  # the polling loop reports API errors
                            self.log.debug("event-driven poll failed: %s", exc)
                            break

    async def get_and_submit_flow_runs(self) -> list[FlowRun]:
        submitted = await super().get_and_submit_flow_runs()
        self._full = self._no_free_slot()
        return submitted

    def _no_free_slot(self) -> bool:
        try:
            return self.limiter.available_tokens < 1
        except RuntimeError:  # no limit (or not set up yet)
            return False

    async def _listen(self, wake: Callable[[], None]) -> None:
        while (pool := worker_pool(self)) is None:  # known after the first sync with the API
            await anyio.sleep(0.2)
        wanted = EventFilter(
            event=EventNameFilter(name=[SCHEDULED, CANCELLING]),
            any_resource=EventAnyResourceFilter(id=[f"prefect.work-pool.{pool.id}"]),
        )
        while True:
            try:
                async with get_events_subscriber(filter=wanted) as subscriber:
                    self.log.info(LISTENING)
                    async for event in subscriber:
                        if event.event == SCHEDULED:
                            wake()
                            continue
                        key = event.resource.id.removeprefix("prefect.flow-run.")
                        if key in self._runs:
                            worker_task_group(self).start_soon(self._cancel_running, key)
            except Exception as exc:
                self.log.debug("flow-run event stream lost (%s); reconnecting", exc)
            await anyio.sleep(5)

    async def run(
        self,
        flow_run: FlowRun,
        configuration: BaseJobConfiguration,
        task_status: anyio.abc.TaskStatus[Any] | None = None,
    ) -> CroniumWorkerResult:
        """Prefect's entry for a run submitted to this worker by hand (`flow.submit_to_work_pool`);
        runs the scheduler gives it start in `run_in_process`, through InProcessSubmission."""
        await self.run_in_process(flow_run, None, task_status)
        return CroniumWorkerResult(identifier=str(flow_run.id), status_code=0)

    async def run_in_process(
        self, flow_run: FlowRun, deployment: DeploymentResponse | None, task_status: Any
    ) -> None:
        key, handle = str(flow_run.id), RunHandle()
        try:
            flow = await self._flow_for(flow_run, deployment)
            loop = await self._loops.acquire()  # its own event loop: see run_loops
            if task_status is not None:
                # The "infrastructure" is this process; the flow run id tells runs apart.
                task_status.started(f"{socket.gethostname()}:{os.getpid()}:{flow_run.id}")
            self._runs[key] = handle
            await self._loops.run(loop, partial(self._when_due, flow, flow_run), handle)
        finally:
            self._runs.pop(key, None)
            self.runtime.deployments.pop(key, None)
            if self._full:  # its slot is free once this returns: take a waiting run
                self._wake()

    async def _when_due(self, flow: Any, flow_run: FlowRun) -> None:
        """The run's engine, on the run's loop, at the run's scheduled time. The worker takes
        runs up to its prefetch (twice CRONIUM_WORKER_POLL_SECONDS, at least 2 s) ahead, as
        Prefect's workers do to start a process or container in time; the server holds
        Running back until the scheduled time, but to the second: runs here started up to
        0.45 s early (a job at 03:00:00 could read the day before). Waiting here, the run
        can be cancelled (its handle) or handed back when the worker stops (_stop_runs)."""
        key, state = str(flow_run.id), flow_run.state
        due = state.state_details.scheduled_time if state and state.is_scheduled() else None
        if due is not None:
            self._due[key] = due
            try:
                await anyio.sleep(max(0.0, (due - datetime.now(timezone.utc)).total_seconds()))
            finally:
                self._due.pop(key, None)
        await run_flow_run_here(flow, flow_run, flow_run.parameters)

    async def _flow_for(self, flow_run: FlowRun, deployment: DeploymentResponse | None) -> Any:
        from .deploy import ENTRYPOINT, WORKFLOW_ENTRYPOINT
        from .event_flow import cronium_event
        from .workflow_flow import cronium_workflow

        if flow_run.deployment_id is None:
            return cronium_event
        if deployment is None:
            deployment = await self.client.read_deployment(flow_run.deployment_id)
        self.runtime.deployments[str(flow_run.id)] = deployment  # the run reads it from here
        if deployment.entrypoint in (None, ENTRYPOINT):
            return cronium_event
        if deployment.entrypoint == WORKFLOW_ENTRYPOINT:
            self._give_slot_back(flow_run)
            return cronium_workflow
        return await anyio.to_thread.run_sync(load_flow_from_entrypoint, deployment.entrypoint)

    def _give_slot_back(self, flow_run: FlowRun) -> None:
        """A workflow run waits for its steps' runs, which need this worker's slots: if it
        kept one, as many workflows as slots would wait forever for steps that cannot
        start. It costs no more than a waiting coroutine, so it runs outside the limit."""
        try:
            self.limiter.release_on_behalf_of(flow_run.id)
        except RuntimeError:  # no limit, or not held
            return
        self._wake()

    async def _cancel_running(self, key: str) -> None:
        """Cancel a run executing here. Prefect's worker only cancels runs that have not
        started (a started one is left to the runner process that would supervise it), and
        runs here have no such process: kill the run's scripts, give its flow a moment to
        record what happened, stop it, then mark it Cancelled."""
        if key in self._cancelling:
            return
        self._cancelling.add(key)
        try:
            self.log.info("cancelling flow run %s: stopping its scripts", key)
            await self._end_runs(
                [key],
                lambda: Cancelled(message="Cancelled: its scripts were stopped."),
                over_final=True,  # the user asked: Cancelled, whatever the flow wrote last
            )
        finally:
            self._cancelling.discard(key)

    async def _end_runs(
        self, keys: list[str], final: Callable[[], State], over_final: bool
    ) -> None:
        """Kill the scripts of these runs, give their flows a moment to record what
        happened (each ends by itself once its scripts stop), stop what is left, then set
        the runs' state to `final()`. A run whose scripts were killed here gets `final()`
        whatever its flow wrote after the kill; so does every run when `over_final`. Any
        other run (its scripts had already ended) keeps a final state it reached by itself:
        its flow ended just before its slot was given back (forcing `final()` over it
        turned a Completed run Crashed when the worker stopped at that moment). The
        server decides that, atomically (see `end_run`)."""
        keys = [key for key in keys if not await self._is_final(key)]
        # containers killed / remote process groups killed
        killed = {key for key in keys if self.runtime.cancel_run(key)}
        for key in keys:  # one still waiting for its time never starts
            if key in self._due and (handle := self._runs.get(key)) is not None:
                handle.cancel()
        with anyio.move_on_after(CANCEL_GRACE_SECONDS):
            while any(key in self._runs for key in keys):
                await anyio.sleep(0.1)
        for key in keys:
            handle = self._runs.get(key)
            if handle is not None:  # e.g. waiting between retries
                handle.cancel()
            await end_run(self.client, key, final(), over_final or key in killed)

    async def _is_final(self, key: str) -> bool:
        state = (await self.client.read_flow_run(UUID(key))).state
        return state is not None and state.is_final()

    async def _poll_cancellations(self, scope: anyio.CancelScope) -> None:
        """The fallback for a missed Cancelling event: look at this worker's runs."""
        with scope:
            while True:
                await anyio.sleep(CANCEL_POLL_SECONDS)
                running = list(self._runs)
                if not running:
                    continue
                try:
                    found = await self.client.read_flow_runs(
                        flow_run_filter=FlowRunFilter(
                            id=FlowRunFilterId(any_=running),
                            state=FlowRunFilterState(
                                type=FlowRunFilterStateType(any_=[StateType.CANCELLING])
                            ),
                        )
                    )
                except Exception as exc:
                    self.log.debug("cancellation poll failed: %s", exc)
                    continue
                for run in found:
                    worker_task_group(self).start_soon(self._cancel_running, str(run.id))

    async def kill_infrastructure(
        self,
        infrastructure_pid: str,
        configuration: BaseJobConfiguration,
        grace_seconds: int = 30,
    ) -> None:
        """Called by Prefect for a run cancelled before it started here: stop it if it did."""
        flow_run_id = infrastructure_pid.rsplit(":", 1)[-1]
        self.runtime.cancel_run(flow_run_id)
        handle = self._runs.get(flow_run_id)
        if handle is not None:
            handle.cancel()


async def serve(pool: str, limit: int, name: str | None = None) -> None:
    """Make sure the pool and its priority queues exist, then work until interrupted."""
    from prefect.client.orchestration import get_client

    from .deploy import ensure_pool

    async with get_client() as client:
        await ensure_pool(client, pool)
    await CroniumWorker(work_pool_name=pool, limit=limit, name=name).start()


async def end_run(client: PrefectClient, key: str, state: State, over_final: bool) -> str:
    """Set a run's state as a worker ends it; the name of the state it has after. Without
    `over_final` the state is proposed, not forced: Prefect's orchestration refuses to
    leave a final state, so a run that ended meanwhile keeps its own, whatever the timing."""
    result = await client.set_flow_run_state(key, state, force=over_final)
    if result.status == SetStateStatus.ACCEPT:
        return state.name or state.type.value
    current = (await client.read_flow_run(UUID(key))).state
    return current.name if current is not None else "?"

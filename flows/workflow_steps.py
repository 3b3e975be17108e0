"""Running a workflow's steps: each a linked run of its event's deployment.

A step starts once the plan (core/workflow_plan.py) says so and a slot is free (the
workflow's `max_parallel`, and the step's own for its for_each items). Its runs are runs
of the event's deployment (step_runs.py), so each runs on its event's pool with the
event's retries, timeout and record, and shows as a subflow of the workflow's run in
Prefect's UI. When one ends, one query looks at every running step; a finished run's
record gives its output.

Each run is started with an idempotency key made of the workflow run and the step (and
item): when a workflow run is started again after its worker died, starting a step again
finds the run started before, finished or not, instead of running it twice.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import anyio
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Cancelling

from cronium_prefect.caps import cap_text, json_size
from cronium_prefect.errors import CroniumError
from cronium_prefect.event import EventStatus
from cronium_prefect.names import RETRYABLE_TAG, STEP_TAG, WORKFLOW_TAG, Trigger
from cronium_prefect.record import RunRecord, RunStatus, StepRecord, StepStatus, WorkflowRecord
from cronium_prefect.workflow import Step, Workflow
from cronium_prefect.workflow_plan import Plan

from .deploy import retried
from .report import RECORD_BYTES
from .resolve import deployment_name
from .runtime import current_runtime
from .status import deployed_status
from .step_runs import POLL_SECONDS, create_step_run, read_records, read_runs, step_run_ends
from .workflow_inputs import step_inputs

__all__ = ["StepRunner", "WorkerStopping"]

# How long a stopped workflow waits for its steps' runs to end: within the worker's grace
# for a cancelled run (worker.CANCEL_GRACE_SECONDS), so that it records how they ended.
CANCEL_WAIT_SECONDS = 6.0
# How long a crashed step run of an event with retries is given to be scheduled again.
CRASH_RETRY_WAIT_SECONDS = 60.0


class WorkerStopping(Exception):
    """The worker running the workflow is stopping: the workflow run ends here, its steps'
    runs go on, and the crash automation starts it again to follow them."""


@dataclass
class _Item:
    """One run of a step: the step's only one, or one for_each item's."""

    step: str
    index: int
    input: Any
    run_id: str | None = None
    record: RunRecord | None = None  # its record, without what the step does not keep
    state: Any = None  # its final Prefect state
    started: float = 0.0
    ended: float = 0.0
    cancelled: bool = False  # stopped by this workflow (fail_fast, cancel, timeout)
    crashed_at: float = 0.0  # when it was first seen Crashed


@dataclass
class _StepRuns:
    items: list[_Item] = field(default_factory=list)
    started: float | None = None


class StepRunner:
    def __init__(
        self,
        client: PrefectClient,
        workflow: Workflow,
        record: WorkflowRecord,
        input: Any,
        key: str,
        logger: logging.Logger,
        cancel: threading.Event,
    ):
        self.client = client
        self.workflow = workflow
        self.record = record
        self.input = input
        self.key = key  # the idempotency keys' prefix: this run (and how often retried)
        self.log = logger
        self.cancel = cancel
        self.plan = Plan(workflow, record)
        self.queue: list[_Item] = []  # items waiting for a slot, in start order
        self.running: dict[str, _Item] = {}  # by flow run id
        self.steps: dict[str, _StepRuns] = {s.name: _StepRuns() for s in workflow.steps}
        self._deployments: dict[str, Any] = {}
        self._stop_wanted = False

    async def run(self) -> None:
        """Until every step has ended (or the workflow is cancelled: see `halt`)."""
        async with step_run_ends(self.workflow.name, self.running.__contains__, self.log) as ends:
            while True:
                if self.cancel.is_set():
                    if current_runtime().stopping:
                        raise WorkerStopping  # its steps go on; the run is resumed later
                    await self.halt("the workflow run was cancelled")
                    return
                await self._decide()
                if self._stop_wanted:
                    self._stop_wanted = False
                    await self._stop_running("a step failed (fail_fast)")
                await self._launch()
                if not self.running and not self.queue:
                    if self.plan.done:
                        return
                    self._decide_stuck()
                    continue
                woken = await ends()
                if not await self._collect() and woken:
                    # Prefect publishes the event inside the transaction that ends the run:
                    # it may not be readable yet. Look again soon, not at the fallback's.
                    await anyio.sleep(POLL_SECONDS)
                    await self._collect()

    async def halt(self, why: str) -> None:
        """Start nothing more, stop the running steps' runs and wait for them to end."""
        self.plan.halted = True
        self._drop_queue()
        await self._stop_running(why)
        with anyio.move_on_after(CANCEL_WAIT_SECONDS):
            while self.running:
                await anyio.sleep(POLL_SECONDS)
                await self._collect()
        for item in list(self.running.values()):
            self.log.warning("step %s: its run %s had not ended", item.step, item.run_id)
            item.cancelled, item.ended = True, time.monotonic()
            self._maybe_finish(item.step)
        self.running.clear()
        self._apply_decisions()

    # -- deciding -------------------------------------------------------------------

    async def _decide(self) -> None:
        while True:
            decisions = self.plan.decide()
            if not decisions:
                return
            for decision in decisions:
                failed_before = self.plan.failed
                step = self.record.step(decision.step.name)
                if decision.status == StepStatus.RUNNING:
                    await self._begin(decision.step)
                else:
                    step.status, step.error = decision.status, decision.reason or None
                    self.log.info("step %s: %s (%s)", step.name, step.status.value, decision.reason)
                if self.plan.failed != failed_before:
                    break  # a failure changes what the rest may do: decide again

    def _apply_decisions(self) -> None:
        for decision in self.plan.decide():  # halted: only NOT_STARTED
            step = self.record.step(decision.step.name)
            step.status, step.error = decision.status, decision.reason or None

    def _decide_stuck(self) -> None:
        """Nothing runs and nothing is decided: a step waits on what will never end. The
        model forbids cycles, so this is a bug; end them rather than wait forever."""
        for step in self.record.steps:
            if not step.status.ended:
                step.status, step.error = StepStatus.NOT_STARTED, "nothing it needs can end"

    async def _begin(self, step: Step) -> None:
        record = self.record.step(step.name)
        record.status = StepStatus.RUNNING
        try:
            await self._check_event(record.event)
            inputs = await step_inputs(self.workflow, self.record, self.input, step)
        except CroniumError as exc:
            self._fail_step(record, cap_text(str(exc)))
            return
        runs = self.steps[step.name]
        runs.started = time.monotonic()
        runs.items = [_Item(step.name, i, value) for i, value in enumerate(inputs)]
        if step.for_each is not None:
            record.items = len(inputs)
        if not inputs:  # for_each over an empty list: nothing to do, done
            record.status, record.output = StepStatus.SUCCESS, []
            self.log.info("step %s: SUCCESS (for_each over no items)", step.name)
            return
        self.queue.extend(runs.items)

    async def _check_event(self, event: str) -> None:
        """A step of an event that is gone, paused or archived fails here, clearly."""
        if event not in self._deployments:
            try:
                self._deployments[event] = await self.client.read_deployment_by_name(
                    deployment_name(event)
                )
            except ObjectNotFound:
                raise CroniumError(f"event {event!r} does not exist (deleted?)") from None
        deployment = self._deployments[event]
        status = deployed_status(deployment.paused, deployment.tags)
        if status != EventStatus.active:
            raise CroniumError(f"event {event!r} is {status.value}: its step cannot run")

    # -- starting -------------------------------------------------------------------

    async def _launch(self) -> None:
        """Start queued runs while slots are free, all at once (each start is a few API
        calls: one after another, parallel steps would start that much apart)."""
        chosen: list[_Item] = []
        for item in list(self.queue):
            if len(self.running) + len(chosen) >= self.workflow.max_parallel:
                break
            if self._has_slot(item.step, chosen):
                chosen.append(item)
                self.queue.remove(item)
        # Shielded: a run created while the workflow is being stopped must be known here,
        # or it would start after the workflow ended.
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as group:
                for item in chosen:
                    group.start_soon(self._start, item)

    def _has_slot(self, step: str, chosen: list[_Item]) -> bool:
        limit = self.workflow.step(step).max_parallel or self.workflow.max_parallel
        busy = [i for i in [*self.running.values(), *chosen] if i.step == step]
        return len(busy) < limit

    async def _start(self, item: _Item) -> None:
        step = self.record.step(item.step)
        deployment = self._deployments[step.event]  # read as the step began (_check_event)
        key = f"{self.key}:{item.step}:{item.index}"
        item.started = time.monotonic()
        try:
            # Tried again while SQLite is locked (503): the idempotency key makes a run
            # that was created before the answer was lost the one returned.
            run = await retried(
                lambda: create_step_run(
                    self.client,
                    deployment,
                    UUID(self.record.run_id),
                    key,
                    parameters={"input": item.input, "trigger": Trigger.WORKFLOW.value},
                    tags=[
                        Trigger.WORKFLOW.tag,
                        f"{WORKFLOW_TAG}{self.workflow.name}",
                        f"{STEP_TAG}{item.step}",
                    ],
                    task_name=f"step {item.step}",
                )
            )
        except Exception as exc:  # the API refused or is down: this step fails, clearly
            item.ended = time.monotonic()
            item.state = Cancelled(message=f"could not start its run: {exc}")
            self._item_ended(item)
            return
        item.run_id = str(run.id)
        step.run_ids.append(item.run_id)
        self.running[item.run_id] = item
        where = f" item {item.index}" if self.workflow.step(item.step).for_each is not None else ""
        self.log.info("step %s%s: started %s (flow run %s)", item.step, where, step.event, run.id)

    # -- watching -------------------------------------------------------------------

    async def _collect(self) -> int:
        """Take the ended runs off `running`; how many ended."""
        if not self.running:
            return 0
        runs = {str(r.id): r for r in await read_runs(self.client, list(self.running))}
        ended: dict[str, Any] = {}
        for key, item in self.running.items():
            run = runs.get(key)
            if run is None:  # deleted in Prefect meanwhile: it will never end
                ended[key] = Cancelled(message=f"its run {key} was deleted")
            elif run.state is None or not run.state.is_final():
                item.crashed_at = 0.0
            elif not self._may_run_again(item, run.state):
                ended[key] = run.state
        records = await read_records(self.client, list(ended))
        for key, state in ended.items():
            item = self.running.pop(key)
            item.state, item.ended, item.record = state, time.monotonic(), records[key]
            self._item_ended(item)
        return len(ended)

    def _item_ended(self, item: _Item) -> None:
        if not self._item_ok(item) and not item.cancelled:
            self._failed()
        self._maybe_finish(item.step)

    def _failed(self) -> None:
        """A run or a step failed: under fail_fast, the first failure stops the rest."""
        if self.plan.failed:
            return
        self.plan.failed = True
        if self.workflow.on_failure == "fail_fast":
            self._drop_queue()
            self._stop_wanted = True  # the run loop stops the running steps' runs

    def _may_run_again(self, item: _Item, state: Any) -> bool:
        """A crashed run of an event with retries is scheduled again by the crash
        automation (crash_detection) moments later: not its end yet, for a while."""
        if state.type != StateType.CRASHED:
            return False
        event = self.record.step(item.step).event
        if RETRYABLE_TAG not in (self._deployments[event].tags or []):
            return False
        item.crashed_at = item.crashed_at or time.monotonic()
        return time.monotonic() - item.crashed_at < CRASH_RETRY_WAIT_SECONDS

    @staticmethod
    def _item_ok(item: _Item) -> bool:
        return item.record is not None and item.record.status == RunStatus.SUCCESS

    def _maybe_finish(self, name: str) -> None:
        runs = self.steps[name]
        if any(not i.ended for i in runs.items):
            return
        step = self.record.step(name)
        if step.status.ended:
            return
        records = [i.record for i in runs.items]
        single = self.workflow.step(name).for_each is None
        outputs = [r.output if r else None for r in records]
        step.output = outputs[0] if single else outputs
        step.condition = all(r is not None and r.condition for r in records)
        step.attempts = sum(r.attempts for r in records if r)
        step.duration_s = round(max(i.ended for i in runs.items) - (runs.started or 0), 3)
        bad = [i for i in runs.items if not self._item_ok(i)]
        size = json_size(step.output)
        if not bad and size > RECORD_BYTES:
            step.output = None  # what its downstream steps would get, and the record keep
            self._fail_step(
                step,
                f"its outputs are {size} bytes of JSON together, over the limit of "
                f"{RECORD_BYTES} a step's output may have in a workflow (its runs' records "
                "keep them)",
            )
            return
        if not bad:
            step.status = StepStatus.SUCCESS
        elif all(i.cancelled for i in bad):
            step.status = StepStatus.CANCELLED
            step.error = "stopped: " + (bad[0].state.message if bad[0].state else "")
        else:
            first = next(i for i in bad if not i.cancelled)
            self._fail_step(step, self._error_of(first, single))
            return
        self.log.info("step %s: %s in %.1f s", name, step.status.value, step.duration_s)

    def _error_of(self, item: _Item, single: bool) -> str:
        where = "" if single else f"item {item.index}: "
        if item.record is not None:
            return cap_text(f"{where}{item.record.status.value}: {item.record.error or ''}")
        message = item.state.message if item.state is not None else "?"
        return cap_text(f"{where}{message}")

    def _fail_step(self, step: StepRecord, error: str) -> None:
        step.status, step.error = StepStatus.FAILURE, error
        self.log.error("step %s: FAILURE: %s", step.name, error)
        self._failed()

    # -- stopping -------------------------------------------------------------------

    def _drop_queue(self) -> None:
        """Items not started yet never will: a step none of whose items started is
        NOT_STARTED; one partly started ends CANCELLED or FAILURE once its runs end."""
        for item in self.queue:
            item.cancelled, item.ended = True, time.monotonic()
            item.state = Cancelled(message="not started: the workflow stopped")
        steps = {i.step for i in self.queue}
        self.queue.clear()
        for name in steps:
            if not self.record.step(name).run_ids:
                step = self.record.step(name)
                step.status, step.error = StepStatus.NOT_STARTED, "the workflow stopped"
            else:
                self._maybe_finish(name)

    async def _stop_running(self, why: str) -> None:
        """Cancel the running steps' runs: a run not picked up yet at once, a running one
        through its worker (Cancelling: it stops the run's scripts)."""
        if not self.running:
            return
        runs = await read_runs(self.client, list(self.running))
        stopped = 0
        for run in runs:
            if run.state is None or run.state.is_final():
                continue
            state = (
                Cancelled(message=why)
                if run.state.type == StateType.SCHEDULED
                else Cancelling(message=why)
            )
            # Not forced: Prefect refuses to move a run that ended meanwhile, which then
            # keeps its own end (forced, a finished run went back to Cancelling for good).
            result = await retried(
                lambda run=run, state=state: self.client.set_flow_run_state(run.id, state)
            )
            if result.status == SetStateStatus.ACCEPT:
                self.running[str(run.id)].cancelled = True
                stopped += 1
        self.log.warning("stopped %d running step run(s): %s", stopped, why)

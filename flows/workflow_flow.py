"""The `cronium-workflow` flow: one workflow run, from definition to final state.

Async, like the event flow. The steps run as linked runs of their events (see
workflow_steps); this flow keeps the record, stops the steps when the run is cancelled or
times out, and afterwards publishes the record and runs the workflow's actions as an
event's are.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import anyio
from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Crashed, State

from cronium_prefect.caps import cap_text, check_input
from cronium_prefect.errors import CroniumError, EventNotFound
from cronium_prefect.names import WORKFLOW_FLOW_NAME, Trigger
from cronium_prefect.record import RunStatus, StepRecord, StepStatus, WorkflowRecord
from cronium_prefect.workflow import Workflow
from cronium_prefect.workflow_plan import final_status

from .actions import run_actions
from .crash_detection import RETRY_MESSAGE, STOPPED_MESSAGE
from .deploy import writer_client
from .event_flow import begin_record, final_state
from .report import RECORD_BYTES, publish_run_artifacts, read_record
from .resolve import deployment_name, validated
from .runtime import current_runtime
from .workflow_steps import StepRunner, WorkerStopping

__all__ = ["cronium_workflow", "resolve_workflow", "MAX_CRASHES"]

MAX_CRASHES = 3  # times a workflow run is resumed after its worker died


async def resolve_workflow(workflow: Workflow | str | dict[str, Any]) -> Workflow:
    if isinstance(workflow, Workflow):
        return workflow
    source = "the flow's workflow parameter"
    if isinstance(workflow, str):
        name = deployment_name(workflow, WORKFLOW_FLOW_NAME)
        source = f"deployment {name}"
        async with get_client() as client:
            try:
                deployment = await client.read_deployment_by_name(name)
            except ObjectNotFound:
                raise EventNotFound(f"no workflow named {workflow!r}") from None
        workflow = (deployment.parameters or {}).get("workflow")
    return validated(workflow, source, Workflow)


@flow(
    name=WORKFLOW_FLOW_NAME,
    persist_result=True,
    result_serializer="json",
    validate_parameters=True,
    description="Runs one Cronium workflow: its steps as linked runs of their events.",
)
async def cronium_workflow(
    workflow: Workflow | str,
    input: Any = None,
    trigger: Trigger | None = None,
    retry_of: str | None = None,
) -> State:
    """Run `workflow` (a definition, or the name of a deployed workflow) with `input`;
    with `retry_of`, reuse the outputs of the steps that succeeded in that run."""
    started = datetime.now(timezone.utc)
    logger = get_run_logger()
    record, flow_run = begin_record(WorkflowRecord, input, trigger, started)
    run_id = record.run_id
    definition, cancelled = None, threading.Event()
    runtime = current_runtime()
    runtime.running[run_id] = cancelled  # the worker's cancel sets it (runtime.cancel_run)
    try:
        definition = await resolve_workflow(workflow)
        record.event = definition.name
        check_input(input, runtime.settings.input_limit, "the run's input")
        record.steps = [StepRecord(s.name, definition.event_of(s)) for s in definition.steps]
        async with writer_client() as client:  # steps start at once: SQLite may be locked
            if retry_of:
                await _reuse(client, record, retry_of)
            key = f"cronium-workflow:{run_id}:{await _restarts(client, flow_run)}"
            runner = StepRunner(client, definition, record, input, key, logger, cancelled)
            try:
                with anyio.move_on_after(definition.timeout) as deadline:
                    await runner.run()
            except WorkerStopping:
                logger.warning("the worker is stopping: this run is resumed later")
                return Crashed(message=STOPPED_MESSAGE)  # what the worker records anyway
            except Exception as exc:  # stop the steps, and keep a record
                with anyio.CancelScope(shield=True):
                    await runner.halt(f"the workflow run failed: {exc!r}")
                if isinstance(exc, CroniumError):
                    raise
                logger.exception("the workflow run failed")  # a bug of ours
                raise CroniumError(f"internal error: {exc!r}") from None
            except BaseException:  # this flow is being stopped: stop its steps unless the
                if not runtime.stopping:  # worker is (then they go on, to be resumed)
                    with anyio.CancelScope(shield=True):
                        await runner.halt("the workflow run was stopped")
                raise
            if deadline.cancelled_caught:
                with anyio.CancelScope(shield=True):
                    await runner.halt(f"the workflow timed out after {definition.timeout:g} s")
        record.status = _status(definition, record, cancelled, deadline.cancelled_caught)
        if record.status == RunStatus.TIMEOUT:
            record.error = f"timed out after {definition.timeout:g} s"
        elif record.status != RunStatus.SUCCESS:
            record.error = _first_error(record)
        sinks = set(definition.sinks())
        record.output = {s.name: s.output for s in record.steps if s.name in sinks}
        record.attempts = sum(s.attempts for s in record.steps)
        record.condition = all(s.condition for s in record.steps if s.name in sinks)
    except CroniumError as exc:
        record.error = cap_text(str(exc))
        logger.error("%s", record.error)
    finally:
        runtime.running.pop(run_id, None)
    record.make_safe([])  # each step's output was masked by its own run: this caps errors
    record.fit(RECORD_BYTES)  # 1,000 items of 1 MiB each must not make a 1 GB record
    ended = datetime.now(timezone.utc)
    record.end_time = ended.isoformat()
    record.duration_s = round((ended - started).total_seconds(), 3)
    if definition is not None:
        try:
            await publish_run_artifacts(record)
        except Exception as exc:  # the run's state and result still hold the record
            logger.error("could not store the run's record artifacts: %s", exc)
        if definition.actions and record.status != RunStatus.CANCELLED:
            await run_actions(definition, record, [], logger)
    if record.status == RunStatus.CANCELLED:
        return Cancelled(data=record.to_json(), message="the workflow run was cancelled")
    return final_state(record)


def _status(
    definition: Workflow, record: WorkflowRecord, cancelled: threading.Event, timed_out: bool
) -> RunStatus:
    if cancelled.is_set():
        return RunStatus.CANCELLED
    if timed_out:
        return RunStatus.TIMEOUT
    return final_status(definition, record.steps)


def _first_error(record: WorkflowRecord) -> str | None:
    failed = [s for s in record.steps if s.status.fell_short]
    if not failed:
        return None
    names = ", ".join(f"{s.name} {s.status.value}" for s in failed)
    first = next((s for s in failed if s.status == StepStatus.FAILURE), failed[0])
    return cap_text(f"steps {names}; {first.name}: {first.error or first.status.value}")


async def _reuse(client: Any, record: WorkflowRecord, retry_of: str) -> None:
    """`cronium retry --failed`: the steps that succeeded in `retry_of` keep their output
    and do not run again."""
    from uuid import UUID

    try:
        earlier = await read_record(client, UUID(retry_of))
    except (ValueError, ObjectNotFound):
        earlier = None
    if not isinstance(earlier, WorkflowRecord) or earlier.event != record.event:
        raise CroniumError(f"retry_of {retry_of!r}: not a run of workflow {record.event!r}")
    # A step whose output the record could not keep runs again: its note is no output.
    done = {
        s.name: s for s in earlier.steps if s.status == StepStatus.SUCCESS and not s.output_left_out
    }
    for step in record.steps:
        if step.name in done:
            kept = done[step.name]
            step.status, step.output, step.condition = (
                StepStatus.SUCCESS,
                kept.output,
                kept.condition,
            )
            step.run_ids, step.items = kept.run_ids, kept.items
            step.reused_from = kept.reused_from or retry_of


async def _restarts(client: Any, flow_run: Any) -> int:
    """How often this run was started again by hand (Prefect's Retry): each such start
    runs its steps again. A start after its worker died (the crash automation) does not:
    it finds the runs its steps already had; after MAX_CRASHES of those it gives up (a
    workflow that kills its worker every time must not loop forever)."""
    if flow_run is None or flow_run.run_count <= 1:
        return 0
    history = await client.read_flow_run_states(flow_run.id)
    retries = [s for s in history if s.name == "AwaitingRetry"]
    crashes = sum(1 for s in retries if s.message == RETRY_MESSAGE)
    if crashes > MAX_CRASHES:
        raise CroniumError(
            f"the worker running it stopped {crashes} times; a workflow run is started again "
            f"after at most {MAX_CRASHES}"
        )
    return len(retries) - crashes

"""The `cronium-event` flow: one event run, from resolved definition to final Prefect state.

Async on purpose: a sync flow pays about a second per run for joining Prefect's heartbeat
thread. The blocking executor runs in a worker thread; its lines go to the run logger.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, TypeVar

import anyio
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext, TaskRunContext
from prefect.states import Cancelled, Completed, Failed, State
from prefect.tasks import exponential_backoff

from cronium_prefect.blocks.ssh_server import SSHServer
from cronium_prefect.blocks.variable_store import get_variable_store
from cronium_prefect.caps import cap_text, check_input
from cronium_prefect.errors import CroniumError, RunFailed
from cronium_prefect.event import Event, EventType, RunLocation
from cronium_prefect.executors.base import ExecutionResult
from cronium_prefect.names import WEBHOOK_TAG, Trigger, tag_value
from cronium_prefect.record import RunRecord, RunStatus
from cronium_prefect.variables import Visible

from .actions import run_actions
from .crash_detection import RETRY_MESSAGE
from .limits import enforce_max_executions, max_executions_reached
from .outcome import fill_record
from .report import publish_run_artifacts
from .request_events import run_http, run_tool
from .resolve import FLOW_NAME, resolve_event
from .runtime import current_runtime
from .script import ScriptRun, run_on_target

__all__ = ["cronium_event", "final_state", "begin_record", "FLOW_NAME"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _NoEmptyTraceback(logging.Filter):
    """Prefect logs a returned Failed state with exc_info=True and no exception in flight,
    which prints a stray "NoneType: None" under every failed attempt; drop that part."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is None:
            record.exc_info = None
        return True


logging.getLogger("prefect.task_runs").addFilter(_NoEmptyTraceback())


@task(name="run-script", persist_result=False, cache_policy=NO_CACHE)
async def _attempt(run: ScriptRun) -> State:
    """One attempt on every target still without success, in parallel.

    Results are kept on `run` (same process), so states carry only a message; a returned
    Failed state lets Prefect retry without a traceback, and a retry reruns only the
    targets that failed.
    """
    task_context = TaskRunContext.get()
    run.attempt = task_context.task_run.run_count if task_context else 1
    targets = run.pending()
    # What the run's earlier attempts saved, for all of this attempt's targets alike.
    variables = run.variables.with_writes(dict(run.written))

    async def on(target: str) -> None:
        try:
            run.results[target] = await anyio.to_thread.run_sync(
                run_on_target, run, run.attempt, target, variables
            )
        except Exception as exc:  # a bug of ours must still leave a record behind
            run.log.exception("internal error running on %s", target)
            run.results[target] = ExecutionResult(error=f"internal error: {exc!r}")

    async with anyio.create_task_group() as group:
        for target in targets:
            group.start_soon(on, target)
    failed = [t for t in targets if not run.results[t].succeeded]
    if failed:
        return Failed(message=cap_text("; ".join(f"{t}: {run.results[t].error}" for t in failed)))
    return Completed()


@flow(
    name=FLOW_NAME,
    persist_result=True,
    result_serializer="json",
    validate_parameters=True,
    description="Runs one Cronium event (a script in Docker or over SSH, HTTP, a message).",
)
async def cronium_event(
    event: Event | str,
    input: Any = None,
    trigger: Trigger | None = None,
    chain: list[str] | None = None,
) -> State:
    """Run `event` (a definition, or the name of a deployed event) with `input`.

    `chain` lists the events whose run_event actions led here (set by those actions).
    """
    started = _now()
    logger = get_run_logger()
    record, flow_run = begin_record(RunRecord, input, trigger, started)
    deployment, variables, secrets = None, None, set()
    try:
        definition = await resolve_event(event)
        record.event = definition.name
        try:  # as the CLI checks it; Prefect's UI and API send what they are given
            check_input(input, current_runtime().settings.input_limit, "the run's input")
        except CroniumError:
            record.input = None  # refused, so not stored again in the record
            raise
        deployment = await _deployment_of(flow_run) if definition.max_executions else None
        if await max_executions_reached(definition, deployment):
            message = f"max_executions ({definition.max_executions}) reached: not run"
            logger.warning("%s", message)
            return Cancelled(message=message)
        crashes = await _earlier_crashes(flow_run, definition, logger)
        # Read once: the script, HTTP templates and messages all see these.
        variables = await anyio.to_thread.run_sync(
            get_variable_store().visible, definition.owner, definition.variables
        )
        secrets.update(variables.secret_values)
        written = await _run(
            definition, input, record, flow_run, logger, definition.retries - crashes, variables
        )
        variables = variables.with_writes(written)  # what messages see: the run's writes too
        secrets.update(variables.secret_values)  # a secret's new value, and its old one
    except CroniumError as exc:
        record.error = cap_text(str(exc))
        logger.error("%s", record.error)
    record.make_safe(sorted(secrets))  # what a script or an HTTP server returned may hold one
    ended = _now()
    record.end_time = ended.isoformat()
    record.duration_s = round((ended - started).total_seconds(), 3)
    if record.event != "?":
        try:
            await publish_run_artifacts(record)
        except Exception as exc:  # the run's state and result still hold the record
            logger.error("could not store the run's record artifacts: %s", exc)
        if deployment is not None:
            await enforce_max_executions(definition, deployment, logger)
        if definition.actions:
            await run_actions(definition, record, chain or [], logger, variables)
    return final_state(record)


async def _deployment_of(flow_run: Any) -> Any:
    """The run's deployment: as its worker read it to start the run, else read now."""
    if flow_run is None or flow_run.deployment_id is None:
        return None
    handed_over = current_runtime().deployments.get(str(flow_run.id))
    if handed_over is not None:
        return handed_over
    async with get_client() as client:
        return await client.read_deployment(flow_run.deployment_id)


async def _earlier_crashes(flow_run: Any, definition: Event, logger: logging.Logger) -> int:
    """How often the crash automation scheduled this run again (see crash_detection): each
    time spends one of the event's retries, which bounds the loop of a run that kills its
    worker every time. A start by hand (Prefect's Retry button) spends none."""
    if flow_run is None or flow_run.run_count <= 1:
        return 0  # the first start (Running counts it: 1 now): no history to read
    async with get_client() as client:
        history = await client.read_flow_run_states(flow_run.id)
    crashes = sum(1 for s in history if s.name == "AwaitingRetry" and s.message == RETRY_MESSAGE)
    if not crashes:
        return 0
    if definition.run_location == RunLocation.local:
        # A dead worker's container may still run the last attempt: not two at once.
        await anyio.to_thread.run_sync(current_runtime().reap_leftovers)
    if crashes > definition.retries:
        raise CroniumError(
            f"the worker running it stopped {crashes} time(s); the event's retries "
            f"({definition.retries}) are used up"
        )
    logger.warning(
        "started again after its worker stopped (crash %d; %d of %d retries left after this)",
        crashes,
        definition.retries - crashes,
        definition.retries,
    )
    return crashes


async def _run(
    definition: Event,
    input: Any,
    record: RunRecord,
    flow_run: Any,
    logger: logging.Logger,
    retries: int,
    variables: Visible,
) -> dict[str, Any]:
    """Run it and fill `record`; returns the variables the run wrote."""
    if definition.type == EventType.http:
        await run_http(definition, input, record, logger, variables)
        return {}
    if definition.type == EventType.tool:
        await run_tool(definition, input, record, logger, variables)
        return {}
    runtime = current_runtime()
    settings = runtime.settings
    run = ScriptRun(
        event=definition,
        input=input,
        run_id=record.run_id,
        trigger=record.trigger,
        deployment_id=str(flow_run.deployment_id) if flow_run and flow_run.deployment_id else None,
        start_time=record.start_time,
        variables=variables,
        store=get_variable_store(),
        log=logger,
        settings=settings,
        runtime=runtime,
        servers={name: await _load_server(name) for name in definition.servers},
        pool=flow_run.work_pool_name if flow_run else None,
    )
    with run:  # reachable by cancel_run while it executes
        if retries:
            delays = exponential_backoff(settings.retry_backoff)(retries)
            attempt = _attempt.with_options(retries=retries, retry_delay_seconds=delays)
            await attempt(run, return_state=True)
        else:
            # Nothing to retry: skip the task run's three API calls (~30 ms of a ~0.4 s run).
            await _attempt.fn(run)
    if not run.results:  # the task never ran (e.g. cancelled before it started)
        raise CroniumError("the run ended before the script started")
    record.attempts = run.attempt
    fill_record(record, {t: run.results[t] for t in run.targets}, single=len(run.targets) == 1)
    return run.written


async def _load_server(name: str) -> SSHServer:
    try:
        return await SSHServer.aload(name)
    except ValueError:
        raise CroniumError(
            f"server {name!r} does not exist: no cronium-ssh-server block named {name!r} "
            "(add it with `cronium server add`)"
        ) from None


def final_state(record: RunRecord) -> State:
    data = record.to_json()
    if record.status == RunStatus.SUCCESS:
        return Completed(data=data, message="SUCCESS")
    if record.status == RunStatus.PARTIAL:
        return Completed(data=data, name="Partial", message=record.error)
    # Failed runs carry an exception, so `state.result()` raises something meaningful.
    if record.status == RunStatus.TIMEOUT:
        return Failed(data=RunFailed(record), name="TimedOut", message=record.error)
    return Failed(data=RunFailed(record), message=record.error or "FAILURE")


R = TypeVar("R", bound=RunRecord)


def begin_record(
    kind: type[R], input: Any, trigger: Trigger | None, started: datetime
) -> tuple[R, Any]:
    """The record of the run this flow is (FAILURE until it says otherwise), and the
    flow run: how it was started (a scheduled run is Prefect's auto-scheduled one) and,
    for a webhook's, which hook (the front door tags the run it starts)."""
    context = FlowRunContext.get()
    flow_run = context.flow_run if context else None
    if trigger is None:
        trigger = Trigger.SCHEDULE if flow_run and flow_run.auto_scheduled else Trigger.API
    hook = tag_value(flow_run.tags if flow_run else (), WEBHOOK_TAG)
    record = kind(
        event="?",
        run_id=str(flow_run.id) if flow_run else "local",
        status=RunStatus.FAILURE,
        trigger=trigger,
        webhook=hook if trigger == Trigger.WEBHOOK else None,
        input=input,
        start_time=started.isoformat(),
    )
    return record, flow_run

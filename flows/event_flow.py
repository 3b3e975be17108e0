"""The `cronium-event` flow: one event run, from resolved definition to final Prefect state.

Async on purpose: a sync flow pays about a second per run for joining Prefect's heartbeat
thread. The blocking executor runs in a worker thread; its lines go to the run logger.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import anyio
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.states import Completed, Failed, State
from prefect.tasks import exponential_backoff

from cronium_prefect.errors import CroniumError, ExecutorError, RunFailed
from cronium_prefect.event import Event, RunLocation
from cronium_prefect.executors.base import ExecutionResult
from cronium_prefect.record import RunRecord, RunStatus, ServerResult
from cronium_prefect.settings import get_settings
from cronium_prefect.variables import Visible, get_variable_store

from .report import publish_run_artifact
from .resolve import FLOW_NAME, resolve_event
from .script import ScriptRun, run_script_attempt

__all__ = ["cronium_event", "FLOW_NAME"]


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
    """One attempt; a returned Failed state lets Prefect retry without a traceback.

    The attempt's result is kept on `run` (same process), so states carry only a message.
    """
    task_context = TaskRunContext.get()
    attempt = task_context.task_run.run_count if task_context else 1
    run.attempt = attempt
    try:
        run.result = await anyio.to_thread.run_sync(run_script_attempt, run, attempt)
    except ExecutorError as exc:
        run.result = ExecutionResult(error=str(exc))
        run.log.error("%s", exc)
    if not run.result.succeeded:
        return Failed(message=run.result.error or run.result.status)
    return Completed()


@flow(
    name=FLOW_NAME,
    persist_result=True,
    result_serializer="json",
    validate_parameters=True,
    description="Runs one Cronium event (a script in Docker or over SSH, HTTP, a message).",
)
async def cronium_event(event: Event | str, input: Any = None, trigger: str | None = None) -> State:
    """Run `event` (a definition, or the name of a deployed event) with `input`."""
    started = _now()
    logger = get_run_logger()
    context = FlowRunContext.get()
    flow_run = context.flow_run if context else None
    run_id = str(flow_run.id) if flow_run else "local"
    if trigger is None:
        trigger = "schedule" if flow_run and flow_run.auto_scheduled else "api"
    record = RunRecord(
        event="?",
        run_id=run_id,
        status=RunStatus.FAILURE,
        trigger=trigger,
        input=input,
        start_time=started.isoformat(),
    )
    try:
        definition = await resolve_event(event)
        record.event = definition.name
        await _run(definition, input, record, flow_run, logger)
    except CroniumError as exc:
        record.error = str(exc)
        logger.error("%s", exc)
    ended = _now()
    record.end_time = ended.isoformat()
    record.duration_s = round((ended - started).total_seconds(), 3)
    if record.event != "?":
        await publish_run_artifact(record)
    return _final_state(record)


async def _run(
    definition: Event, input: Any, record: RunRecord, flow_run: Any, logger: logging.Logger
) -> None:
    if not definition.is_script or definition.run_location == RunLocation.remote:
        kind = "remote" if definition.is_script else definition.type.value
        raise CroniumError(f"{kind} events are not supported by this version yet")
    settings = get_settings()
    store = get_variable_store()
    visible: Visible = await anyio.to_thread.run_sync(store.visible, definition.owner)
    run = ScriptRun(
        event=definition,
        input=input,
        run_id=record.run_id,
        trigger=record.trigger,
        deployment_id=str(flow_run.deployment_id) if flow_run and flow_run.deployment_id else None,
        start_time=record.start_time,
        variables=visible,
        store=store,
        log=logger,
        settings=settings,
    )
    if definition.retries:
        delays = exponential_backoff(settings.retry_backoff)(definition.retries)
        attempt = _attempt.with_options(retries=definition.retries, retry_delay_seconds=delays)
        await attempt(run, return_state=True)
    else:
        # Nothing to retry: skip the task run's three API calls (~30 ms of a ~0.4 s run).
        await _attempt.fn(run)
    result = run.result
    if result is None:  # the task never ran (e.g. cancelled before it started)
        raise CroniumError("the run ended before the script started")
    record.attempts = run.attempt
    record.status = RunStatus(result.status)
    record.exit_code = result.exit_code
    record.error = result.error
    record.output = result.collected.output
    record.condition = result.collected.condition
    record.setup_s = round(result.setup_s, 3)
    record.execution_s = round(result.execution_s, 3)
    record.log_lines = result.lines
    record.variables_written = sorted(result.collected.variables)
    record.servers = [ServerResult("local", record.status, result.exit_code, result.error)]


def _final_state(record: RunRecord) -> State:
    data = record.to_json()
    if record.status == RunStatus.SUCCESS:
        return Completed(data=data, message="SUCCESS")
    if record.status == RunStatus.PARTIAL:
        return Completed(data=data, name="Partial", message=record.error)
    # Failed runs carry an exception, so `state.result()` raises something meaningful.
    if record.status == RunStatus.TIMEOUT:
        return Failed(data=RunFailed(data), name="TimedOut", message=record.error)
    return Failed(data=RunFailed(data), message=record.error or "FAILURE")

"""A workflow step's runs in Prefect: created as subflow runs of the workflow's run, their
ends heard as Prefect's flow-run events, their states and records read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import anyio
from prefect import Task
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter
from prefect.states import Pending

from cronium_prefect.names import WORKFLOW_TAG
from cronium_prefect.record import RunRecord

from .deploy import retried
from .report import read_record

__all__ = ["POLL_SECONDS", "create_step_run", "read_records", "read_runs", "step_run_ends"]

POLL_SECONDS = 0.2  # how often the running steps are looked at without flow-run events
# With them, a step's run ending wakes the workflow at once; it looks anyway this often,
# in case an event was missed.
FALLBACK_POLL_SECONDS = 1.0
SUBSCRIBE_SECONDS = 5.0  # how long subscribing may take before polling alone is chosen
CLOSE_SECONDS = 2.0  # how long closing the event stream may take at the workflow's end
RECORD_READS = 8  # records of ended runs read at once
# Flow-run events that are not a run's end: the workflow needs no wake for them.
_NOT_ENDS = [f"prefect.flow-run.{s}" for s in ("Scheduled", "Pending", "Running", "Cancelling")]


async def create_step_run(
    client: PrefectClient,
    deployment: Any,
    workflow_run_id: UUID,
    key: str,
    parameters: dict[str, Any],
    tags: list[str],
    task_name: str,
) -> FlowRun:
    """A run of `deployment` as a subflow of the workflow's run: what `run_deployment`
    does, without reading the deployment again (the step has just read it). A task run of
    the workflow's run stands for the step in its graph, parent of the event's run; both
    are idempotent by `key` (the same task run and flow run are returned for it)."""
    task = Task(name=task_name, fn=_never_run, version=deployment.version)
    task.task_key = f"cronium-workflow-step.{task_name}"  # one per step, not per function
    link = await client.create_task_run(
        task=task, flow_run_id=workflow_run_id, dynamic_key=key, state=Pending()
    )
    return await client.create_flow_run_from_deployment(
        deployment.id,
        parameters=parameters,
        idempotency_key=key,
        parent_task_run_id=link.id,
        tags=tags,
    )


def _never_run() -> None:
    """The step's task is never run: it only links the event's run to the workflow's."""


@asynccontextmanager
async def step_run_ends(
    workflow: str,
    running: Callable[[str], bool],
    log: logging.Logger | logging.LoggerAdapter,
) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
    """What a workflow awaits between looks at its running steps: the next end of one of
    its running step runs (`running(flow_run_id)`), heard as Prefect's flow-run events
    (as the worker is woken for new runs), or at most FALLBACK_POLL_SECONDS; True when
    an event woke it. Without the event stream, POLL_SECONDS and False."""
    wanted = EventFilter(
        event=EventNameFilter(prefix=["prefect.flow-run."], exclude_name=_NOT_ENDS),
        any_resource=EventAnyResourceFilter(id=[f"prefect.tag.{WORKFLOW_TAG}{workflow}"]),
    )
    subscriber = None
    try:
        with anyio.fail_after(SUBSCRIBE_SECONDS):
            subscriber = await get_events_subscriber(filter=wanted).__aenter__()
    except Exception as exc:  # no event stream: polling alone finds every end
        log.debug("no flow-run events (%s): looking every %s s", exc, POLL_SECONDS)
    if subscriber is None:
        yield _poll
        return
    # The subscriber's next event is awaited by a task of its own that is never cancelled
    # half-way: cancelling `__anext__` during one of its reconnects (connect, auth, send
    # the filter) would leave a socket that never hears anything again.
    pending: asyncio.Future[Any] | None = None
    lost = False

    async def next_end() -> bool:
        nonlocal pending, lost
        if lost:
            return await _poll()
        deadline = anyio.current_time() + FALLBACK_POLL_SECONDS
        while (left := deadline - anyio.current_time()) > 0:
            pending = pending or asyncio.ensure_future(subscriber.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=left)
            if not done:
                return False
            ended, pending = pending, None
            try:
                event = ended.result()
            except Exception as exc:  # lost for good: poll from now on
                log.debug("flow-run events lost (%s): looking every %s s", exc, POLL_SECONDS)
                lost = True
                return False
            # Another run of this workflow's, or one heard before (the subscriber replays
            # the last minute when it connects): no reason to look.
            if running(event.resource.id.removeprefix("prefect.flow-run.")):
                return True
        return False

    try:
        yield next_end
    finally:
        with anyio.move_on_after(CLOSE_SECONDS, shield=True):
            try:
                if pending is not None:
                    pending.cancel()
                    await asyncio.gather(pending, return_exceptions=True)
                await subscriber.__aexit__(None, None, None)
            except Exception as exc:  # closing is best effort: the run's end matters more
                log.debug("closing the flow-run event stream: %s", exc)


async def _poll() -> bool:
    await anyio.sleep(POLL_SECONDS)
    return False


async def read_runs(client: PrefectClient, keys: list[str]) -> list[FlowRun]:
    """The flow runs of these ids, in one request."""
    ids = [UUID(key) for key in keys]
    return await retried(
        lambda: client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
        )
    )


async def read_records(client: PrefectClient, keys: list[str]) -> dict[str, RunRecord | None]:
    """The records of these ended runs, without what a step does not keep; a few at once
    (for_each items end together; each record is a request of its own, up to 16 MiB).
    Shielded: read whole, or the caller would not know which runs it has taken."""
    records: dict[str, RunRecord | None] = {}
    failed: list[Exception] = []
    limit = anyio.CapacityLimiter(RECORD_READS)

    async def read(key: str) -> None:
        async with limit:
            if failed:
                return
            try:
                records[key] = _slim(await retried(lambda: read_record(client, UUID(key))))
            except Exception as exc:  # raised as itself below, not in an ExceptionGroup
                failed.append(exc)

    with anyio.CancelScope(shield=True):
        async with anyio.create_task_group() as group:
            for key in keys:
                group.start_soon(read, key)
    if failed:
        raise failed[0]
    return records


def _slim(record: RunRecord | None) -> RunRecord | None:
    """What a step keeps of its run's record: 1,000 items' servers' outputs (each also in
    the record's output) would only take memory."""
    if record is not None:
        record.servers, record.input = [], None
    return record

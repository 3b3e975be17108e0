"""Conditional actions, run after every event run whose trigger fires (core/triggers.py).

- `send_message`: the subject and message are rendered here (sandboxed Jinja2), then a
  `cronium-message` subflow delivers them through the named Prefect notification block,
  retrying with Prefect task retries. Every message is recorded — a table artifact
  `cronium-msg-<event>` on the run that fired it, and a Prefect event
  `cronium.message.sent` or `cronium.message.failed` that automations can act on.
- `run_event`: the target's deployment is started with this run's output as its input
  (`run_deployment`, so it runs where that event runs and is linked as a subflow);
  `delay` schedules it for later instead of holding a worker slot. The chain of events
  travels with the runs, and a chain longer than CRONIUM_CHAIN_LIMIT stops with an error.

An action that fails is logged and recorded; it never changes the status of the run that
fired it.
"""

from __future__ import annotations

import inspect
import re
from contextlib import nullcontext
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_table_artifact
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.events import emit_event
from prefect.settings import PREFECT_UI_URL
from prefect.states import Completed, Failed, State
from prefect.tasks import exponential_backoff
from prefect.types import SecretDict
from pydantic import BaseModel, SecretStr

from cronium_prefect.blocks.documents import NOTIFIERS, read_documents
from cronium_prefect.blocks.variable_store import get_variable_store
from cronium_prefect.caps import cap_text, check_input
from cronium_prefect.errors import ActionFailed, CroniumError
from cronium_prefect.event import Action, Event, SendMessage, ToolMessage
from cronium_prefect.names import (
    MESSAGE_FLOW_NAME,
    Trigger,
    message_event,
    messages_artifact_key,
)
from cronium_prefect.record import RunRecord
from cronium_prefect.settings import get_settings
from cronium_prefect.templates import template_context
from cronium_prefect.triggers import fires
from cronium_prefect.variables import Visible, mask_secrets

from .delivery import Delivery, DeliveryStatus
from .resolve import deployment_name
from .runtime import current_runtime

__all__ = [
    "run_actions",
    "cronium_message",
    "deliver",
    "message_context",
    "record_deliveries",
]

Logger = Any  # a logging.Logger, or the run logger adapter Prefect gives a flow


async def find_notification_block(name: str) -> str:
    """`type-slug/name` of the notification block called `name` (any type)."""
    async with get_client() as client:
        named = {"block_documents": {"name": {"any_": [name]}}}
        documents = await read_documents(client, {**named, **NOTIFIERS})
    notifiers = [doc["block_type"]["slug"] for doc in documents]
    if not notifiers:
        raise ActionFailed(
            f"no notification block named {name!r} (create one in Prefect's UI under "
            "Blocks: Slack, Discord, webhook, or cronium-email)"
        )
    if len(notifiers) > 1:
        raise ActionFailed(
            f"several notification blocks are named {name!r} ({', '.join(sorted(notifiers))});"
            " rename one"
        )
    return f"{notifiers[0]}/{name}"


@task(name="deliver-message", persist_result=False, cache_policy=NO_CACHE)
async def _deliver(block_ref: str, subject: str | None, message: str) -> None:
    block = await Block.aload(block_ref)
    # Prefect's apprise blocks only log a failed send unless asked to raise.
    guard = block.raise_on_failure() if isinstance(block, NotificationBlock) else nullcontext()
    try:
        with guard:
            sent = block.notify(message, subject)
            if inspect.isawaitable(sent):  # async_dispatch'ed blocks return a coroutine here
                await sent
    except Exception as exc:
        # The error may quote what the block's secrets were rendered into (a webhook URL
        # with its token): Prefect logs and stores what this task raises, so mask them.
        text = mask_secrets(f"{type(exc).__name__}: {exc}", _secret_values(block))
        raise ActionFailed(text) from None


def _secret_values(value: Any) -> list[str]:
    """Every secret a block holds (SecretStr fields, SecretDict values), at any depth."""
    found: list[str] = []
    if isinstance(value, SecretStr):
        found.append(value.get_secret_value())
    elif isinstance(value, SecretDict):
        found += [str(v) for v in _leaves(value.get_secret_value())]
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found += _secret_values(getattr(value, name, None))
    elif isinstance(value, dict | list | tuple):
        for item in value.values() if isinstance(value, dict) else value:
            found += _secret_values(item)
    return [text for text in found if len(text) >= 4]  # shorter ones would mask words


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


@flow(name=MESSAGE_FLOW_NAME, persist_result=False)
async def cronium_message(
    block: str, subject: str | None, message: str, event: str, run_id: str, action: str
) -> State:
    """Deliver one message through a notification block, with retries, and record it."""
    settings = get_settings()
    retries = settings.message_retries
    delays = exponential_backoff(settings.retry_backoff)(retries) if retries else 0
    error: str | None = None
    attempts = 0
    try:
        block_ref = await find_notification_block(block)
        deliver = _deliver.with_options(retries=retries, retry_delay_seconds=delays)
        state = await deliver(block_ref, subject, message, return_state=True)
        attempts = await _attempts(state)
        if not state.is_completed():
            error = await _error_of(state)
    except CroniumError as exc:
        error = str(exc)
    except Exception as exc:  # the API, mid-delivery: still a recorded failure
        error = f"{type(exc).__name__}: {exc}"
    delivery = Delivery(
        event=event,
        run_id=run_id,
        action=action,
        channel=block,
        subject=cap_text(subject),
        status=DeliveryStatus.FAILED if error else DeliveryStatus.SENT,
        error=cap_text(error),
        attempts=attempts,
        time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    _emit(delivery)
    if error:
        return Failed(
            message=f"message through {block!r} failed: {delivery.error}", data=delivery.to_json()
        )
    return Completed(message=f"sent through {block!r}", data=delivery.to_json())


async def _attempts(state: State) -> int:
    task_run_id = state.state_details.task_run_id
    if task_run_id is None:
        return 1
    async with get_client() as client:
        return (await client.read_task_run(task_run_id)).run_count


async def _error_of(state: State) -> str:
    try:
        await state.aresult(raise_on_failure=True)
    except Exception as exc:  # the notification block's own error, whatever its type
        detail = str(exc) or getattr(exc, "log", "").strip()  # apprise's blocks log the reason
        return f"{type(exc).__name__}: {detail}"
    return state.message or state.name or "failed"


def _emit(delivery: Delivery) -> None:
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", delivery.action).strip("-")  # actions-0-send_message
    related = [
        {
            "prefect.resource.id": f"prefect.flow-run.{delivery.run_id}",
            "prefect.resource.role": "source-run",
        }
    ]
    emit_event(
        event=message_event(delivery.status.value),
        resource={
            "prefect.resource.id": f"cronium.message.{delivery.run_id}.{label}",
            "prefect.resource.name": f"{delivery.event} {delivery.action}",
            "cronium.event": delivery.event,
            "cronium.channel": delivery.channel,
        },
        related=related,
        payload=delivery.to_json(),
    )


async def run_actions(
    event: Event,
    record: RunRecord,
    chain: list[str],
    logger: Logger,
    variables: Visible | None = None,
) -> list[Delivery]:
    """Run the actions whose trigger fires for `record`; never raises for their failures.
    `variables` are what the run saw, with its writes (read here when not given)."""
    fired = [
        (i, a) for i, a in enumerate(event.actions) if fires(a.on, record.status, record.condition)
    ]
    deliveries: list[Delivery] = []
    context: dict[str, Any] | None = None
    for index, action in fired:
        try:
            if action.run_event is not None:
                await _start_target(event, record, index, action, chain, logger)
                continue
            assert action.send_message is not None
            if context is None:
                context = await message_context(event, record, variables)
            if action.delay:  # a message is quick: waiting here is cheaper than a deployment
                await anyio.sleep(action.delay)
            where = f"actions[{index}].send_message"
            deliveries.append(
                await deliver(event, record, action.send_message, where, context, logger)
            )
        except CroniumError as exc:
            logger.warning("action %d (on %s) failed: %s", index, action.on, cap_text(str(exc)))
        except Exception as exc:  # e.g. the target deployment deleted since apply
            logger.warning(
                "action %d (on %s) failed: %s: %s",
                index,
                action.on,
                type(exc).__name__,
                cap_text(str(exc)),
            )
    await record_deliveries(event, record, deliveries)
    return deliveries


async def record_deliveries(event: Event, record: RunRecord, deliveries: list[Delivery]) -> None:
    """The messages of one run, as the table artifact `cronium-msg-<event>` (each
    message's event is already emitted, so a failure here is logged, never raised)."""
    if not deliveries:
        return
    try:
        await acreate_table_artifact(
            key=messages_artifact_key(event.name),
            table=[d.to_json() for d in deliveries],
            description=f"Messages sent by run {record.run_id} of {event.name}",
        )
    except Exception as exc:
        get_run_logger().warning("could not store the message record artifact: %s", exc)


async def message_context(
    event: Event, record: RunRecord, visible: Visible | None = None
) -> dict[str, Any]:
    if visible is None:
        visible = await anyio.to_thread.run_sync(
            get_variable_store().visible, event.owner, event.variables
        )
    ui = PREFECT_UI_URL.value()
    url = f"{ui.rstrip('/')}/runs/flow-run/{record.run_id}" if ui else None
    return template_context(event, record, visible.values, visible.secret_keys, url)


async def deliver(
    event: Event,
    record: RunRecord,
    spec: SendMessage | ToolMessage,
    where: str,
    context: dict[str, Any],
    logger: Logger,
) -> Delivery:
    """Render and send one message (an action's, or a tool event's own); record it."""
    render = current_runtime().templates.render
    try:
        subject = None
        if spec.subject:
            subject = await anyio.to_thread.run_sync(
                render, spec.subject, context, f"{where}.subject"
            )
        message = await anyio.to_thread.run_sync(render, spec.message, context, f"{where}.message")
    except CroniumError as exc:
        delivery = Delivery(
            event=event.name,
            run_id=record.run_id,
            action=where,
            channel=spec.block,
            subject=spec.subject,
            status=DeliveryStatus.FAILED,
            error=cap_text(str(exc)),
            attempts=0,
            time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        _emit(delivery)
        logger.warning("message of %s not sent: %s", where, delivery.error)
        return delivery
    state = await cronium_message(
        block=spec.block,
        subject=subject,
        message=message,
        event=event.name,
        run_id=record.run_id,
        action=where,
        return_state=True,
    )
    data = await state.aresult(raise_on_failure=False)
    if not isinstance(data, dict):
        raise ActionFailed(f"the message subflow ended without a record: {state.message}")
    delivery = Delivery.from_json(data)
    if delivery.sent:
        logger.info("message sent through %r (%s)", spec.block, where)
    else:
        logger.warning("message through %r failed: %s", spec.block, delivery.error)
    return delivery


async def _start_target(
    event: Event,
    record: RunRecord,
    index: int,
    action: Action,
    chain: list[str],
    logger: Logger,
) -> None:
    assert action.run_event is not None
    links = [*chain, event.name]
    limit = get_settings().chain_limit
    if len(links) > limit:
        raise ActionFailed(
            f"run_event chain {' -> '.join([*links, action.run_event])} is longer than "
            f"CRONIUM_CHAIN_LIMIT ({limit}): {action.run_event} not started"
        )
    settings = get_settings()
    check_input(record.output, settings.input_limit, f"the output of {event.name}")
    scheduled = (
        datetime.now(timezone.utc) + timedelta(seconds=action.delay) if action.delay else None
    )
    start = _start_deployment.with_options(
        retries=settings.message_retries,
        retry_delay_seconds=exponential_backoff(settings.retry_backoff)(settings.message_retries)
        if settings.message_retries
        else 0,
    )
    run_id = await start(
        deployment_name(action.run_event),
        {"input": record.output, "trigger": Trigger.ACTION.value, "chain": links},
        scheduled,
        # A task retry after a lost answer must not start the target twice; a new run of
        # this flow run (Prefect's "Retry") must.
        f"cronium-action:{record.run_id}:{_run_count()}:{index}",
    )
    when = f"at {scheduled.isoformat(timespec='seconds')}" if scheduled else "now"
    logger.info(
        "started %s (flow run %s) %s with this run's output", action.run_event, run_id, when
    )


def _run_count() -> int:
    context = FlowRunContext.get()
    return context.flow_run.run_count if context and context.flow_run else 0


@task(name="start-event", persist_result=False, cache_policy=NO_CACHE)
async def _start_deployment(
    name: str, parameters: dict[str, Any], scheduled: datetime | None, idempotency_key: str
) -> str:
    run = await run_deployment(
        name=name,
        parameters=parameters,
        timeout=0,  # started, not awaited: it runs wherever its deployment runs
        scheduled_time=scheduled,
        idempotency_key=idempotency_key,
        tags=[Trigger.ACTION.tag],
    )
    return str(run.id)

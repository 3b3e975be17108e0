"""Events as deployments of the one `cronium-event` flow: the spec, and applying many.

Each event becomes `cronium-event/<name>` with its definition as parameters, its schedule
as Prefect schedules, its status as the paused flag (see `status`: a lifecycle tag tells
draft and archived apart), its priority as a work queue of the `cronium` pool,
and its overlap policy as Prefect's deployment concurrency limit. The spec is hashed into
the deployment's version, so re-applying an unchanged event writes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.objects import ConcurrencyLimitStrategy, ConcurrencyOptions
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound, PrefectHTTPStatusError

from cronium_prefect.errors import CroniumError
from cronium_prefect.event import Event, EventStatus
from cronium_prefect.names import (
    ACTIVATED_TAG,
    CHAINS_TAG,
    CRONIUM_TAG,
    FLOW_NAME,
    OWNER_TAG,
    POOL_TYPE,
    RETRYABLE_TAG,
    SERVER_TAG,
    TYPE_TAG,
    WORKFLOW_FLOW_NAME,
)
from cronium_prefect.settings import get_settings
from cronium_prefect.workflow import Workflow

from .parameters import PARAMETER_SCHEMA, WORKFLOW_PARAMETER_SCHEMA
from .status import deployed_status, lifecycle_tag

__all__ = [
    "ApplySummary",
    "Deployed",
    "apply_events",
    "deployment_spec",
    "read_event_deployments",
    "read_deployed_events",
    "PARAMETER_SCHEMA",
    "ENTRYPOINT",
    "WORKFLOW_ENTRYPOINT",
    "flow_name",
    "QUEUE_PRIORITIES",
    "facet_tags",
    "activated_at",
    "set_event_status",
    "writer_client",
]

ENTRYPOINT = "cronium_prefect.flows.event_flow.cronium_event"  # a module path: any worker
WORKFLOW_ENTRYPOINT = "cronium_prefect.flows.workflow_flow.cronium_workflow"
Definition = Event | Workflow
QUEUE_PRIORITIES = {"critical": 1, "high": 2, "normal": 3, "low": 4}  # lower runs first
_PAGE = 200  # the most Prefect's /deployments/filter returns at once (one page at a time:
# 2, 3 or 4 at once were 5-85% slower to read 1,600 deployments on SQLite)
# One write at a time. Prefect's server does them one at a time anyway (CPU-bound, one
# event loop): with 300 new events, 2 at once were no faster than 1 and 8 were 1.3-1.8x
# slower, on SQLite and on PostgreSQL. And on SQLite a second writer of ours makes
# "database is locked" (503) likely: the server's upsert reads before it writes, so a
# commit in between fails it at once; with 2 (and 8) a 1,000-event apply failed once a
# create had been refused 6 times in a row (Prefect's client retries 5 times).
_CONCURRENT_WRITES = 1
T = TypeVar("T")


def flow_name(definition: Definition) -> str:
    """The flow a definition is a deployment of."""
    return WORKFLOW_FLOW_NAME if isinstance(definition, Workflow) else FLOW_NAME


def _schedules(event: Definition) -> list[DeploymentScheduleCreate]:
    schedule = event.schedule
    if schedule is None:
        return []
    if schedule.cron is not None:
        kind: Any = CronSchedule(cron=schedule.cron, timezone=schedule.timezone)
    elif schedule.interval is not None:
        # Without start_time, anchor at a fixed instant (runs align to the interval, e.g.
        # :00/:15/:30/:45), never at "now": re-applying must produce the same deployment.
        anchor = schedule.start_time or datetime(2020, 1, 1, tzinfo=ZoneInfo(schedule.timezone))
        kind = IntervalSchedule(
            interval=timedelta(seconds=schedule.interval),
            anchor_date=anchor,
            timezone=schedule.timezone,
        )
    else:  # start_time alone: exactly one run, at that time
        assert schedule.start_time is not None  # the model guarantees one of the three
        start = schedule.start_time.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S")
        kind = RRuleSchedule(rrule=f"DTSTART:{start}\nRRULE:FREQ=DAILY;COUNT=1", timezone="UTC")
    # Always active: the deployment's paused flag alone says whether the event runs, so
    # that resuming it anywhere (Prefect's UI too) brings its schedule back.
    return [DeploymentScheduleCreate(schedule=kind, active=True)]


def facet_tags(event: Definition) -> list[str]:
    """Tags the API can filter on (the dashboard's filters, "which events use server X",
    "which events chain into Y"): Prefect filters deployments by tag, not by parameter."""
    workflow = isinstance(event, Workflow)
    tags = [f"{TYPE_TAG}{'workflow' if workflow else event.type.value}"]
    if event.owner:
        tags.append(f"{OWNER_TAG}{event.owner}")
    tags += [] if workflow else [f"{SERVER_TAG}{server}" for server in event.servers]
    tags += [f"{CHAINS_TAG}{a.run_event}" for a in event.actions if a.run_event]
    # A crashed run is scheduled again (crash_detection): a workflow's always, since it
    # resumes where it was (its steps' runs are found again, not started again).
    if workflow or event.retries:
        tags.append(RETRYABLE_TAG)
    return tags


def deployment_spec(event: Definition) -> dict[str, Any]:
    """Keyword arguments for `create_deployment` (all but flow_id), version included."""
    workflow = isinstance(event, Workflow)
    concurrency: dict[str, Any] = {}
    if event.overlap != "allow":
        strategy = (
            ConcurrencyLimitStrategy.CANCEL_NEW
            if event.overlap == "skip"
            else ConcurrencyLimitStrategy.ENQUEUE
        )
        concurrency = {
            "concurrency_limit": 1,
            "concurrency_options": ConcurrencyOptions(collision_strategy=strategy),
        }
    spec: dict[str, Any] = {
        "name": event.name,
        "description": event.description or None,
        "parameters": {"workflow" if workflow else "event": event.to_parameters()},
        "tags": sorted({*event.tags, CRONIUM_TAG, *facet_tags(event)}),
        "work_pool_name": event.pool or get_settings().work_pool,
        "work_queue_name": event.priority.value,
        "entrypoint": WORKFLOW_ENTRYPOINT if workflow else ENTRYPOINT,
        "schedules": _schedules(event),
        "enforce_parameter_schema": False,
        "parameter_openapi_schema": WORKFLOW_PARAMETER_SCHEMA if workflow else PARAMETER_SCHEMA,
        **concurrency,
    }
    canonical = json.dumps(
        {
            k: (v.model_dump(mode="json") if hasattr(v, "model_dump") else v)
            for k, v in spec.items()
            if k != "schedules"
        }
        | {"schedules": [s.model_dump(mode="json") for s in spec["schedules"]]},
        sort_keys=True,
        default=str,
    )
    # The version hashes the definition, not the status: the status is compared with
    # the deployment's own paused flag (`apply_events`), which Prefect's UI may change.
    spec["version"] = "cronium-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
    spec["tags"] = sorted({*spec["tags"], lifecycle_tag(event.status)})
    spec["paused"] = event.status != EventStatus.active
    return spec


async def ensure_pool(client: PrefectClient, pool: str | None = None) -> bool:
    """The work pool (of the cronium type) and one queue per priority (critical drains
    first); True when the pool was created here."""
    pool = pool or get_settings().work_pool
    created = True
    try:
        await client.create_work_pool(WorkPoolCreate(name=pool, type=POOL_TYPE))
    except ObjectAlreadyExists:
        created = False
    if not created:
        kind = (await client.read_work_pool(pool)).type
        if kind != POOL_TYPE:  # its workers would be Prefect's, not ours
            raise CroniumError(
                f"work pool {pool!r} exists with type {kind!r}; Cronium events need a pool "
                f"of type {POOL_TYPE!r}: name another in the event's `pool:` field"
            )
    existing = {q.name: q for q in await client.read_work_queues(work_pool_name=pool)}
    for name, priority in QUEUE_PRIORITIES.items():
        if name in existing:
            if existing[name].priority != priority:
                await client.update_work_queue(existing[name].id, priority=priority)
            continue
        try:
            await client.create_work_queue(name=name, work_pool_name=pool, priority=priority)
        except ObjectAlreadyExists:
            pass
    return created


async def read_event_deployments(client: PrefectClient) -> dict[str, Any]:
    """Every deployment of the cronium-event flow, by event name."""
    found: dict[str, Any] = {}
    offset = 0
    while True:
        page = await client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            limit=_PAGE,
            offset=offset,
        )
        found.update({d.name: d for d in page})
        if len(page) < _PAGE:
            return found
        offset += _PAGE


@dataclass(frozen=True)
class Deployed:
    """What bulk readers need of a deployed event (the fields keep Prefect's names)."""

    id: str
    name: str
    version: str | None
    tags: list[str]
    parameters: dict[str, Any]
    paused: bool


async def read_deployed_events(client: PrefectClient, flow: str = FLOW_NAME) -> dict[str, Deployed]:
    """Every deployment of the cronium-event flow (or of `flow`), by name: id, version,
    tags and parameters only.

    For apply and the listing, which read them all: plain JSON instead of Prefect's models
    (building those took ~10x longer than decoding the JSON).
    """
    body: dict[str, Any] = {
        "flows": {"name": {"any_": [flow]}},
        "sort": "NAME_ASC",
        "limit": _PAGE,
    }

    async def page(offset: int) -> list[dict[str, Any]]:
        response = await client.request(
            "POST", "/deployments/filter", json={**body, "offset": offset}
        )
        return response.json()

    found: dict[str, Deployed] = {}
    offset = 0
    while True:
        rows = await page(offset)
        for d in rows:
            found[d["name"]] = Deployed(
                id=d["id"],
                name=d["name"],
                version=d.get("version"),
                tags=d.get("tags") or [],
                parameters=d.get("parameters") or {},
                paused=bool(d.get("paused")),
            )
        if len(rows) < _PAGE:
            return found
        offset += _PAGE


def _activation_tag(event: Definition, current: Any) -> str:
    """Keep the activation time while the event stays active; a new one when it becomes
    active (created active, or resumed), which restarts the max_executions count."""
    was_active = (
        current is not None and deployed_status(current.paused, current.tags) == EventStatus.active
    )
    previous = next(
        (t for t in (current.tags if current else []) if t.startswith(ACTIVATED_TAG)), None
    )
    if event.status == EventStatus.active and was_active and previous:
        return previous
    return f"{ACTIVATED_TAG}{datetime.now(timezone.utc).isoformat(timespec='seconds')}"


def activated_at(tags: list[str]) -> datetime | None:
    for tag in tags:
        if tag.startswith(ACTIVATED_TAG):
            return datetime.fromisoformat(tag.removeprefix(ACTIVATED_TAG))
    return None


async def _schedule_now(client: PrefectClient, deployment_id: Any) -> None:
    """Have Prefect's scheduler create the upcoming runs now rather than on its next pass.

    The server's recent-deployments pass looks only a few seconds back, so under load a
    one-shot `start_time` a few seconds away could be passed over and never run. This
    is the server's own schedule endpoint (same run generation, same idempotency keys),
    so a later scheduler pass never duplicates these runs.
    """
    response = await client.request(
        "POST", "/deployments/{id}/schedule", path_params={"id": deployment_id}, json={}
    )
    response.raise_for_status()


_WRITE_TRIES = 20
_SOON = "0.05"


async def _retry_soon(response: httpx.Response) -> None:
    """Have Prefect's client try a refused request again after 50 ms, not 2 s, 4 s, ...

    Prefect on SQLite answers 503 ("database is locked") when the upsert of a deployment
    meets a write of its own services (the events each upsert makes are stored as it
    goes): about one create in 20. Prefect's client then waits 2**n seconds (it even waits
    after its last try), which was ~2/3 of the time of a 1,000-event apply, while the lock
    is gone within milliseconds. It honours a Retry-After header, which the server does not
    send: this response hook adds one.
    """
    if response.status_code == 503 and "retry-after" not in response.headers:
        response.headers["Retry-After"] = _SOON


def writer_client() -> PrefectClient:
    """A Prefect client that tries again after 50 ms when SQLite was locked (see
    `_retry_soon`): for code that writes many things at once."""
    return get_client(httpx_settings={"event_hooks": {"response": [_retry_soon]}})


async def retried(write: Callable[[], Awaitable[T]]) -> T:
    """An idempotent write (an upsert, a schedule, a delete), tried again while Prefect
    answers 503: Prefect's client gives up after 5 quick tries (`_retry_soon`); this goes
    on for up to ~30 s, waiting 50 ms and doubling up to 2 s."""
    for attempt in range(_WRITE_TRIES):
        try:
            return await write()
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 503 or attempt == _WRITE_TRIES - 1:
                raise
        await asyncio.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


@dataclass
class ApplySummary:
    created: list[str] = field(default_factory=list)
    pools_created: list[str] = field(default_factory=list)  # work pools made for `pool:`
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    # (event, status before, status after) of every existing event whose status this
    # apply changed: a pause made in Prefect's UI is never undone without saying so.
    status_changes: list[tuple[str, EventStatus, EventStatus]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("created", "updated", "unchanged", "pruned")}


async def apply_events(
    definitions: Iterable[Definition],
    existing: dict[str, Any],
    prune: bool = False,
    advance: Callable[[int], None] = lambda n: None,
    existing_workflows: dict[str, Any] | None = None,
) -> ApplySummary:
    """Create or update what changed (and delete what is gone, with `prune`).

    `existing` (events) and `existing_workflows` come from `read_deployed_events` (or
    `read_event_deployments`); the caller validates everything against them first, so
    that nothing is written when anything is invalid. Workflows are pruned only when
    `existing_workflows` is given.
    """
    summary = ApplySummary()
    definitions = list(definitions)
    deployed = {FLOW_NAME: existing, WORKFLOW_FLOW_NAME: existing_workflows}
    async with writer_client() as client:
        return await _write_all(client, definitions, deployed, prune, advance, summary)


async def _write_all(
    client: PrefectClient,
    definitions: list[Definition],
    deployed: dict[str, dict[str, Any] | None],
    prune: bool,
    advance: Callable[[int], None],
    summary: ApplySummary,
) -> ApplySummary:
    pools = sorted({d.pool or get_settings().work_pool for d in definitions})
    for pool in pools or [get_settings().work_pool]:
        if await retried(lambda pool=pool: ensure_pool(client, pool)):
            summary.pools_created.append(pool)
    flows = {flow_name(d) for d in definitions} | {FLOW_NAME}
    flow_ids = {f: await retried(lambda f=f: client.create_flow_from_name(f)) for f in flows}
    gate = asyncio.Semaphore(_CONCURRENT_WRITES)

    async def write(definition: Definition) -> None:
        spec = deployment_spec(definition)
        flow = flow_name(definition)
        current = (deployed[flow] or {}).get(definition.name)
        was = None if current is None else deployed_status(current.paused, current.tags)
        if current is not None and current.version == spec["version"] and was == definition.status:
            summary.unchanged.append(definition.name)
        else:
            if was is not None and was != definition.status:
                summary.status_changes.append((definition.name, was, definition.status))
            spec["tags"] = [*spec["tags"], _activation_tag(definition, current)]
            async with gate:
                deployment_id = await retried(
                    lambda: client.create_deployment(flow_id=flow_ids[flow], **spec)
                )
                if definition.schedule is not None and not spec["paused"]:
                    await retried(lambda: _schedule_now(client, deployment_id))
            (summary.updated if current is not None else summary.created).append(definition.name)
        advance(1)

    await asyncio.gather(*(write(d) for d in definitions))
    if prune:
        for flow, existing in deployed.items():
            names = {d.name for d in definitions if flow_name(d) == flow}
            for name, deployment in (existing or {}).items():
                if name not in names:
                    try:
                        await retried(lambda d=deployment: client.delete_deployment(d.id))
                    except ObjectNotFound:
                        pass
                    summary.pruned.append(name)
                    advance(1)
    return summary


async def set_event_status(name: str, status: EventStatus) -> None:
    """Pause, resume (activate) or archive one deployed event or workflow: its definition
    with the new status, applied like any change. Reads only this deployment."""
    from .resolve import read_runnable

    async with get_client() as client:
        current = await read_runnable(client, name)
    parameters = current.parameters or {}
    model: type[Definition] = Workflow if "workflow" in parameters else Event
    try:
        definition = model.model_validate(parameters.get("workflow") or parameters.get("event"))
    except ValueError as exc:
        raise CroniumError(
            f"the deployment of {name!r} does not hold a valid definition: {exc}"
        ) from None
    changed = definition.model_copy(update={"status": status})
    if model is Workflow:
        await apply_events([changed], {}, existing_workflows={name: current})
    else:
        await apply_events([changed], {name: current})

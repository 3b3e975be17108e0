"""`cronium apply | export | events | pause | resume | delete`: events as Prefect deployments."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from cronium_prefect.access import AuditAction
from cronium_prefect.errors import CroniumError, InvalidEvent, Problem
from cronium_prefect.event import Event, EventStatus
from cronium_prefect.loader import kind_of
from cronium_prefect.workflow import Workflow

from .common import JsonOption, audit, err, fail_usage, out, print_json
from .listing import events

__all__ = ["register"]

PROGRESS_FROM = 50  # show a progress bar when at least this many deployments are written


def register(app: typer.Typer) -> None:
    for command in (apply, export, events, pause, resume, delete):
        app.command()(command)


async def _deployed() -> tuple[dict[str, Any], dict[str, Any]]:
    """The deployed events and workflows, by name."""
    from prefect.client.orchestration import get_client

    from cronium_prefect.flows.deploy import read_deployed_events
    from cronium_prefect.flows.status import migrate_legacy_status
    from cronium_prefect.names import WORKFLOW_FLOW_NAME

    async with get_client() as client:
        await migrate_legacy_status(client)  # deployments of an earlier version
        events = await read_deployed_events(client)
        return events, await read_deployed_events(client, WORKFLOW_FLOW_NAME)


async def _server_names() -> set[str]:
    from prefect.client.orchestration import get_client

    from cronium_prefect.blocks import SSHServer
    from cronium_prefect.blocks.documents import of_type, read_documents

    async with get_client() as client:
        documents = await read_documents(client, of_type(SSHServer.get_block_type_slug()))
    return {d["name"] for d in documents if d.get("name")}


async def _notification_block_names() -> dict[str, list[str]]:
    """Name -> block types of every notification block (paged: there may be many)."""
    from prefect.client.orchestration import get_client

    from cronium_prefect.blocks.documents import NOTIFIERS, read_documents

    found: dict[str, list[str]] = {}
    async with get_client() as client:
        for doc in await read_documents(client, NOTIFIERS):
            if doc.get("name"):
                found.setdefault(doc["name"], []).append(doc["block_type"]["slug"])
    return found


async def _secret_block_names() -> set[str]:
    from prefect.client.orchestration import get_client

    from cronium_prefect.blocks.documents import of_type, read_documents

    async with get_client() as client:
        return {doc["name"] for doc in await read_documents(client, of_type("secret"))}


def _message_blocks(event: Event | Workflow) -> list[tuple[str, str]]:
    """(field, block name) of every message an event sends."""
    found = [
        (f"actions[{i}].send_message.block", a.send_message.block)
        for i, a in enumerate(event.actions)
        if a.send_message is not None
    ]
    if isinstance(event, Event) and event.tool is not None:
        found.append(("tool.block", event.tool.block))
    return found


def apply(
    paths: Annotated[list[Path], typer.Argument(help="Definition files or folders.")],
    prune: Annotated[bool, typer.Option(help="Delete deployed events that are gone.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create or update the deployment of every event and workflow found in files or
    folders.

    Nothing is written if any definition is invalid; unchanged ones are not written.
    """
    from cronium_prefect.loader import check_references, load_definitions

    try:
        found = load_definitions(paths, references=False)  # checked below, with deployed ones
    except InvalidEvent as exc:
        raise fail_usage(f"invalid definitions, nothing was applied:\n{exc}") from None
    loaded, workflows = found.all_events, found.workflows
    existing, existing_workflows = asyncio.run(_deployed())
    names = {e.name for e in loaded}
    others = set() if prune else set(existing) - names
    problems = check_references(found, known=others)
    problems += _name_clashes(found, existing, existing_workflows, prune)
    problems += _skipped_steps(found, existing)
    servers = asyncio.run(_server_names()) if any(e.servers for e in loaded) else set()
    problems += [
        Problem(
            f"server {name!r} does not exist (add it with `cronium server add`)",
            field="servers",
            event=e.name,
        )
        for e in loaded
        for name in e.servers
        if name not in servers
    ]
    wanted = [(e, f, b) for e in [*loaded, *workflows] for f, b in _message_blocks(e)]
    blocks = asyncio.run(_notification_block_names()) if wanted else {}
    problems += [
        Problem(
            f"notification block {name!r} does not exist (create a Slack, Discord, webhook or "
            "cronium-email block with that name first)"
            if name not in blocks
            else f"several notification blocks are named {name!r} "
            f"({', '.join(sorted(blocks[name]))}); rename one",
            field=where,
            event=e.name,
            kind=kind_of(e),
        )
        for e, where, name in wanted
        if len(blocks.get(name, [])) != 1
    ]
    hooked = [e for e in [*loaded, *workflows] if e.webhook and e.webhook.secret]
    secrets = asyncio.run(_secret_block_names()) if hooked else set()
    problems += [
        Problem(
            f"Secret block {e.webhook.secret!r} does not exist (create a Secret block with "
            "that name first: it holds the webhook's token or signing secret)",
            field="webhook.secret",
            event=e.name,
            kind=kind_of(e),
        )
        for e in hooked
        if e.webhook.secret not in secrets
    ]
    if problems:
        audit(AuditAction.apply, _targets(paths), "refused", problems=len(problems))
        raise fail_usage(f"invalid definitions, nothing was applied:\n{InvalidEvent(problems)}")
    for event in _past_one_shots(loaded):
        err.print(
            f"warning: {event.name}: schedule.start_time {event.schedule.start_time.isoformat()} "
            "is in the past, so this one-shot schedule will not run "
            f"(`cronium trigger {event.name}` runs it now)",
            highlight=False,
            soft_wrap=True,
        )
    summary = _apply([*loaded, *workflows], existing, prune, existing_workflows)
    audit(
        AuditAction.apply,
        _targets(paths),
        created=summary.created,
        updated=summary.updated,
        deleted=summary.pruned,
    )
    changes = [(name, was.value, now.value) for name, was, now in summary.status_changes]
    if as_json:
        print_json(
            {
                **summary.counts(),
                "events": len(loaded),
                "workflows": len(workflows),
                "status_changes": [{"event": n, "from": w, "to": t} for n, w, t in changes],
                "pools_created": summary.pools_created,
            }
        )
        return
    for pool in summary.pools_created:
        out.print(
            f"created work pool {pool} (cronium): its events run once a worker serves it: "
            f"cronium worker --pool {pool}",
            highlight=False,
        )
    for name, was, now in changes:
        out.print(f"{name}: {was} -> {now}", highlight=False)
    counts = summary.counts()
    out.print(
        ", ".join(f"{counts[k]} {k}" for k in ("created", "updated", "unchanged", "pruned")),
        highlight=False,
    )


def _name_clashes(
    found: Any, existing: dict[str, Any], existing_workflows: dict[str, Any], prune: bool
) -> list[Problem]:
    """Events and workflows share one namespace (`cronium trigger NAME`, /hooks/NAME):
    a name may not be one kind here and the other kind deployed (unless pruned)."""
    if prune:
        return []
    return [
        Problem(
            f"a {other} of this name is deployed; delete it first (or apply with --prune)",
            field="name",
            event=d.name,
            kind=kind_of(d),
        )
        for items, deployed, other in (
            (found.all_events, existing_workflows, "workflow"),
            (found.workflows, existing, "event"),
        )
        for d in items
        if d.name in deployed
    ]


def _skipped_steps(found: Any, existing: dict[str, Any]) -> list[Problem]:
    """A step that may run its event while another run of it runs would be cancelled by
    Prefect when that event's overlap is skip (its deployment's concurrency limit)."""
    overlap = {
        name: (d.parameters.get("event") or {}).get("overlap", "skip")
        for name, d in existing.items()
    }
    overlap |= {e.name: e.overlap for e in found.all_events}
    problems = []
    for workflow in found.workflows:
        for name, why in workflow.overlapping():
            event = workflow.event_of(workflow.step(name))
            if overlap.get(event) == "skip":
                problems.append(
                    Problem(
                        f"{why}, and {event} has overlap: skip, so Prefect would cancel the "
                        f"second run; give {event} overlap: allow (or queue: one at a time)",
                        field=f"steps[{workflow.steps.index(workflow.step(name))}]",
                        event=workflow.name,
                        kind="workflow",
                    )
                )
    return problems


def _targets(paths: list[Path]) -> str:
    return " ".join(str(p) for p in paths)


def export(
    paths: Annotated[list[Path], typer.Argument(help="Definition files or folders.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write a prefect.yaml that deploys these events with `prefect deploy --all`.

    It holds the same deployments `cronium apply` would create, for teams that keep
    Prefect's own deploy workflow. run_event targets must be among the exported events.
    """
    from cronium_prefect.flows.project_file import project_file
    from cronium_prefect.loader import load_paths

    try:
        loaded = load_paths(paths, references=True)
    except InvalidEvent as exc:
        raise fail_usage(f"invalid definitions, nothing was exported:\n{exc}") from None
    try:
        text = project_file(loaded, sources=" ".join(str(p) for p in paths))
    except InvalidEvent as exc:
        raise fail_usage(f"cannot export these events, nothing was written:\n{exc}") from None
    if output is None:
        out.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise fail_usage(f"cannot write {output}: {exc.strerror or exc}") from None
    err.print(f"wrote {len(loaded)} deployments to {output}", highlight=False)


def _past_one_shots(loaded: list[Event]) -> list[Event]:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    return [
        e
        for e in loaded
        if e.status == EventStatus.active
        and e.schedule is not None
        and e.schedule.cron is None
        and e.schedule.interval is None
        and e.schedule.start_time is not None
        and e.schedule.start_time < now
    ]


def _apply(
    loaded: list[Event | Workflow],
    existing: dict[str, Any],
    prune: bool,
    existing_workflows: dict[str, Any],
):
    from cronium_prefect.flows.deploy import apply_events

    gone = len({*existing, *existing_workflows} - {e.name for e in loaded}) if prune else 0
    total = len(loaded) + gone

    def run(advance: Any = lambda n: None) -> Any:
        return asyncio.run(
            apply_events(loaded, existing, prune, advance, existing_workflows=existing_workflows)
        )

    if total < PROGRESS_FROM:
        return run()
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("applying", total=total)
        return run(lambda n: progress.advance(task, n))


def _set_status(name: str, status: EventStatus) -> None:
    from cronium_prefect.flows.deploy import set_event_status

    action = AuditAction.pause if status == EventStatus.paused else AuditAction.resume
    try:
        asyncio.run(set_event_status(name, status))
    except CroniumError as exc:
        audit(action, name, "refused", error=str(exc))
        raise fail_usage(str(exc)) from None
    audit(action, name)
    err.print(f"{name}: {status.value}", highlight=False)


def pause(name: str) -> None:
    """Pause an event or a workflow: its schedules stop until `resume`."""
    _set_status(name, EventStatus.paused)


def resume(name: str) -> None:
    """Resume (activate) an event or a workflow: its schedules run again."""
    _set_status(name, EventStatus.active)


def delete(name: str) -> None:
    """Delete an event's or a workflow's deployment (its past runs stay in Prefect)."""
    from prefect.client.orchestration import get_client

    async def remove() -> bool:
        events, workflows = await _deployed()
        found = events.get(name) or workflows.get(name)
        if found is None:
            return False
        async with get_client() as client:
            await client.delete_deployment(found.id)
        return True

    if not asyncio.run(remove()):
        audit(AuditAction.delete, name, "refused", error="no such event")
        raise fail_usage(f"no event or workflow named {name!r} (see `cronium events`)")
    audit(AuditAction.delete, name)
    err.print(f"deleted {name}", highlight=False)

"""What the dashboard changes, and the admin pages' reads: run now, pause / resume, SSH
servers with their last check and circuit state, variables (secrets never read).

Every change asks auth.require first (refused and recorded when the role may not) and is
recorded in the audit log when done."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import streamlit as st
from prefect.client.orchestration import PrefectClient

from cronium_prefect.access import AuditAction, Permission
from cronium_prefect.blocks.documents import of_type, read_documents
from cronium_prefect.blocks.ssh_server import SSHServer
from cronium_prefect.blocks.variable import CroniumVariable
from cronium_prefect.blocks.variable_store import BlockVariableStore
from cronium_prefect.errors import CroniumError
from cronium_prefect.event import EventStatus
from cronium_prefect.flows.deploy import set_event_status
from cronium_prefect.flows.resolve import run_now as run_now_by_name
from cronium_prefect.names import MASK, SERVER_TAG, circuit_event, server_resource_id

from . import auth
from .api import DashboardError, api_errors, call
from .data_events import TAGGED_LIMIT, post, tagged_events

__all__ = [
    "run_now",
    "set_status",
    "servers",
    "test_server",
    "variables",
    "set_variable",
    "delete_variable",
]


def _changed() -> None:
    """A change shows at once: drop every cached read."""
    st.cache_data.clear()


def run_now(name: str, input: Any) -> str:
    """Start a run of the event through its deployment (a worker runs it); its id."""
    actor = auth.require(Permission.run, AuditAction.trigger, name)

    async def fetch(client: PrefectClient) -> str:
        return str((await run_now_by_name(client, name, input)).id)

    try:
        run_id = call(fetch)
    except CroniumError as exc:  # no such event
        raise DashboardError(str(exc)) from None
    auth.record(actor, AuditAction.trigger, name, run_id=run_id)
    _changed()
    return run_id


def set_status(name: str, status: str) -> None:
    action = AuditAction.pause if status == EventStatus.paused.value else AuditAction.resume
    actor = auth.require(Permission.pause, action, name)
    try:
        call(lambda client: set_event_status(name, EventStatus(status)))
    except CroniumError as exc:
        raise DashboardError(str(exc)) from None
    auth.record(actor, action, name)
    _changed()


async def _documents(client: PrefectClient, slug: str) -> list[dict[str, Any]]:
    """Every block document of a type, secrets left masked by the API."""
    return await read_documents(client, of_type(slug))


@st.cache_data(ttl=5, show_spinner=False)
def servers() -> list[dict[str, Any]]:
    """Servers with the events using them, their last check and circuit transition."""

    async def fetch(client: PrefectClient) -> list[dict[str, Any]]:
        documents = await _documents(client, SSHServer.get_block_type_slug())
        since = (datetime.now(timezone.utc) - timedelta(days=7)).isoformat()
        checks, circuits, users = await asyncio.gather(
            asyncio.gather(*(_last(client, d["name"], "checked", since) for d in documents)),
            asyncio.gather(*(_last(client, d["name"], "circuit-", since) for d in documents)),
            asyncio.gather(*(tagged_events(client, f"{SERVER_TAG}{d['name']}") for d in documents)),
        )
        rows = []
        for document, check, circuit, used_by in zip(
            documents, checks, circuits, users, strict=True
        ):
            data = document["data"]
            rows.append(
                {
                    "name": document["name"],
                    "address": f"{data.get('username')}@{data.get('host')}:{data.get('port')}",
                    "description": data.get("description", ""),
                    "last_check": check and {"time": check["occurred"], **check["payload"]},
                    "circuit": _circuit(circuit),
                    "events": used_by,
                    "events_capped": len(used_by) >= TAGGED_LIMIT,
                }
            )
        return sorted(rows, key=lambda r: r["name"])

    return call(fetch)


async def _last(client: PrefectClient, server: str, kind: str, since: str) -> dict[str, Any] | None:
    """The server's newest `cronium.server.<kind>...` event of the last 7 days."""
    found = await post(
        client,
        "/events/filter",
        {
            "filter": {
                "event": {"prefix": [f"cronium.server.{kind}"]},
                "resource": {"id": [server_resource_id(server)]},
                "occurred": {"since": since},
                "order": "DESC",
            },
            "limit": 1,
        },
    )
    return found["events"][0] if found["events"] else None


def _circuit(event: dict[str, Any] | None) -> str:
    if event is None or event["event"] == circuit_event("closed"):
        return "closed"
    opened = datetime.fromisoformat(event["occurred"])
    cooldown = float(event["payload"].get("cooldown_s", 0))
    if datetime.now(timezone.utc) - opened < timedelta(seconds=cooldown):
        return f"open since {event['occurred'][:19]}Z (failing fast)"
    return f"half-open (opened {event['occurred'][:19]}Z; the next run tries again)"


def test_server(name: str) -> dict[str, Any]:
    """Connect now and read the facts (recorded as an event for everyone)."""
    from cronium_prefect.flows.servers import check_server

    auth.require(Permission.run, AuditAction.read, name)  # it connects: not for viewers
    try:
        with api_errors():
            return check_server(name)
    except DashboardError:
        raise
    except CroniumError as exc:
        raise DashboardError(str(exc)) from None
    finally:
        _changed()


@st.cache_data(ttl=5, show_spinner=False)
def variables() -> list[dict[str, Any]]:
    """Every variable; a secret's value is never read (the API masks it)."""

    async def fetch(client: PrefectClient) -> list[dict[str, Any]]:
        documents = await _documents(client, CroniumVariable.get_block_type_slug())
        rows = []
        for document in documents:
            data = document["data"]
            secret = bool(data.get("secret"))
            rows.append(
                {
                    "key": data.get("key"),
                    "owner": data.get("owner") or "(global)",
                    "secret": secret,
                    "value": MASK if secret else data.get("value_json"),
                }
            )
        return sorted(rows, key=lambda r: (r["owner"] != "(global)", r["owner"], r["key"]))

    return call(fetch)


def _may_change(action: AuditAction, key: str, owner: str | None, secret: bool) -> Any:
    """The actor, when they may change this variable: an operator sets and deletes plain
    ones; a secret (new or already stored under the key) needs an admin."""
    try:
        with api_errors():
            stored = {(e.owner, e.key): e for e in BlockVariableStore().entries([key], owner)}
    except ValueError as exc:  # a key that is no key
        raise DashboardError(str(exc)) from None
    was_secret = bool((entry := stored.get((owner, key))) and entry.secret)
    needed = Permission.manage if secret or was_secret else Permission.set_variable
    return auth.require(needed, action, key)


def set_variable(key: str, value: Any, owner: str | None, secret: bool) -> None:
    actor = _may_change(AuditAction.variable_set, key, owner or None, secret)
    try:
        with api_errors():
            BlockVariableStore().set(key, value, owner or None, secret)
    except ValueError as exc:  # key or value refused, with the reason
        raise DashboardError(str(exc)) from None
    auth.record(actor, AuditAction.variable_set, key, owner=owner or None, secret=secret)
    _changed()


def delete_variable(key: str, owner: str | None) -> bool:
    actor = _may_change(AuditAction.variable_delete, key, owner or None, False)
    try:
        with api_errors():
            deleted = BlockVariableStore().delete(key, owner or None)
    except ValueError as exc:
        raise DashboardError(str(exc)) from None
    auth.record(actor, AuditAction.variable_delete, key, owner=owner or None, deleted=deleted)
    _changed()
    return deleted

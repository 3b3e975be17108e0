"""The Users, My tokens and Audit pages' reads and changes: Cronium's own tables, through
the service layer. Admins manage everyone; a signed-in user manages their own tokens."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from cronium_prefect.access import Actor, AuditAction, Permission, Role
from cronium_prefect.errors import CroniumError
from cronium_prefect.service import audit, tokens, users

from . import auth
from .api import DashboardError

__all__ = [
    "user_rows",
    "add_user",
    "set_role",
    "delete_user",
    "token_rows",
    "create_token",
    "revoke_token",
    "audit_rows",
]


def _done(actor: Actor, action: AuditAction, target: str, work: Any, **detail: Any) -> Any:
    """Run `work(store)`; a refusal (a duplicate, the last admin, ...) is shown and kept."""
    try:
        result = auth.in_store(work)
    except CroniumError as exc:
        error = str(exc)
        auth.in_store(
            lambda db: audit.record(db, actor, action, target, audit.REFUSED, error=error)
        )
        raise DashboardError(error) from None
    auth.record(actor, action, target, **detail)
    return result


def user_rows() -> list[dict[str, Any]]:
    auth.require(Permission.administer, AuditAction.read, "users")
    return [
        {"name": u.name, "role": u.role.value, "created": u.created_at}
        for u in auth.in_store(users.list_users)
    ]


def add_user(name: str, role: str, password: str) -> None:
    actor = auth.require(Permission.administer, AuditAction.user_add, name)
    _done(
        actor,
        AuditAction.user_add,
        name,
        lambda db: users.add_user(db, name, Role(role), password),
        role=role,
    )


def set_role(name: str, role: str) -> None:
    actor = auth.require(Permission.administer, AuditAction.user_role, name)
    _done(
        actor,
        AuditAction.user_role,
        name,
        lambda db: users.set_role(db, name, Role(role)),
        role=role,
    )


def delete_user(name: str) -> None:
    actor = auth.require(Permission.administer, AuditAction.user_delete, name)
    _done(actor, AuditAction.user_delete, name, lambda db: users.delete_user(db, name))


def token_rows(everyone: bool) -> list[dict[str, Any]]:
    """The signed-in user's tokens, or (admins) everyone's; never a secret."""
    actor = auth.current_actor()
    if actor is None:
        raise DashboardError("sign in first")
    if everyone:
        auth.require(Permission.administer, AuditAction.read, "tokens")
    now = datetime.now(timezone.utc)
    found = auth.in_store(lambda db: tokens.list_tokens(db, None if everyone else actor.name))
    return [
        {
            "id": t.id,
            "user": t.user,
            "name": t.name,
            "scopes": ", ".join(t.scopes),
            "state": t.state(now),
            "expires": t.expires_at,
            "last used": t.last_used_at,
        }
        for t in found
    ]


def create_token(scopes: list[str], days: int | None, name: str) -> str:
    """A token of the signed-in user (shown once): its text."""
    actor = auth.current_actor()
    if actor is None or actor.name == "anonymous":
        raise DashboardError("tokens belong to users: add one with `cronium user add` first")
    lifetime = timedelta(days=days) if days else None
    try:
        info, text = auth.in_store(
            lambda db: tokens.create_token(db, actor.name, scopes, lifetime, name)
        )
    except CroniumError as exc:
        error = str(exc)
        auth.in_store(
            lambda db: audit.record(
                db, actor, AuditAction.token_create, actor.name, audit.REFUSED, error=error
            )
        )
        raise DashboardError(error) from None
    auth.record(actor, AuditAction.token_create, info.id, user=actor.name, scopes=info.scopes)
    return text


def revoke_token(token_id: str) -> None:
    """Revoke one of the signed-in user's tokens, or anyone's for an admin."""
    actor = auth.current_actor()
    if actor is None:
        raise DashboardError("sign in first")
    own = None if actor.may(Permission.administer) else actor.name
    _done(
        actor, AuditAction.token_revoke, token_id, lambda db: tokens.revoke_token(db, token_id, own)
    )


def audit_rows(since: datetime | None, user: str | None, event: str | None) -> list[dict]:
    auth.require(Permission.administer, AuditAction.read, "audit")
    entries = auth.in_store(lambda db: audit.read(db, since, user or None, event or None, 2000))
    return [
        {
            "at": e.at,
            "who": f"{e.actor_kind}:{e.actor}",
            "from": e.source,
            "action": e.action,
            "target": e.target,
            "outcome": e.outcome,
            "detail": ", ".join(f"{k}={v}" for k, v in e.detail.items()),
        }
        for e in reversed(entries)  # newest first
    ]

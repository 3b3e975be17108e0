"""The audit log: append-only rows of who did what, to what, from where, and how it
ended. Written by the CLI, the HTTP service and the dashboard; read by `cronium audit` and
the dashboard's Audit page (admins). Values (a variable's, a secret's, a request body)
never enter it: the target is a name or key, the detail a small map of names."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, or_, select

from cronium_prefect.access import Actor, AuditAction

from .store import Store
from .tables import AuditEntry

__all__ = [
    "Entry",
    "RefusalGate",
    "record",
    "read",
    "prune",
    "DETAIL_CHARS",
    "OK",
    "REFUSED",
    "FAILED",
]

OK, REFUSED, FAILED = "ok", "refused", "failed"
DETAIL_CHARS = 4000  # a detail longer than this is cut to its first names, and says so
_LIST_ITEMS = 100


class RefusalGate:
    """Refused requests are recorded at most `rate` per caller address: a flood of bad
    requests (anyone can send them) must not fill the log or lock the database. The
    ones beyond are counted, and the next recorded refusal from that address says how
    many were not recorded (`not_recorded_before`)."""

    _MAX_ADDRESSES = 10_000

    def __init__(self, rate: str = "30/minute") -> None:
        from limits import parse
        from limits.aio.storage import MemoryStorage
        from limits.aio.strategies import MovingWindowRateLimiter

        self._item = parse(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._skipped: dict[str, int] = {}

    async def admit(self, source: str) -> dict[str, int] | None:
        """The detail to add when this refusal is to be recorded; None when it is not."""
        if await self._limiter.hit(self._item, "audit-refusal", source):
            skipped = self._skipped.pop(source, 0)
            return {"not_recorded_before": skipped} if skipped else {}
        if source not in self._skipped and len(self._skipped) >= self._MAX_ADDRESSES:
            source = "(other addresses)"  # counted together past this many
        self._skipped[source] = self._skipped.get(source, 0) + 1
        return None


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    actor_kind: str
    actor: str
    source: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]


def _bounded(detail: dict[str, Any]) -> dict[str, Any]:
    """Lists cut to their first 100 items (with the count left out), then the whole cut
    to DETAIL_CHARS of JSON: never silently."""
    bounded: dict[str, Any] = {}
    for key, value in detail.items():
        if isinstance(value, list) and len(value) > _LIST_ITEMS:
            bounded[f"{key}_not_listed"] = len(value) - _LIST_ITEMS
            value = value[:_LIST_ITEMS]
        bounded[key] = value
    text = json.dumps(bounded, default=str)
    if len(text) > DETAIL_CHARS:
        return {"truncated": True, "detail_start": text[:DETAIL_CHARS]}
    return json.loads(text)


async def record(
    store: Store,
    actor: Actor,
    action: AuditAction,
    target: str,
    outcome: str = OK,
    **detail: Any,
) -> None:
    async with store.session() as session:
        session.add(
            AuditEntry(
                at=datetime.now(timezone.utc),
                actor_kind=actor.kind,
                actor=actor.name[:100],
                source=actor.source[:100],
                action=action.value,
                target=target[:200],
                outcome=outcome,
                detail=_bounded(detail),
            )
        )


async def read(
    store: Store,
    since: datetime | None = None,
    user: str | None = None,
    event: str | None = None,
    limit: int = 1000,
) -> list[Entry]:
    """Newest last. `user` matches what a user did, in person, with their tokens or as
    the CLI's OS user (never a webhook or a failed sign-in that used the name); `event`
    matches the target."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditEntry.at >= since.astimezone(timezone.utc))
    if user is not None:
        query = query.where(AuditEntry.actor_kind.in_(("user", "token", "cli"))).where(
            or_(
                AuditEntry.actor == user,
                AuditEntry.actor.like(f"token % of {_literal(user)}", escape="\\"),
            )
        )
    if event is not None:
        query = query.where(AuditEntry.target == event)
    async with store.session() as session:
        rows = list(await session.scalars(query))
    if user is not None:  # SQLite's LIKE ignores case: "Alice" is not "alice"
        rows = [r for r in rows if r.actor == user or r.actor.endswith(f" of {user}")]
    return [
        Entry(
            r.id,
            r.at if r.at.tzinfo else r.at.replace(tzinfo=timezone.utc),
            r.actor_kind,
            r.actor,
            r.source,
            r.action,
            r.target,
            r.outcome,
            r.detail,
        )
        for r in reversed(rows)
    ]


async def prune(store: Store, retention_days: int) -> int:
    """Delete entries older than the retention; how many went."""
    cutoff = datetime.now(timezone.utc) - timedelta(days=retention_days)
    async with store.session() as session:
        done = await session.execute(delete(AuditEntry).where(AuditEntry.at < cutoff))
    return done.rowcount or 0


def _literal(text: str) -> str:
    """`text` inside a LIKE pattern, matched as itself (user names may hold `_`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

"""Dashboard sign-in sessions: created after a password check, held by the browser in an
HttpOnly cookie, checked on every page run (a role change or a deleted user takes effect
at the next click), ended by signing out."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import delete, select

from cronium_prefect.access import Actor, Role

from .credentials import aware, digest, matches, new_id, new_secret, now
from .store import Store
from .tables import Session, User

__all__ = ["start_session", "session_actor", "end_session", "LIFETIME"]

LIFETIME = timedelta(hours=12)
_FORM = re.compile(r"^([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


async def start_session(store: Store, user_id: int) -> str:
    """A new session of the user: the cookie's value (never stored)."""
    session_id, secret, started = new_id(), new_secret(), now()
    async with store.session() as db:
        await db.execute(delete(Session).where(Session.expires_at < started))  # the stale
        db.add(
            Session(
                id=session_id,
                user_id=user_id,
                secret_hash=digest(secret),
                created_at=started,
                expires_at=started + LIFETIME,
            )
        )
    return f"{session_id}_{secret}"


async def session_actor(store: Store, cookie: str | None, source: str) -> Actor | None:
    """The signed-in user a cookie stands for; None when it is no live session."""
    match = _FORM.fullmatch(cookie or "")
    if match is None:
        return None
    session_id, secret = match.groups()
    async with store.session() as db:
        found = (
            await db.execute(select(Session, User).join(User).where(Session.id == session_id))
        ).first()
    if found is None:
        return None
    session, user = found
    if not matches(session.secret_hash, secret) or aware(session.expires_at) <= now():
        return None
    return Actor("user", user.name, source, Role(user.role))


async def end_session(store: Store, cookie: str | None) -> None:
    match = _FORM.fullmatch(cookie or "")
    if match is None:
        return
    async with store.session() as db:
        await db.execute(delete(Session).where(Session.id == match.group(1)))

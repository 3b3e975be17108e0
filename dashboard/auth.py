"""Who uses the dashboard and what they may do.

Until the first user exists (`cronium user add`), the dashboard is open as before: every
visitor acts as `anonymous` with the admin role. From then on every page run needs a live
sign-in session: the browser holds it in an HttpOnly cookie set by the sign-in page
(signin.py); AppTest, which has no cookies, puts the same value in the session state.
Every action asks `require` first (the role is read from the database on each page run,
so a change takes effect at the next click), and records its outcome in the audit log:
pages hide or disable what a role may not do, but the check here is what refuses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import streamlit as st

from cronium_prefect.access import Actor, AuditAction, Permission, Role
from cronium_prefect.service import audit
from cronium_prefect.service.sessions import session_actor
from cronium_prefect.service.store import Store, server_store
from cronium_prefect.service.users import any_user

from .api import DashboardError

__all__ = [
    "COOKIE",
    "SESSION_STATE",
    "Forbidden",
    "current_actor",
    "require",
    "record",
    "in_store",
    "store",
    "NoServerDatabase",
]

T = TypeVar("T")
COOKIE = "cronium_session"
SESSION_STATE = "cronium_session"  # the cookie's value, where AppTest puts it
_WHAT = {
    Permission.read: "read this",
    Permission.run: "run events",
    Permission.pause: "pause or resume events",
    Permission.set_variable: "set or delete variables",
    Permission.manage: "change servers, secrets or events",
    Permission.administer: "manage users, tokens or the audit log",
}


class Forbidden(DashboardError):
    """The signed-in role may not do this (refused here, whatever the page showed)."""


class NoServerDatabase(DashboardError):
    """The dashboard cannot tell which database the Prefect server uses: it refuses to
    serve rather than check sign-ins against a database that is not the server's."""


@st.cache_resource(show_spinner=False)
def _store() -> Store | None:
    from prefect.settings import get_current_settings

    return server_store(get_current_settings().api.url)  # a connection per call


def store() -> Store:
    found = _store()
    if found is None:
        raise NoServerDatabase(
            "The dashboard cannot check sign-ins: it talks to a Prefect API on another "
            "machine, whose database it does not know. Set "
            "PREFECT_SERVER_DATABASE_CONNECTION_URL to the Prefect server's database."
        )
    return found


def in_store(work: Callable[[Store], Awaitable[T]]) -> T:
    return asyncio.run(work(store()))


def _source() -> str:
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "dashboard"  # AppTest: none


def _cookie() -> str | None:
    value = st.context.cookies.get(COOKIE)
    return value if isinstance(value, str) else None  # AppTest has no cookies


def current_actor() -> Actor | None:
    """The visitor: `anonymous` (admin) while no user exists, else the signed-in user, or
    None when sign-in is needed."""
    source = _source()

    async def who(db: Store) -> Actor | None:
        if not await any_user(db):
            return Actor("user", "anonymous", source, Role.admin)
        cookie = st.session_state.get(SESSION_STATE) or _cookie()
        return await session_actor(db, cookie, source)

    return in_store(who)


def require(permission: Permission, action: AuditAction, target: str) -> Actor:
    """The acting user when their role (and nothing else) allows `permission`; else the
    attempt is recorded as refused and Forbidden says why."""
    actor = current_actor()
    if actor is not None and actor.may(permission, target):
        return actor
    who = actor or Actor("user", "(signed out)", _source(), Role.viewer)
    in_store(
        lambda db: audit.record(
            db, who, action, target, audit.REFUSED, reason=f"role {who.role.value}"
        )
    )
    raise Forbidden(f"{who.name} ({who.role.value}) may not {_WHAT[permission]}")


def record(actor: Actor, action: AuditAction, target: str, **detail: Any) -> None:
    """Record what was done. Done it is: a failure to record is said, not raised."""
    from sqlalchemy.exc import SQLAlchemyError

    from cronium_prefect.service.store import StoreUnavailable

    try:
        in_store(lambda db: audit.record(db, actor, action, target, audit.OK, **detail))
    except (SQLAlchemyError, StoreUnavailable) as exc:
        logging.getLogger("cronium.dashboard").error("audit log: %s", exc)
        st.warning(f"Done, but the audit log did not record it: {type(exc).__name__}.")

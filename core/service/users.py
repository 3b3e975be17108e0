"""Users: a name, a role and an argon2id password hash (argon2-cffi's defaults)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select

from cronium_prefect.access import Role
from cronium_prefect.errors import CroniumError

from .credentials import now
from .store import Store
from .tables import Session, Token, User

__all__ = [
    "UserInfo",
    "UserError",
    "check_user_name",
    "add_user",
    "list_users",
    "delete_user",
    "set_role",
    "set_password",
    "authenticate",
    "any_user",
    "find_user",
    "MAX_PASSWORD",
]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 hashes any length; a bound keeps a sign-in cheap
_hasher = PasswordHasher()
# Verified when the name is unknown, so a sign-in takes as long either way.
_DUMMY = _hasher.hash("cronium-no-such-user")


class UserError(CroniumError):
    """A user operation refused: a bad name, password or role, a duplicate, the last admin."""


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: Role
    created_at: datetime


def check_user_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise UserError(
            f"user name {name!r}: 1-64 characters of letters, digits and _ . @ -, "
            "starting with a letter or digit"
        )
    return name


def _check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def _info(user: User) -> UserInfo:
    return UserInfo(user.id, user.name, Role(user.role), user.created_at)


async def add_user(store: Store, name: str, role: Role, password: str) -> UserInfo:
    check_user_name(name)
    hashed = _hasher.hash(_check_password(password))
    async with store.session() as session:
        if await session.scalar(select(User).where(User.name == name)):
            raise UserError(f"a user named {name!r} exists")
        user = User(name=name, role=Role(role).value, password_hash=hashed, created_at=now())
        session.add(user)
        await session.flush()
        return _info(user)


async def list_users(store: Store) -> list[UserInfo]:
    async with store.session() as session:
        return [_info(u) for u in await session.scalars(select(User).order_by(User.name))]


async def find_user(store: Store, name: str) -> UserInfo | None:
    async with store.session() as session:
        user = await session.scalar(select(User).where(User.name == name))
        return _info(user) if user else None


async def any_user(store: Store) -> bool:
    """Whether sign-in is required: once one user exists, everyone signs in."""
    async with store.session() as session:
        return bool(await session.scalar(select(func.count()).select_from(User)))


async def delete_user(store: Store, name: str) -> None:
    async with store.session() as session:
        user = await _existing(session, name)
        await _keep_an_admin(session, user, None)
        # Not left to ON DELETE CASCADE: SQLite enforces foreign keys only when asked.
        await session.execute(delete(Token).where(Token.user_id == user.id))
        await session.execute(delete(Session).where(Session.user_id == user.id))
        await session.execute(delete(User).where(User.id == user.id))


async def set_role(store: Store, name: str, role: Role) -> None:
    async with store.session() as session:
        user = await _existing(session, name)
        await _keep_an_admin(session, user, Role(role))
        user.role = Role(role).value


async def set_password(store: Store, name: str, password: str) -> None:
    hashed = _hasher.hash(_check_password(password))
    async with store.session() as session:
        user = await _existing(session, name)
        user.password_hash = hashed
        # A new password signs the user out everywhere (a leaked session ends with it).
        await session.execute(delete(Session).where(Session.user_id == user.id))


async def authenticate(store: Store, name: str, password: str) -> UserInfo | None:
    """The user when `password` is theirs; None otherwise (same work for unknown names)."""
    async with store.session() as session:
        user = await session.scalar(select(User).where(User.name == name))
    hashed = user.password_hash if user else _DUMMY
    try:  # ~0.1 s of CPU and 64 MiB: off the event loop, which serves everyone else
        await asyncio.to_thread(_hasher.verify, hashed, password[: MAX_PASSWORD + 1])
    except (VerificationError, InvalidHashError):
        return None
    return _info(user) if user else None


async def _existing(session, name: str) -> User:
    user = await session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserError(f"no user named {name!r} (see `cronium user list`)")
    return user


async def _keep_an_admin(session, user: User, new_role: Role | None) -> None:
    """Refuse to delete or demote the last admin: nobody could manage users any more."""
    if user.role != Role.admin.value or new_role == Role.admin:
        return
    admins = await session.scalar(
        select(func.count()).select_from(User).where(User.role == Role.admin.value)
    )
    if admins <= 1:
        raise UserError(f"{user.name!r} is the last admin: add another admin first")

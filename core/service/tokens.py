"""API tokens: `crn_<id>_<secret>`, shown once. The id finds the row; only the secret's
SHA-256 is stored and compared in constant time. A token acts as its user, narrowed to
its scopes; an expired or revoked one, or one whose user is gone, is refused."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from cronium_prefect.access import MAX_SCOPES, Actor, Role, check_scope
from cronium_prefect.errors import CroniumError

from .credentials import aware, digest, matches, new_id, new_secret, now
from .store import Store
from .tables import Token, User

__all__ = [
    "TokenInfo",
    "TokenError",
    "create_token",
    "list_tokens",
    "revoke_token",
    "token_actor",
    "PREFIX",
]

PREFIX = "crn_"
_FORM = re.compile(r"^crn_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
MAX_LIFETIME = timedelta(days=3650)


class TokenError(CroniumError):
    """A token operation refused: a bad scope, expiry, owner or id."""


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and aware(self.expires_at) <= now:
            return "expired"
        return "active"


async def create_token(
    store: Store, user: str, scopes: list[str], lifetime: timedelta | None, name: str = ""
) -> tuple[TokenInfo, str]:
    """A new token of `user` (info, and the full token text, which is never stored)."""
    if not scopes:
        raise TokenError("give at least one --scope (read, or run:EVENT)")
    if len(scopes) > MAX_SCOPES:
        raise TokenError(f"at most {MAX_SCOPES} scopes, got {len(scopes)}")
    try:
        scopes = [check_scope(s) for s in dict.fromkeys(scopes)]
    except ValueError as exc:
        raise TokenError(str(exc)) from None
    if lifetime is not None and not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise TokenError("--expires must be more than 0 and at most 3650d")
    if len(name) > 100:
        raise TokenError("a token's name has at most 100 characters")
    token_id, secret, created = new_id(), new_secret(), now()
    async with store.session() as session:
        owner = await session.scalar(select(User).where(User.name == user))
        if owner is None:
            raise TokenError(f"no user named {user!r} (see `cronium user list`)")
        row = Token(
            id=token_id,
            user_id=owner.id,
            name=name,
            secret_hash=digest(secret),
            scopes=scopes,
            created_at=created,
            expires_at=created + lifetime if lifetime else None,
            revoked_at=None,
            last_used_at=None,
        )
        session.add(row)
    return _info(row, user), f"{PREFIX}{token_id}_{secret}"


async def list_tokens(store: Store, user: str | None = None) -> list[TokenInfo]:
    async with store.session() as session:
        query = select(Token, User.name).join(User).order_by(Token.created_at)
        if user is not None:
            query = query.where(User.name == user)
        return [_info(token, owner) for token, owner in await session.execute(query)]


async def revoke_token(store: Store, token_id: str, user: str | None = None) -> TokenInfo:
    """Revoke a token (only `user`'s own, when given)."""
    async with store.session() as session:
        found = (
            await session.execute(select(Token, User.name).join(User).where(Token.id == token_id))
        ).first()
        if found is None or (user is not None and found[1] != user):
            raise TokenError(f"no token {token_id!r} (see `cronium token list`)")
        token, owner = found
        if token.revoked_at is None:
            token.revoked_at = now()
        return _info(token, owner)


async def token_actor(store: Store, text: str, source: str) -> Actor | None:
    """Who `text` (a presented token) acts as; None when it is not a live token."""
    match = _FORM.fullmatch(text)
    if match is None:
        return None
    token_id, secret = match.groups()
    at = now()
    async with store.session() as session:
        found = (
            await session.execute(select(Token, User).join(User).where(Token.id == token_id))
        ).first()
        if found is None:
            return None
        token, user = found
        if not matches(token.secret_hash, secret):
            return None
        if _info(token, user.name).state(at) != "active":
            return None
        # At most once a minute: a busy token does not write on every request.
        if token.last_used_at is None or at - aware(token.last_used_at) > timedelta(minutes=1):
            await session.execute(update(Token).where(Token.id == token_id).values(last_used_at=at))
    return Actor(
        "token", f"token {token_id} of {user.name}", source, Role(user.role), tuple(token.scopes)
    )


def _info(token: Token, user: str) -> TokenInfo:
    return TokenInfo(
        token.id,
        user,
        token.name,
        list(token.scopes),
        token.created_at,
        token.expires_at,
        token.revoked_at,
        token.last_used_at,
    )

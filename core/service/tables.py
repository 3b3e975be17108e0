"""Cronium's own tables, beside Prefect's in the same database. Every name starts with
`cronium_` (Prefect's migrations never touch them); the schema changes only through the
Alembic migrations in `migrations/versions/`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "User", "Token", "Session", "AuditEntry", "VERSION_TABLE"]

# Prefect's own Alembic keeps `alembic_version` in the same database.
VERSION_TABLE = "cronium_alembic_version"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True)}


class User(Base):
    __tablename__ = "cronium_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, with its parameters
    created_at: Mapped[datetime]


class Token(Base):
    """An API token: `crn_<id>_<secret>` is shown once; only the secret's SHA-256 is kept
    (a 256-bit random secret needs no slow hash, and every request checks one)."""

    __tablename__ = "cronium_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("cronium_users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class AuditEntry(Base):
    """One action that started or changed something, or a refused attempt. Append-only:
    nothing updates a row; retention deletes the oldest."""

    __tablename__ = "cronium_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))  # user | token | webhook | cli
    actor: Mapped[str] = mapped_column(String(100), index=True)
    source: Mapped[str] = mapped_column(String(100))  # an address, or "cli" / "dashboard"
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(200), index=True)  # event, key, user, ...
    outcome: Mapped[str] = mapped_column(String(16))  # ok | refused | failed
    detail: Mapped[dict] = mapped_column(JSON)


class Session(Base):
    """A dashboard sign-in: the browser holds `<id>_<secret>` in an HttpOnly cookie; only
    the secret's SHA-256 is kept. Signing out or deleting the user ends it."""

    __tablename__ = "cronium_sessions"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("cronium_users.id", ondelete="CASCADE"))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)

"""What tokens and sessions share: a public id, a random secret kept only as its SHA-256
(256 random bits need no slow hash, and every request checks one), and UTC times as the
database returns them."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone

__all__ = ["new_id", "new_secret", "digest", "matches", "aware", "now", "ID_CHARS"]

ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id() -> str:
    return "".join(secrets.choice(ID_CHARS) for _ in range(12))


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 43 characters of A-Z a-z 0-9 _ -


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(stored_digest: str, secret: str) -> bool:
    return hmac.compare_digest(stored_digest, digest(secret))


def aware(when: datetime) -> datetime:
    """SQLite returns naive datetimes: they were written in UTC."""
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def now() -> datetime:
    return datetime.now(timezone.utc)

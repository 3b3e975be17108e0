"""An event's webhook: how `POST /hooks/{event}` authenticates a caller, and the
signatures it checks. Pure: the HTTP service (service/hooks.py) does the I/O.

    webhook:
      auth: hmac            # token (default) | hmac | github
      secret: deploy-hook   # a Prefect Secret block: the bearer token or signing secret
      allow: [10.0.0.0/8]   # callers' addresses (CIDRs); absent: any
      rate: 30/minute       # at most this many accepted calls (the `limits` notation)
      replay_window: 5m     # hmac: how old a signed timestamp may be

- token: `Authorization: Bearer <the Secret block's value>`, or an API token whose
  scopes include `run:<event>` (the secret is then optional).
- hmac: `X-Cronium-Timestamp: <unix seconds>` and
  `X-Cronium-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + raw body>`;
  a timestamp outside the replay window is refused.
- github: GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import Enum
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .durations import Duration

__all__ = [
    "Webhook",
    "WebhookAuth",
    "sign",
    "github_sign",
    "signature_matches",
    "TIMESTAMP_HEADER",
    "SIGNATURE_HEADER",
    "GITHUB_HEADER",
    "MAX_ALLOW",
]

TIMESTAMP_HEADER = "X-Cronium-Timestamp"
SIGNATURE_HEADER = "X-Cronium-Signature"
GITHUB_HEADER = "X-Hub-Signature-256"
MAX_ALLOW = 100
_BLOCK_NAME = r"^[a-z0-9][a-z0-9-]{0,99}$"  # Prefect's block document names


class WebhookAuth(str, Enum):
    token = "token"
    hmac = "hmac"
    github = "github"


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth: WebhookAuth = WebhookAuth.token
    secret: Annotated[str, Field(pattern=_BLOCK_NAME)] | None = Field(
        default=None,
        description="The Prefect Secret block holding the bearer token or the signing secret.",
    )
    allow: list[IPv4Network | IPv6Network] | None = Field(default=None, max_length=MAX_ALLOW)
    rate: str | None = Field(
        default=None, description="At most this many accepted calls, e.g. 30/minute, 1000/day."
    )
    replay_window: Duration = Field(default=300.0, gt=0, le=86400)

    @field_validator("rate")
    @classmethod
    def _rate(cls, rate: str | None) -> str | None:
        if rate is None:
            return rate
        from limits import parse

        try:
            parse(rate)
        except ValueError:
            raise ValueError(
                f"rate {rate!r}: expected a count per period such as 30/minute, 5/second, "
                "1000/day or 10 per 5 minutes"
            ) from None
        return rate

    @model_validator(mode="after")
    def _secret_for_signatures(self) -> Webhook:
        if self.auth != WebhookAuth.token and self.secret is None:
            raise ValueError(f"auth: {self.auth.value} needs secret: the Secret block to sign with")
        return self

    def admits(self, address: str | None) -> bool:
        """Whether a caller at `address` may call (the allow-list, when there is one)."""
        if self.allow is None:
            return True
        try:
            caller = ip_address(address or "")
        except ValueError:
            return False
        # A dual-stack listener sees IPv4 callers as ::ffff:a.b.c.d.
        caller = getattr(caller, "ipv4_mapped", None) or caller
        return any(caller in network for network in self.allow)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Cronium-Signature` value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def github_sign(secret: str, body: bytes) -> str:
    """GitHub's `X-Hub-Signature-256` value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison; a missing or non-ASCII header never matches."""
    if not given or not given.isascii():
        return False
    return hmac.compare_digest(expected.encode(), given.strip().encode())

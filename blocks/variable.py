"""The `cronium-variable` block: one Cronium variable, global or scoped to an owner.

One block document per variable, so that runs writing different keys never touch the same
document: no update can be lost to a concurrent read-modify-write.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

__all__ = ["CroniumVariable", "KEY_PATTERN", "VALUE_LIMIT", "check_key", "document_name"]

KEY_PATTERN = re.compile(r"^[A-Z_][A-Z0-9_]*$")
RESERVED_PREFIXES = ("CRONIUM_", "PREFECT_")
VALUE_LIMIT = 10_000  # characters of JSON


def check_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):  # `$` allows a final \n
        raise ValueError(f"variable key {key!r} must match [A-Z_][A-Z0-9_]* (upper case)")
    if key.startswith(RESERVED_PREFIXES):
        raise ValueError(f"variable key {key!r} uses a reserved prefix (CRONIUM_, PREFECT_)")
    if len(key) > 100:
        raise ValueError(f"variable key {key[:20]!r}... is longer than 100 characters")
    return key


def check_value(key: str, value: Any) -> str:
    """The value as JSON text; refuses what is not JSON or is over the limit."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"variable {key}: value is not JSON-serialisable ({exc})") from None
    if len(text) > VALUE_LIMIT:
        raise ValueError(
            f"variable {key}: value is {len(text)} characters of JSON, over the limit of "
            f"{VALUE_LIMIT}"
        )
    return text


def document_name(key: str, owner: str | None) -> str:
    """Block document names allow a-z, 0-9 and '-': keys map one-to-one (upper case and '_'
    only), owners get a readable part plus a hash of the exact name."""
    slug = key.lower().replace("_", "-")
    if owner is None:
        return f"global--{slug}"
    readable = re.sub(r"[^a-z0-9]+", "-", owner.lower()).strip("-")[:40]
    digest = hashlib.sha256(owner.encode()).hexdigest()[:10]
    return f"owner-{readable}-{digest}--{slug}"


class CroniumVariable(Block):
    """A value scripts read with `getVariable` and write with `setVariable`.

    Example:
        ```python
        from cronium_prefect.blocks import CroniumVariable

        variable = CroniumVariable.load("global--api-token")
        ```
    """

    _block_type_name = "Cronium Variable"
    _block_type_slug = "cronium-variable"
    _description = "A Cronium variable: key, scope (global or an owner), plain or secret value."

    key: str = Field(description="Variable key: upper case letters, digits and '_'.")
    owner: str | None = Field(
        default=None, description="Owner whose events see it first; unset: global."
    )
    secret: bool = Field(default=False, description="Secret values are masked in logs and UI.")
    value_json: str | None = Field(
        default=None, description="The value as JSON text (plain variables)."
    )
    secret_json: SecretStr | None = Field(
        default=None, description="The value as JSON text (secret variables)."
    )

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        return check_key(value)

    @classmethod
    def of(cls, key: str, value: Any, owner: str | None = None, secret: bool = False):
        text = check_value(check_key(key), value)
        if secret:
            return cls(key=key, owner=owner, secret=True, secret_json=SecretStr(text))
        return cls(key=key, owner=owner, secret=False, value_json=text)

    @property
    def value(self) -> Any:
        text = self.secret_json.get_secret_value() if self.secret_json else self.value_json
        return None if text is None else json.loads(text)

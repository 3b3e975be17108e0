"""Variables scripts read and write: keys, values, scopes, and masking secrets (pure;
the store over Prefect blocks is `blocks.variable_store`).

Reads see the event owner's scope first, then global; writes go to the owner's scope when
the event has an owner, else global. Each variable is its own block document, so runs
writing different keys never lose an update; for the same key the last write wins.
A variable keeps its secrecy when a script overwrites it (also when an owner-scoped copy
of a secret global is created).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .caps import NestedTooDeep, check_depth
from .names import MASK

__all__ = [
    "Entry",
    "Visible",
    "VariableStore",
    "mask_secrets",
    "mask_value",
    "KEY_PATTERN",
    "VALUE_LIMIT",
    "check_key",
    "check_value",
    "is_key",
    "document_name",
]

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
    """The value as JSON text; refuses what is not JSON, nests too deep or is over the limit."""
    try:
        check_depth(value, f"variable {key}")
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except NestedTooDeep as exc:
        raise ValueError(str(exc)) from None
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


@dataclass(frozen=True)
class Entry:
    key: str
    owner: str | None
    value: Any
    secret: bool


@dataclass
class Visible:
    """The variables one run may see, flattened by scope, and which of them are secret."""

    values: dict[str, Any]
    secret_keys: set[str]

    def with_writes(self, changes: dict[str, Any]) -> Visible:
        """These variables after a run saved `changes` (a secret stays secret)."""
        if not changes:
            return self
        return Visible({**self.values, **changes}, self.secret_keys)

    @property
    def secret_values(self) -> list[str]:
        """Every text a secret can show up as: the value itself, its JSON form, each line
        of a multi-line value, the leaves of a structured one, and the URL-encoded, base64
        and JSON-escaped forms of each text."""
        texts: set[str] = set()
        for key in self.secret_keys:
            _secret_texts(self.values.get(key), texts, top=True)
        return sorted(t for t in texts if t)


def mask_secrets(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret text with the mask (***), longest first (so a secret that
    contains another is masked whole); `secrets` is Visible.secret_values."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def mask_value(value: Any, secrets: Sequence[str]) -> Any:
    """A JSON value with every secret text masked in its strings and keys, and a number
    or boolean-free scalar that is itself a secret replaced by the mask: what a script or
    an HTTP server returns as output, before it is stored or shown anywhere."""
    # A secret of 1-3 characters ("1", "off") would turn ordinary data into masks, and
    # the output is passed on as the next event's input: those are masked in logs only.
    secrets = [s for s in secrets if len(s) >= _MIN_FRAGMENT]
    if not secrets:
        return value
    known = set(secrets)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return mask_secrets(item, secrets)
        if isinstance(item, dict):
            masked: dict[str, Any] = {}
            for key, inner in item.items():
                name = mask_secrets(str(key), secrets)
                while name in masked:  # two keys masked alike: keep both entries
                    name += "'"
                masked[name] = walk(inner)
            return masked
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, int | float) and not isinstance(item, bool):
            return MASK if json.dumps(item) in known else item
        return item

    return walk(value)


# Shorter fragments of a secret (a line, a leaf) would mask ordinary words everywhere.
_MIN_FRAGMENT = 4


def _encodings(text: str) -> set[str]:
    """The common ways a secret is re-encoded on its way out: URL-encoded (a query string,
    a form), base64 (a Basic auth header, a token file) and JSON-escaped (inside a JSON
    document). Base64 of a secret inside a longer base64 text is not findable this way."""
    raw = text.encode()
    found = {
        urllib.parse.quote(text, safe=""),
        urllib.parse.quote_plus(text),
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
    }
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        found.update((encoded.decode(), encoded.decode().rstrip("=")))
    return {f for f in found if f != text and len(f) >= _MIN_FRAGMENT}


def _secret_texts(value: Any, into: set[str], top: bool = False) -> None:
    if isinstance(value, str):
        if top or len(value) >= _MIN_FRAGMENT:
            into.add(value)
            into.update(_encodings(value))
        into.update(
            line.strip() for line in value.splitlines() if len(line.strip()) >= _MIN_FRAGMENT
        )
    elif isinstance(value, dict | list):
        if top:
            into.add(json.dumps(value))
        for item in value.values() if isinstance(value, dict) else value:
            _secret_texts(item, into)
    elif value is not None and not isinstance(value, bool):
        text = json.dumps(value)
        if top or len(text) >= _MIN_FRAGMENT:
            into.add(text)


class VariableStore(Protocol):
    def visible(self, owner: str | None, keys: Collection[str] | None = None) -> Visible: ...

    def write(
        self, changes: dict[str, Any], owner: str | None, secret_keys: set[str] | None = None
    ) -> None: ...

    def set(self, key: str, value: Any, owner: str | None = None, secret: bool = False) -> None: ...


def is_key(key: Any) -> bool:
    try:
        check_key(key)
    except ValueError:
        return False
    return True

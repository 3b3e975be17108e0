"""Variables scripts read and write, stored as `cronium-variable` Prefect blocks.

Reads see the event owner's scope first, then global; writes go to the owner's scope when
the event has an owner, else global. Each variable is its own block document, so runs
writing different keys never lose an update; for the same key the last write wins.
A variable keeps its secrecy when a script overwrites it (also when an owner-scoped copy
of a secret global is created).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from cronium_prefect.blocks import documents
from cronium_prefect.blocks.documents import documents_query
from cronium_prefect.blocks.variable import CroniumVariable, check_key, document_name

__all__ = [
    "Entry",
    "Visible",
    "VariableStore",
    "BlockVariableStore",
    "get_variable_store",
    "mask_secrets",
]


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

    @property
    def secret_values(self) -> list[str]:
        """Every text a secret can show up as in a log line: the value itself, its JSON
        form, each line of a multi-line value, and the leaves of a structured one."""
        texts: set[str] = set()
        for key in self.secret_keys:
            _secret_texts(self.values.get(key), texts, top=True)
        return sorted(t for t in texts if t)


def mask_secrets(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """Replace every secret text with ***, longest first (so a secret containing another is
    masked whole); `secrets` is Visible.secret_values."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# Shorter fragments of a secret (a line, a leaf) would mask ordinary words everywhere.
_MIN_FRAGMENT = 4


def _secret_texts(value: Any, into: set[str], top: bool = False) -> None:
    if isinstance(value, str):
        if top or len(value) >= _MIN_FRAGMENT:
            into.add(value)
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
    def visible(self, owner: str | None) -> Visible: ...

    def write(self, changes: dict[str, Any], owner: str | None) -> None: ...

    def set(self, key: str, value: Any, owner: str | None = None, secret: bool = False) -> None: ...


class BlockVariableStore:
    """Synchronous (call it from threads or the CLI, not from a running event loop)."""

    slug = CroniumVariable.get_block_type_slug()

    def entries(self) -> list[Entry]:
        found: list[Entry] = []
        with get_client(sync_client=True) as client:
            while True:
                query = documents_query(self.slug, len(found), include_secrets=True)
                page = client.request("POST", "/block_documents/filter", json=query).json()
                for document in page:
                    data = document["data"]
                    if not _is_key(data.get("key")):
                        # Saved around the model (Prefect's API or UI): a key such as `../x`
                        # would become a path when a run writes in/vars/<KEY>. Not a variable.
                        continue
                    text = data.get("secret_json") if data.get("secret") else data.get("value_json")
                    found.append(
                        Entry(
                            data["key"],
                            data.get("owner"),
                            None if text is None else json.loads(text),
                            bool(data.get("secret")),
                        )
                    )
                if len(page) < documents.PAGE:
                    return found

    def visible(self, owner: str | None) -> Visible:
        entries = self.entries()
        seen = {e.key: e for e in entries if e.owner is None}
        if owner is not None:
            seen.update({e.key: e for e in entries if e.owner == owner})  # owner scope wins
        return Visible(
            values={key: e.value for key, e in seen.items()},
            secret_keys={key for key, e in seen.items() if e.secret},
        )

    def get(self, key: str, owner: str | None = None) -> Entry | None:
        """Owner scope first, then global."""
        check_key(key)
        entries = {(e.owner, e.key): e for e in self.entries()}
        return entries.get((owner, key)) or entries.get((None, key))

    def set(self, key: str, value: Any, owner: str | None = None, secret: bool = False) -> None:
        CroniumVariable.of(key, value, owner, secret).save(
            document_name(key, owner), overwrite=True, _sync=True
        )

    def write(self, changes: dict[str, Any], owner: str | None) -> None:
        if not changes:
            return
        secret_keys = self.visible(owner).secret_keys
        for key, value in changes.items():
            self.set(key, value, owner, secret=key in secret_keys)

    def delete(self, key: str, owner: str | None = None) -> bool:
        check_key(key)
        with get_client(sync_client=True) as client:
            try:
                document = client.read_block_document_by_name(
                    document_name(key, owner), block_type_slug=self.slug
                )
            except ObjectNotFound:
                return False
            client.delete_block_document(document.id)
            return True


def _is_key(key: Any) -> bool:
    try:
        check_key(key)
    except ValueError:
        return False
    return True


def get_variable_store() -> BlockVariableStore:
    return BlockVariableStore()

"""The variable store: each Cronium variable a `cronium-variable` block document, read a
page at a time, written one document per key (see `cronium_prefect.variables`)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from cronium_prefect.prefect_adapter import save_block_sync
from cronium_prefect.variables import Entry, Visible, check_key, document_name, is_key

from .documents import of_type, read_documents_sync
from .variable import CroniumVariable, stored_value

__all__ = ["BlockVariableStore", "get_variable_store"]


class BlockVariableStore:
    """Synchronous (call it from threads or the CLI, not from a running event loop)."""

    slug = CroniumVariable.get_block_type_slug()

    def entries(self, keys: Collection[str] | None = None, owner: str | None = None) -> list[Entry]:
        """Every variable; with `keys`, only those keys, global and in `owner`'s scope
        (one request whatever the number of variables)."""
        where = of_type(self.slug)
        if keys is not None and not keys:
            return []
        if keys is not None:
            names = {document_name(check_key(k), o) for k in keys for o in {None, owner}}
            where = {**where, "block_documents": {"name": {"any_": sorted(names)}}}
        with get_client(sync_client=True) as client:
            documents = read_documents_sync(client, where, include_secrets=True)
        found: list[Entry] = []
        for document in documents:
            data = document["data"]
            if not is_key(data.get("key")) or (keys is not None and data["key"] not in keys):
                # Saved around the model (Prefect's API or UI): a key such as `../x` would
                # become a path when a run writes in/vars/<KEY>. Not a variable.
                continue
            text = data.get("secret_json") if data.get("secret") else data.get("value_json")
            found.append(
                Entry(
                    data["key"],
                    data.get("owner"),
                    None if text is None else stored_value(data["key"], text),
                    bool(data.get("secret")),
                )
            )
        return found

    def visible(self, owner: str | None, keys: Collection[str] | None = None) -> Visible:
        """What a run of `owner`'s may see: with `keys` (the event's `variables`), only those."""
        entries = self.entries(keys, owner)
        seen = {e.key: e for e in entries if e.owner is None}
        if owner is not None:
            seen.update({e.key: e for e in entries if e.owner == owner})  # owner scope wins
        return Visible(
            values={key: e.value for key, e in seen.items()},
            secret_keys={key for key, e in seen.items() if e.secret},
        )

    def get(self, key: str, owner: str | None = None) -> Entry | None:
        """Owner scope first, then global."""
        entries = {(e.owner, e.key): e for e in self.entries([key], owner)}
        return entries.get((owner, key)) or entries.get((None, key))

    def set(self, key: str, value: Any, owner: str | None = None, secret: bool = False) -> None:
        save_block_sync(
            CroniumVariable.of(key, value, owner, secret), document_name(key, owner), overwrite=True
        )

    def write(
        self, changes: dict[str, Any], owner: str | None, secret_keys: set[str] | None = None
    ) -> None:
        """Save a run's variable writes; a secret stays secret. The secrets are read again
        now (one made secret while the run went must not be saved in clear), and those in
        `secret_keys` (what the run read at its start) stay secret too."""
        if not changes:
            return
        secret_keys = (secret_keys or set()) | self.visible(owner, changes).secret_keys
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


def get_variable_store() -> BlockVariableStore:
    return BlockVariableStore()

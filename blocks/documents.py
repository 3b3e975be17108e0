"""Reading block documents a page at a time: the one reader every listing uses.

Prefect's `GET /block_types/slug/{slug}/block_documents` has no paging (it returns them
all, whatever offset the client passes); `POST /block_documents/filter` pages properly.
"""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import PrefectClient, SyncPrefectClient

__all__ = ["PAGE", "NOTIFIERS", "of_type", "read_documents", "read_documents_sync"]

PAGE = 200

# The filter parts that select documents (merge them): every notification block.
NOTIFIERS: dict[str, Any] = {"block_schemas": {"block_capabilities": {"all_": ["notify"]}}}


def of_type(slug: str) -> dict[str, Any]:
    """The filter part that selects one block type's documents."""
    return {"block_types": {"slug": {"any_": [slug]}}}


def _body(where: dict[str, Any], offset: int, include_secrets: bool) -> dict[str, Any]:
    return {
        **where,
        "include_secrets": include_secrets,
        "sort": "NAME_ASC",
        "offset": offset,
        "limit": PAGE,
    }


async def read_documents(
    client: PrefectClient, where: dict[str, Any], include_secrets: bool = False
) -> list[dict[str, Any]]:
    """Every block document `where` selects (as the API's JSON), a page at a time."""
    found: list[dict[str, Any]] = []
    while True:
        response = await client.request(
            "POST", "/block_documents/filter", json=_body(where, len(found), include_secrets)
        )
        page = response.json()
        found += page
        if len(page) < PAGE:
            return found


def read_documents_sync(
    client: SyncPrefectClient, where: dict[str, Any], include_secrets: bool = False
) -> list[dict[str, Any]]:
    """`read_documents` with Prefect's synchronous client (threads and the CLI)."""
    found: list[dict[str, Any]] = []
    while True:
        response = client.request(
            "POST", "/block_documents/filter", json=_body(where, len(found), include_secrets)
        )
        page = response.json()
        found += page
        if len(page) < PAGE:
            return found

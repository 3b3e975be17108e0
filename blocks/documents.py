"""Reading every block document of one type a page at a time.

Prefect's `GET /block_types/slug/{slug}/block_documents` has no paging (it returns them
all, whatever offset the client passes); `POST /block_documents/filter` pages properly.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PAGE", "documents_query"]

PAGE = 200


def documents_query(slug: str, offset: int, include_secrets: bool) -> dict[str, Any]:
    """The body of `POST /block_documents/filter` for one page of a type's documents."""
    return {
        "block_types": {"slug": {"any_": [slug]}},
        "include_secrets": include_secrets,
        "sort": "NAME_ASC",
        "offset": offset,
        "limit": PAGE,
    }

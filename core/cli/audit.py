"""`cronium audit`: who did what, when, from where, and how it ended."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

import typer

from .common import JsonOption, fail_usage, out, print_json, visible
from .users import in_store

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_log)


def _since(text: str | None) -> datetime | None:
    """A duration back from now (`2h`, `7d`) or an ISO date or time (UTC unless given)."""
    from cronium_prefect.durations import parse_duration

    if text is None:
        return None
    try:
        return datetime.now(timezone.utc) - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise fail_usage(
            f"--since {text!r}: expected a duration back from now (2h, 7d) or an ISO date "
            "or time (2026-12-01, 2026-12-01T08:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def audit_log(
    since: Annotated[
        str | None, typer.Option(help="Entries from this long ago (7d) or this date on.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="One user's actions (and their tokens').")
    ] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Actions on this event (or key, user).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many.")] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Read the audit log, oldest first; old entries go after CRONIUM_AUDIT_RETENTION_DAYS."""
    from cronium_prefect.service.audit import prune, read
    from cronium_prefect.settings import get_settings

    start = _since(since)

    async def work(store):
        await prune(store, get_settings().audit_retention_days)
        return await read(store, start, user, event, limit)

    entries = in_store(work)
    if as_json:
        print_json([entry.__dict__ for entry in entries])
        return
    for e in entries:
        detail = " ".join(f"{k}={v}" for k, v in e.detail.items())
        line = (
            f"{e.at:%Y-%m-%d %H:%M:%S} {e.actor_kind}:{e.actor} from {e.source} "
            f"{e.action} {e.target} -> {e.outcome}" + (f" ({detail})" if detail else "")
        )
        out.print(
            visible(line),  # callers chose some of it: no colour or control code passes
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

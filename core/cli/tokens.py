"""`cronium token create | list | revoke`: API tokens for webhooks and `GET /runs/{id}`.
A token is shown once, when created; only its hash is kept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

import typer

from cronium_prefect.access import AuditAction

from .common import JsonOption, audit, fail_usage, out, print_json
from .users import in_store

__all__ = ["tokens_app"]

tokens_app = typer.Typer(help="API tokens, with scopes and an expiry.", no_args_is_help=True)


def _lifetime(text: str) -> timedelta | None:
    from cronium_prefect.durations import parse_duration

    if text == "never":
        return None
    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError as exc:
        raise fail_usage(f"--expires {text!r}: {exc}, or never") from None


@tokens_app.command("create")
def create(
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="read, or run:EVENT (a name or glob); repeat for more."),
    ],
    user: Annotated[
        str | None, typer.Option("--user", help="Whose token [default: the only user]")
    ] = None,
    expires: Annotated[str, typer.Option(help="Lifetime such as 30d, or never.")] = "90d",
    name: Annotated[str, typer.Option(help="What it is for.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a token; it is printed once (store it now)."""
    from cronium_prefect.service.tokens import create_token
    from cronium_prefect.service.users import list_users

    lifetime = _lifetime(expires)
    if user is None:
        users = in_store(list_users)
        if len(users) != 1:
            raise fail_usage("give --user NAME: whose token it is (see `cronium user list`)")
        user = users[0].name
    info, text = in_store(
        lambda store: create_token(store, user, scope, lifetime, name),
        (AuditAction.token_create, user),
    )
    audit(AuditAction.token_create, info.id, user=user, scopes=info.scopes)
    if as_json:
        print_json({"id": info.id, "user": user, "token": text, "expires": info.expires_at})
        return
    until = info.expires_at.strftime("%Y-%m-%d %H:%M UTC") if info.expires_at else "never"
    out.print(
        f"token {info.id} of {user} ({', '.join(info.scopes)}), expires {until}:\n{text}\n"
        "It is not shown again.",
        highlight=False,
        markup=False,
    )


@tokens_app.command("list")
def list_(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List tokens (never their secrets): id, user, scopes, state, expiry, last use."""
    from cronium_prefect.service.tokens import list_tokens

    tokens = in_store(lambda store: list_tokens(store, user))
    now = datetime.now(timezone.utc)
    rows = [
        {
            "id": t.id,
            "user": t.user,
            "name": t.name,
            "scopes": t.scopes,
            "state": t.state(now),
            "expires": t.expires_at,
            "last_used": t.last_used_at,
        }
        for t in tokens
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        out.print(
            "\t".join(
                [
                    row["id"],
                    row["user"],
                    ",".join(row["scopes"]),
                    row["state"],
                    _when(row["expires"], "never"),
                    _when(row["last_used"], "unused"),
                    *([row["name"]] if row["name"] else []),
                ]
            ),
            highlight=False,
            markup=False,
        )


def _when(at: datetime | None, none: str) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else none


@tokens_app.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a token: it is refused from now on."""
    from cronium_prefect.service.tokens import revoke_token

    info = in_store(
        lambda store: revoke_token(store, token_id), (AuditAction.token_revoke, token_id)
    )
    audit(AuditAction.token_revoke, info.id, user=info.user)
    out.print(f"revoked token {info.id} of {info.user}", highlight=False)

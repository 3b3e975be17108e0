"""`cronium user add | list | delete | role | password`: people who sign in to the
dashboard, with a role. Run on the server's machine (the CLI writes the database)."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import typer

from cronium_prefect.access import AuditAction, Role

from .common import JsonOption, audit, fail_usage, out, print_json

__all__ = ["users_app", "read_password", "in_store"]

users_app = typer.Typer(
    help="Users of the dashboard and the API, with a role.", no_args_is_help=True
)
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def in_store(work: Any, refused: tuple[AuditAction, str] | None = None) -> Any:
    """Run `work(store)` against Cronium's tables; refused operations are exit 2 (and
    recorded as refused: the action and target `refused` names)."""
    from sqlalchemy.exc import SQLAlchemyError

    from cronium_prefect.errors import CroniumError

    from .common import audit_store, fail

    store = audit_store()
    if store is None:
        raise fail_usage(
            "users, tokens and the audit log live in the Prefect server's database: run this "
            "on the server's machine, or set PREFECT_SERVER_DATABASE_CONNECTION_URL"
        )

    async def go() -> Any:
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except CroniumError as exc:
        if refused is not None:
            audit(*refused, outcome="refused", error=str(exc))
        raise fail_usage(str(exc)) from None
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"cannot reach Cronium's tables: {type(exc).__name__}: {exc}") from None


def read_password(from_stdin: bool) -> str:
    """From standard input (one line), or asked twice at a terminal; never an argument."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
def add(
    name: str,
    role: Annotated[Role, typer.Option("--role", help="admin, operator or viewer.")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a user (the password is asked for, or read from standard input)."""
    from cronium_prefect.service.users import UserError, add_user, check_user_name

    try:
        check_user_name(name)  # before the password is typed
    except UserError as exc:
        raise fail_usage(str(exc)) from None
    password = read_password(password_stdin)
    in_store(lambda store: add_user(store, name, role, password), (AuditAction.user_add, name))
    audit(AuditAction.user_add, name, role=role.value)
    out.print(f"added {name} ({role.value})", highlight=False)


@users_app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List users and their roles."""
    from cronium_prefect.service.users import list_users

    users = in_store(list_users)
    if as_json:
        print_json([{"name": u.name, "role": u.role.value, "created": u.created_at} for u in users])
        return
    for user in users:
        out.print(f"{user.name}\t{user.role.value}", highlight=False, markup=False)
    if not users:
        out.print("no users: the dashboard needs no sign-in until one exists", highlight=False)


@users_app.command("delete")
def delete(name: str) -> None:
    """Delete a user and their tokens (never the last admin)."""
    from cronium_prefect.service.users import delete_user

    in_store(lambda store: delete_user(store, name), (AuditAction.user_delete, name))
    audit(AuditAction.user_delete, name)
    out.print(f"deleted {name}", highlight=False)


@users_app.command("role")
def role(
    name: str, role: Annotated[Role, typer.Argument(help="admin, operator or viewer.")]
) -> None:
    """Change a user's role (the last admin stays an admin)."""
    from cronium_prefect.service.users import set_role

    in_store(lambda store: set_role(store, name, role), (AuditAction.user_role, name))
    audit(AuditAction.user_role, name, role=role.value)
    out.print(f"{name} is now {role.value}", highlight=False)


@users_app.command("password")
def password(name: str, password_stdin: PasswordStdin = False) -> None:
    """Set a user's password."""
    from cronium_prefect.service.users import set_password

    text = read_password(password_stdin)
    in_store(lambda store: set_password(store, name, text), (AuditAction.user_password, name))
    audit(AuditAction.user_password, name)
    out.print(f"password of {name} set", highlight=False)

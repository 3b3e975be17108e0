"""`cronium var set | get | list | delete`: variables stored as cronium-variable blocks."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cronium_prefect.access import AuditAction
from cronium_prefect.errors import CroniumError
from cronium_prefect.names import MASK

from .common import EXIT_FAILED, JsonOption, audit, fail_usage, out, print_json, visible

__all__ = ["vars_app"]

vars_app = typer.Typer(help="Variables scripts read and write.", no_args_is_help=True)
OwnerOption = Annotated[str | None, typer.Option("--owner", help="Owner scope; default global.")]
RevealOption = Annotated[bool, typer.Option("--reveal", help="Show secret values.")]


def _store():
    from cronium_prefect.blocks.variable_store import get_variable_store

    return get_variable_store()


def _checked(call, *args: Any) -> Any:
    try:
        return call(*args)
    except (ValueError, CroniumError) as exc:  # CroniumError: JSON nested too deep
        raise fail_usage(str(exc)) from None


@vars_app.command("set")
def set_variable(
    key: str,
    value: Annotated[
        str | None,
        typer.Argument(
            help="JSON when it parses, else kept as text. Leave it out (or give -) to read it "
            "from standard input, or to be asked for it at a terminal: a secret then stays "
            "out of `ps` and the shell's history."
        ),
    ] = None,
    secret: Annotated[bool, typer.Option("--secret", help="Mask it in logs and listings.")] = False,
    owner: OwnerOption = None,
) -> None:
    """Set a variable."""
    from cronium_prefect.runtime_helpers.host import parse_text_value
    from cronium_prefect.variables import check_key

    _checked(check_key, key)  # before the user types or pipes a secret in
    if value is None or value == "-":  # a value of "-" itself: give it as JSON, '"-"'
        value = _value_from_stdin(key)
    _checked(_store().set, key, _checked(parse_text_value, value), owner, secret)
    audit(AuditAction.variable_set, key, owner=owner, secret=secret)  # never the value


def _value_from_stdin(key: str) -> str:
    from cronium_prefect.variables import VALUE_LIMIT

    if sys.stdin.isatty():
        return typer.prompt(f"value of {key}", hide_input=True)
    try:
        text = sys.stdin.read(VALUE_LIMIT + 3)  # the value, a final CR LF, then one more
    except UnicodeDecodeError:
        raise fail_usage("the value on standard input is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if len(text) > VALUE_LIMIT:
        raise fail_usage(f"the value on standard input is over {VALUE_LIMIT} characters")
    if not text:
        raise fail_usage("no value: give one, or pipe it in (`... | cronium var set KEY --secret`)")
    return text


@vars_app.command("get")
def get_variable(key: str, owner: OwnerOption = None, reveal: RevealOption = False) -> None:
    """Print a variable's value as JSON (owner scope first, then global); exit 1 if unset."""
    entry = _checked(_store().get, key, owner)
    if entry is None:
        raise typer.Exit(EXIT_FAILED)
    print_json(MASK if entry.secret and not reveal else entry.value)


@vars_app.command("list")
def list_variables(as_json: JsonOption = False, reveal: RevealOption = False) -> None:
    """List every variable, secrets masked unless --reveal."""
    rows = [
        {
            "key": e.key,
            "owner": e.owner,
            "secret": e.secret,
            "value": MASK if e.secret and not reveal else e.value,
        }
        for e in sorted(_store().entries(), key=lambda e: (e.owner or "", e.key))
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("key", "scope", "value")
    for row in rows:
        shown = row["value"] if row["value"] == MASK else json.dumps(row["value"])
        if len(shown) > 80:
            shown = f"{shown[:77]}... ({len(shown)} characters; `cronium var get` shows all)"
        table.add_row(row["key"], row["owner"] or "global", Text(visible(shown)))
    out.print(table)


@vars_app.command("delete")
def delete_variable(key: str, owner: OwnerOption = None) -> None:
    """Delete a variable from one scope; exit 1 if it did not exist."""
    if not _checked(_store().delete, key, owner):
        audit(AuditAction.variable_delete, key, "refused", owner=owner, error="no such variable")
        raise typer.Exit(EXIT_FAILED)
    audit(AuditAction.variable_delete, key, owner=owner)

"""What every `cronium` command shares: consoles, exit codes, error printing."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from cronium_prefect.terminal import visible

__all__ = [
    "visible",
    "out",
    "err",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "fail_usage",
    "fail",
    "print_json",
    "JsonOption",
    "checked_settings",
    "cli_actor",
    "audit_store",
    "audit",
]


class _Console(Console):
    """A console that passes no control character but colour through in a string it prints:
    log lines, outputs, errors and server facts come from scripts and servers."""

    def print(self, *objects: Any, **options: Any) -> None:
        shown = (visible(o, keep_colours=True) if isinstance(o, str) else o for o in objects)
        super().print(*shown, **options)


out = _Console()
err = _Console(stderr=True)

EXIT_FAILED = 1
EXIT_USAGE = 2

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _error(message: str) -> None:
    # User text may contain brackets: never let Rich read it as markup.
    line = Text("error: ", style="red") + Text(visible(message))
    err.print(line, highlight=False, soft_wrap=True)


def fail_usage(message: str) -> typer.Exit:
    """Bad usage or invalid input: exit 2. `raise fail_usage(...)`."""
    _error(message)
    return typer.Exit(EXIT_USAGE)


def fail(message: str) -> typer.Exit:
    """The command could not do its work: exit 1. `raise fail(...)`."""
    _error(message)
    return typer.Exit(EXIT_FAILED)


def checked_settings() -> Any:
    """The settings, for a command that runs scripts: refused ones are exit 2, and each
    one that loosens a guard is named on stderr, with its source, before anything runs."""
    from cronium_prefect.settings import InvalidSettings, get_settings, loosened

    try:
        settings = get_settings()
    except InvalidSettings as exc:
        raise fail_usage(f"invalid setting: {exc}") from None
    for item in loosened(settings):
        err.print(Text("warning: ", style="bold yellow") + Text(visible(item)), highlight=False)
    return settings


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")


def cli_actor() -> Any:
    """The CLI as an audit actor: the OS user on this machine, with the database (admin)."""
    import getpass

    from cronium_prefect.access import Actor, Role

    return Actor("cli", getpass.getuser(), "cli", Role.admin)


def audit_store() -> Any:
    """Cronium's tables when this CLI shares the server's database (service.store's
    `server_store`). A CLI on another machine, talking to a remote Prefect API, has none:
    it acts through Prefect's API as an administrator, which the audit log cannot see."""
    from prefect.settings import get_current_settings

    from cronium_prefect.service.store import server_store

    return server_store(get_current_settings().api.url)


def audit(action: Any, target: str, outcome: str = "ok", **detail: Any) -> None:
    """Record what this command did in the audit log, when it shares the database. A
    failure to record is said, never hidden, and does not undo what was done."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy.exc import SQLAlchemyError

    from cronium_prefect.errors import CroniumError
    from cronium_prefect.service.audit import record

    store = audit_store()
    if store is None:
        return

    async def write() -> None:
        try:
            await record(store, cli_actor(), action, target, outcome, **detail)
        finally:
            await store.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: called between a command's asyncio.run calls
        running = asyncio.run
    else:  # inside a command's coroutine: a loop of its own, in a thread

        def running(coroutine: Any) -> None:
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, coroutine).result()

    try:
        running(write())
    except (CroniumError, OSError, SQLAlchemyError) as exc:
        err.print(f"warning: not recorded in the audit log: {exc}", highlight=False)

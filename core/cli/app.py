"""The `cronium` application: its commands, the Prefect API every command talks to, and
API failures as one-line errors."""

from __future__ import annotations

from typing import Annotated

import typer

from cronium_prefect.errors import CroniumError

from .audit import register as register_audit_command
from .common import EXIT_FAILED, EXIT_USAGE, err, out
from .events import register as register_event_commands
from .project import register as register_project_commands
from .runs import register as register_run_commands
from .servers import servers_app
from .service import register as register_service_command
from .stack import register as register_stack_commands
from .tokens import tokens_app
from .users import users_app
from .vars import vars_app
from .workflows import register as register_workflow_commands

__all__ = ["app", "main"]

app = typer.Typer(
    name="cronium",
    help="Cronium on Prefect: run scripts, HTTP requests and messages as Prefect deployments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


register_event_commands(app)
register_run_commands(app)
register_workflow_commands(app)
register_stack_commands(app)
register_project_commands(app)
app.add_typer(servers_app, name="server")
app.add_typer(vars_app, name="var")
app.add_typer(users_app, name="user")
app.add_typer(tokens_app, name="token")
register_audit_command(app)
register_service_command(app)


def _print_version(asked: bool) -> None:
    if asked:
        from cronium_prefect.version import __version__

        out.print(f"cronium {__version__}", highlight=False)
        raise typer.Exit()


# `up` starts (or finds) the API itself; the others need none (users, tokens and the audit
# log are tables in the database, not Prefect objects).
_NO_API = (None, "up", "prepare-database", "export", "init", "user", "token", "audit")
_RUNS_SCRIPTS = ("run", "worker")  # (`up` checks its settings first itself)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Cronium on Prefect: run scripts, HTTP requests and messages as Prefect deployments."""
    if ctx.resilient_parsing or ctx.invoked_subcommand in _NO_API:
        return
    if ctx.invoked_subcommand in _RUNS_SCRIPTS:
        # Their refused settings (checked_settings) are said before Prefect's import.
        from cronium_prefect.settings import get_settings

        get_settings()
    from .api import using_api

    # Every command talks to the same API: configured, else `cronium up`'s, else a temporary
    # one — except a worker or the dashboard, which would serve a server nobody else sees.
    ctx.with_resource(
        using_api(
            lambda note: err.print(note, style="dim", highlight=False),
            allow_ephemeral=ctx.invoked_subcommand not in ("worker", "dashboard", "api"),
        )
    )


def main() -> None:
    from cronium_prefect.settings import InvalidSettings

    try:
        app()
    except InvalidSettings as exc:  # read before the command, to find the API
        err.print(f"error: invalid setting: {exc}", highlight=False, markup=False)
        raise SystemExit(EXIT_USAGE) from None
    except CroniumError as exc:  # raised while entering the API settings
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise SystemExit(EXIT_FAILED) from None
    except Exception as exc:
        # Imported here: `--version` or a refused setting need not pay for httpx or Prefect.
        import httpx

        if not isinstance(exc, (httpx.HTTPError, OSError)):  # Prefect's status error is one
            raise
        from prefect.settings import get_current_settings

        url = get_current_settings().api.url or "the temporary Prefect server"
        raise SystemExit(_api_failure(url, exc)) from None


def _api_failure(url: str, exc: Exception) -> int:
    response = getattr(exc, "response", None)
    if response is not None and response.status_code == 401:
        message = (
            f"the Prefect API at {url} refused the credentials (401): set "
            "PREFECT_API_AUTH_STRING to the server's PREFECT_SERVER_API_AUTH_STRING"
        )
    else:
        message = f"cannot talk to the Prefect API at {url}: {exc}"
    err.print(f"error: {message}", highlight=False, markup=False)
    return EXIT_FAILED

"""The `cronium` command line. Exit codes: 0 success, 1 the run or command failed,
2 bad usage or invalid input (always a message, never a traceback)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_common import EXIT_FAILED, JsonOption, err, fail, fail_usage, out, print_json
from .cli_events import register as register_event_commands
from .cli_runs import register as register_run_commands
from .cli_servers import servers_app
from .cli_up import register as register_up
from .cli_vars import vars_app
from .errors import CroniumError, EventNotFound, InvalidEvent, RunFailed
from .event import NAME_PATTERN, Event
from .loader import load_file

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
register_up(app)
app.add_typer(servers_app, name="server")
app.add_typer(vars_app, name="var")


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Cronium on Prefect: run scripts, HTTP requests and messages as Prefect deployments."""
    if ctx.resilient_parsing or ctx.invoked_subcommand in (None, "up", "export"):
        return  # `up` starts (or finds) the API itself; `export` needs none
    from .stack import using_api

    # Every command talks to the same API: configured, else `cronium up`'s, else a temporary
    # one — except a worker or the dashboard, which would serve a server nobody else sees.
    ctx.with_resource(
        using_api(
            lambda note: err.print(note, style="dim", highlight=False),
            allow_ephemeral=ctx.invoked_subcommand not in ("worker", "dashboard"),
        )
    )


def _parse_input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise fail_usage(f"--input is not valid JSON: {exc}") from None


def _pick_event(target: str, name: str | None) -> Event | str:
    """A definition file gives an Event; anything else must be a deployed event's name."""
    path = Path(target)
    if path.is_file():
        events = load_file(path)
        chosen = [e for e in events if e.name == name] if name else events
        if len(chosen) == 1:
            return chosen[0]
        names = ", ".join(e.name for e in events) or "none"
        if name:
            raise fail_usage(f"{target} has no event named {name!r} (it has: {names})")
        raise fail_usage(f"{target} defines {len(events)} events ({names}); pick one with --event")
    if not re.fullmatch(NAME_PATTERN, target):
        raise fail_usage(f"{target!r} is neither a definition file nor an event name")
    return target


InputOption = Annotated[str | None, typer.Option("--input", help="Run input, as JSON.")]


@app.command()
def run(
    target: Annotated[
        str, typer.Argument(metavar="FILE_OR_NAME", help="Definition file or event name.")
    ],
    input: InputOption = None,
    event_name: Annotated[
        str | None, typer.Option("--event", help="Which event, when the file defines several.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run one event now and wait: stream its logs, print status, output and condition.

    A file runs without being deployed; a name runs the deployed event's definition.
    """
    input_data = _parse_input(input)
    try:
        chosen = _pick_event(target, event_name)
        record = asyncio.run(_run_now(chosen, input_data))
    except InvalidEvent as exc:
        raise fail_usage(f"invalid definition:\n{exc}") from None
    except EventNotFound as exc:
        raise fail_usage(str(exc)) from None
    except CroniumError as exc:
        raise fail(str(exc)) from None
    except RuntimeError as exc:
        if "Failed to reach API" not in str(exc):  # Prefect's words for an unreachable API
            raise
        raise fail(f"cannot talk to the Prefect API: {exc}") from None
    _print_record(record, as_json)
    raise typer.Exit(0 if record["status"] == "SUCCESS" else EXIT_FAILED)


async def _run_now(chosen: Event | str, input_data: Any) -> dict[str, Any]:
    from cronium_prefect.flows import cronium_event
    from cronium_prefect.flows.resolve import resolve_event

    event = await resolve_event(chosen)  # unknown names fail here, before any run exists
    state = await cronium_event(event=event, input=input_data, trigger="manual", return_state=True)
    result = await state.result(raise_on_failure=False)
    record = result.record if isinstance(result, RunFailed) else result
    if not isinstance(record, dict):
        raise CroniumError(f"the run ended in {state.name}: {state.message or result}")
    return record


def _print_record(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        keys = (
            "event",
            "run_id",
            "status",
            "exit_code",
            "output",
            "condition",
            "duration_s",
            "error",
        )
        summary = {key: record.get(key) for key in keys}
        summary["servers"] = [
            {k: s.get(k) for k in ("name", "status", "exit_code")} for s in record["servers"]
        ]
        print_json(summary)
        return
    colour = {"SUCCESS": "green", "PARTIAL": "yellow"}.get(record["status"], "red")
    out.print(
        f"[bold {colour}]{record['status']}[/] {record['event']}  exit code "
        f"{record['exit_code']}  {record['duration_s']:.2f} s (setup {record['setup_s']:.2f} s, "
        f"execution {record['execution_s']:.2f} s)",
        highlight=False,
    )
    if record.get("error"):
        out.print(f"error: {record['error']}", highlight=False, markup=False)
    out.print(
        "output:",
        json.dumps(record["output"], indent=2, ensure_ascii=False),
        highlight=False,
        markup=False,
    )
    out.print(f"condition: {json.dumps(record['condition'])}", highlight=False)
    out.print(f"run id: {record['run_id']}", style="dim", highlight=False)


def main() -> None:
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import get_current_settings

    try:
        app()
    except CroniumError as exc:  # raised while entering the API settings
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise SystemExit(EXIT_FAILED) from None
    except (httpx.HTTPError, PrefectHTTPStatusError, OSError) as exc:
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


if __name__ == "__main__":
    main()

"""`cronium run | trigger | logs | worker`: one run now, runs through deployments, and the
workers that run them."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import re
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from cronium_prefect.access import AuditAction
from cronium_prefect.caps import InputTooLarge, NestedTooDeep, check_input, load_json
from cronium_prefect.errors import CroniumError, EventNotFound, InvalidEvent, RunFailed
from cronium_prefect.event import NAME_PATTERN, Event
from cronium_prefect.loader import load_file
from cronium_prefect.names import Trigger
from cronium_prefect.record import RunRecord
from cronium_prefect.settings import get_settings

from .common import (
    EXIT_FAILED,
    JsonOption,
    audit,
    checked_settings,
    err,
    fail,
    fail_usage,
    out,
)
from .records import exit_with_record, follow_run, print_log, print_record, warn

LOG_BATCH_SECONDS = 0.5  # how often `cronium worker` ships log lines, unless Prefect's is set

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    for command in (run, trigger, logs, worker):
        app.command()(command)


def trigger(
    name: str,
    input: Annotated[str | None, typer.Option("--input", help="Run input, as JSON.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run; exit like `run`.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run now through the deployment: a worker picks it up (\"Run now\")."""
    from prefect.client.orchestration import get_client

    from cronium_prefect.flows.resolve import run_now

    input_data = _parse_input(input)

    async def go() -> tuple[Any, RunRecord | None]:
        async with get_client() as client:
            try:
                run = await run_now(client, name, input_data)
            except (EventNotFound, InputTooLarge, NestedTooDeep) as exc:
                audit(AuditAction.trigger, name, "refused", error=str(exc))
                raise fail_usage(str(exc)) from None
            audit(AuditAction.trigger, name, run_id=str(run.id))
            err.print(f"triggered {name}: flow run {run.id}", highlight=False)
            if not wait:
                return run, None
            return await follow_run(client, run.id, as_json)

    run, record = asyncio.run(go())
    if not wait:
        if as_json:
            out.print(json.dumps({"event": name, "run_id": str(run.id)}))
        return
    exit_with_record(run, record, as_json)


def logs(
    target: Annotated[str, typer.Argument(metavar="RUN_ID_OR_EVENT")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
) -> None:
    """Print a run's logs (an event name means its latest run)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.exceptions import ObjectNotFound

    from cronium_prefect.flows.follow import follow_logs

    async def go() -> None:
        async with get_client() as client:
            try:
                run_id = uuid.UUID(target)
            except ValueError:
                runs = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[target])),
                    sort=FlowRunSort.START_TIME_DESC,
                    limit=1,
                )
                if not runs:
                    raise fail_usage(f"no runs of an event named {target!r}") from None
                run_id = runs[0].id
            try:
                await follow_logs(client, run_id, print_log, follow=follow, warn=warn)
            except ObjectNotFound:
                raise fail_usage(f"no flow run {target}") from None

    asyncio.run(go())


def worker(
    pool: Annotated[str | None, typer.Option(help="Work pool (default: cronium).")] = None,
    limit: Annotated[int, typer.Option(help="Runs at once.")] = 8,
    name: Annotated[str | None, typer.Option(help="Worker name shown in Prefect.")] = None,
) -> None:
    """Run a worker here: it executes the pool's event runs in this process."""
    from prefect.settings import get_current_settings, temporary_settings

    from cronium_prefect.flows.worker import serve

    settings = checked_settings()
    updates = {
        "worker.query_seconds": settings.worker_poll_seconds,
        "worker.prefetch_seconds": max(settings.worker_poll_seconds * 2, 2),
        "worker.enable_cancellation": True,
        "worker.cancellation_poll_seconds": 5,
    }
    if "batch_interval" not in get_current_settings().logging.to_api.model_fields_set:
        # Prefect ships log lines every 2 s: a line would show ~1 s late on average (up to
        # 2 s) in the UI, the dashboard and `cronium logs --follow`. bench/log_latency.py
        updates["logging.to_api.batch_interval"] = LOG_BATCH_SECONDS
    signal.signal(signal.SIGTERM, _stop_on_term)
    with temporary_settings(updates=updates):
        try:
            asyncio.run(serve(pool or settings.work_pool, limit, name))
        except KeyboardInterrupt:
            err.print("worker stopped", highlight=False)
        finally:
            _arm(None)  # stopped: sending its last logs at exit is not the stop


# A worker stops within ~20 s (10 s for its runs' scripts to end, 10 s for their flows to
# record it). Past this, it says what each thread is doing and exits: once one outlived
# SIGTERM by more than 30 s (not reproduced since), and its caller gave up on it.
STOP_DEADLINE_S = 25


def _stop_on_term(*_: Any) -> None:
    """systemd, `docker stop` and `cronium up` stop a worker with SIGTERM, which killed it
    at once: stop as on Ctrl-C instead (its runs' scripts stopped and the runs marked
    Crashed, their last log lines sent), within STOP_DEADLINE_S."""
    if _watchdog is None or not _watchdog.is_alive():
        _arm(threading.Timer(STOP_DEADLINE_S, _stopped_too_slowly))
    signal.raise_signal(signal.SIGINT)


_watchdog: threading.Timer | None = None


def _arm(timer: threading.Timer | None) -> None:
    """Start `timer` as the stop's watchdog (None: disarm the current one)."""
    global _watchdog
    if _watchdog is not None:
        _watchdog.cancel()
    _watchdog = timer
    if timer is not None:
        timer.daemon = True
        timer.start()


def _stopped_too_slowly() -> None:
    err.print(
        f"worker: still stopping {STOP_DEADLINE_S} s after SIGTERM; what each thread is doing:",
        highlight=False,
    )
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    err.print("worker: exiting now (crash detection marks its unfinished runs)", highlight=False)
    os._exit(EXIT_FAILED)


def _parse_input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return load_json(text, "--input")
    except NestedTooDeep as exc:
        raise fail_usage(str(exc)) from None
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
    checked_settings()
    input_data = _parse_input(input)
    try:
        chosen = _pick_event(target, event_name)
        record = asyncio.run(_run_now(chosen, input_data))
    except InvalidEvent as exc:
        raise fail_usage(f"invalid definition:\n{exc}") from None
    except (EventNotFound, InputTooLarge, NestedTooDeep) as exc:
        raise fail_usage(str(exc)) from None
    except CroniumError as exc:
        raise fail(str(exc)) from None
    except RuntimeError as exc:
        if "Failed to reach API" not in str(exc):  # Prefect's words for an unreachable API
            raise
        raise fail(f"cannot talk to the Prefect API: {exc}") from None
    # A run of a file or of a deployed event's definition, here: recorded like a trigger.
    audit(AuditAction.trigger, record.event, run_id=record.run_id, via="cronium run")
    print_record(record, as_json)
    raise typer.Exit(0 if record.status.ok else EXIT_FAILED)


async def _run_now(chosen: Event | str, input_data: Any) -> RunRecord:
    from cronium_prefect.flows import cronium_event
    from cronium_prefect.flows.resolve import resolve_event

    event = await resolve_event(chosen)  # unknown names fail here, before any run exists
    check_input(input_data, get_settings().input_limit, "--input")
    state = await cronium_event(
        event=event, input=input_data, trigger=Trigger.MANUAL, return_state=True
    )
    result = await state.result(raise_on_failure=False)
    if isinstance(result, RunFailed) and result.record is not None:
        return result.record
    if not isinstance(result, dict):
        raise CroniumError(f"the run ended in {state.name}: {state.message or result}")
    return RunRecord.from_json(result)

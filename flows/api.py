"""Cronium from a user's own Prefect code: run an event, or a script as a task.

from prefect import flow
from cronium_prefect import run_event, docker_script, ssh_script

@flow
async def nightly():
    rows = await docker_script("import cronium; cronium.output([1, 2, 3])", "python")
    report = await run_event("nightly-report", input=rows)   # a deployed event's definition
    await ssh_script("df -h /", servers=["web-1"])
"""

from __future__ import annotations

import re
from typing import Any

from prefect import task

from cronium_prefect.caps import check_input
from cronium_prefect.errors import RunFailed
from cronium_prefect.event import Event
from cronium_prefect.names import Trigger
from cronium_prefect.record import RunRecord
from cronium_prefect.settings import get_settings

from .event_flow import cronium_event

__all__ = ["run_event", "docker_script", "ssh_script"]


async def run_event(event: Event | str, input: Any = None) -> RunRecord:
    """Run an event (a definition, or a deployed event's name) as a subflow of the calling
    flow, or as a flow of its own outside one. Returns the run record; a failed run raises
    `RunFailed` (its `.record` holds the record)."""
    check_input(input, get_settings().input_limit, "the input")
    state = await cronium_event(event=event, input=input, trigger=Trigger.API, return_state=True)
    result = await state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    return RunRecord.from_json(result)


def _adhoc_name(script: str, language: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", script.lower()).strip("-")[:40].strip("-")
    return f"adhoc-{language}-{words or 'script'}"


@task(name="cronium-docker-script")
async def docker_script(
    script: str,
    language: str = "bash",
    *,
    input: Any = None,
    image: str | None = None,
    env: dict[str, str] | None = None,
    timeout: str | float = "1h",
    resources: dict[str, Any] | None = None,
) -> Any:
    """Run a script in a fresh locked-down container with the runtime helpers; returns its
    output (what it passed to `cronium.output`). Raises `RunFailed` when it fails."""
    event = Event.model_validate(
        {
            "name": _adhoc_name(script, language),
            "type": language,
            "script": script,
            "image": image,
            "env": env or {},
            "timeout": timeout,
            "resources": resources or {},
        }
    )
    return (await run_event(event, input)).output


@task(name="cronium-ssh-script")
async def ssh_script(
    script: str,
    language: str = "bash",
    *,
    servers: list[str],
    input: Any = None,
    env: dict[str, str] | None = None,
    timeout: str | float = "1h",
) -> Any:
    """Run a script on `cronium-ssh-server` servers (in parallel); returns the output (a map
    by server when there are several). Raises `RunFailed` unless every server succeeded."""
    event = Event.model_validate(
        {
            "name": _adhoc_name(script, language),
            "type": language,
            "script": script,
            "run_location": "remote",
            "servers": servers,
            "env": env or {},
            "timeout": timeout,
        }
    )
    record = await run_event(event, input)
    if not record.status.ok:
        raise RunFailed(record)
    return record.output

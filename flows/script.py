"""One attempt of a script event: stage the helpers, run the backend, keep what it set."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cronium_prefect.event import Event
from cronium_prefect.executors.base import ExecutionRequest, ExecutionResult, Limits
from cronium_prefect.executors.docker import DockerExecutor
from cronium_prefect.runtime_helpers.host import Staging
from cronium_prefect.settings import CroniumSettings
from cronium_prefect.variables import VariableStore, Visible

__all__ = ["ScriptRun", "run_script_attempt"]

_docker: DockerExecutor | None = None
_docker_lock = threading.Lock()


def _docker_executor(staging_root: Path) -> DockerExecutor:
    """One executor per process: it holds the client; at first use, leftovers of dead
    processes (containers, run directories) are reaped."""
    global _docker
    with _docker_lock:
        if _docker is None:
            Staging.reap_orphans(staging_root)
            _docker = DockerExecutor()
        return _docker


@dataclass
class ScriptRun:
    """Everything an attempt needs, resolved once per flow run."""

    event: Event
    input: Any
    run_id: str
    trigger: str
    deployment_id: str | None
    start_time: str
    variables: Visible
    store: VariableStore
    log: logging.LoggerAdapter
    settings: CroniumSettings
    attempt: int = 0
    result: ExecutionResult | None = None

    def metadata(self, attempt: int, server: str) -> dict[str, Any]:
        event = self.event
        return {
            "id": self.deployment_id,
            "name": event.name,
            "type": event.type.value,
            "run_id": self.run_id,
            "trigger": self.trigger,
            "run_location": event.run_location.value,
            "server": server,
            "owner": event.owner,
            "tags": event.tags,
            "start_time": self.start_time,
            "attempt": attempt,
        }

    def limits(self) -> Limits:
        resources, settings = self.event.resources, self.settings
        return Limits(
            memory=resources.memory or settings.default_memory,
            cpus=resources.cpus or settings.default_cpus,
            pids=resources.pids or settings.default_pids,
            network=resources.network or settings.default_network,
            tmpfs_size=settings.tmpfs_size,
        )

    def image(self) -> str:
        language = self.event.type.value
        return self.event.image or getattr(self.settings, f"image_{language}")


def _container_uid(user: str) -> int | None:
    uid = user.partition(":")[0]
    return int(uid) if uid.isdigit() else None


def run_script_attempt(run: ScriptRun, attempt: int) -> ExecutionResult:
    """Blocking: runs in a worker thread. Variable writes are saved whatever the outcome."""
    event = run.event
    language = event.type.value
    staging = Staging.create(
        run.settings.staging_root,
        language,
        event.script or "",
        run.input,
        run.metadata(attempt, "local"),
        run.variables.values,
        writer_uid=_container_uid(run.settings.docker_user),
    )
    try:
        request = ExecutionRequest(
            run_id=run.run_id,
            language=language,
            staging=staging,
            timeout=event.timeout,
            env=event.env,
            on_line=lambda stream, line: run.log.info("[%s] %s", stream, line),
            secrets=run.variables.secret_values,
            output_limit=run.settings.output_limit,
            image=run.image(),
            limits=run.limits(),
            labels={"io.cronium.event": event.name, "io.cronium.attempt": str(attempt)},
        )
        result = _docker_executor(run.settings.staging_root).run(request)
        if result.collected.variables:
            run.store.write(result.collected.variables, event.owner)
        if result.oom_killed or result.timed_out:
            run.log.error("%s", result.error)
        return result
    finally:
        staging.remove()

"""One attempt of a script event on one target: "local" (Docker) or a server (SSH).

Stage the helpers, run the backend, keep what the script set. Blocking: runs in threads,
one per target, so a multi-server run goes to every server at once.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from cronium_prefect.blocks.ssh_server import SSHServer
from cronium_prefect.errors import DockerUnavailable, ExecutorError
from cronium_prefect.event import Event, RunLocation
from cronium_prefect.executors.base import ExecutionRequest, ExecutionResult, Executor, Limits
from cronium_prefect.executors.ssh import SSHExecutor
from cronium_prefect.names import SCRIPT_LINE_FORMAT, Trigger
from cronium_prefect.runtime_helpers.host import Staging
from cronium_prefect.settings import CroniumSettings
from cronium_prefect.variables import VariableStore, Visible

from .runtime import Runtime

__all__ = ["ScriptRun", "run_on_target", "LOCAL"]

LOCAL = "local"
_write_lock = threading.Lock()


@dataclass
class ScriptRun:
    """Everything an attempt needs, resolved once per flow run, and the results so far."""

    event: Event
    input: Any
    run_id: str
    trigger: Trigger
    deployment_id: str | None
    start_time: str
    variables: Visible
    store: VariableStore
    log: logging.LoggerAdapter
    settings: CroniumSettings
    runtime: Runtime
    servers: dict[str, SSHServer] = field(default_factory=dict)
    pool: str | None = None  # the work pool of the flow run, to name in errors
    attempt: int = 0
    results: dict[str, ExecutionResult] = field(default_factory=dict)
    written: dict[str, Any] = field(default_factory=dict)  # the variables saved, as saved
    cancel: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> ScriptRun:
        self.runtime.running[self.run_id] = self.cancel
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.runtime.running.pop(self.run_id, None)

    @property
    def targets(self) -> list[str]:
        if self.event.run_location == RunLocation.remote:
            return list(self.event.servers)
        return [LOCAL]

    def pending(self) -> list[str]:
        """Targets without a successful result yet: a retry reruns only those."""
        return [t for t in self.targets if not (t in self.results and self.results[t].succeeded)]

    def metadata(self, attempt: int, server: str) -> dict[str, Any]:
        event = self.event
        return {
            "id": self.deployment_id,
            "name": event.name,
            "type": event.type.value,
            "run_id": self.run_id,
            "trigger": self.trigger.value,
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


def _executor(run: ScriptRun, target: str) -> Executor:
    if target == LOCAL:
        try:
            return run.runtime.docker()
        except DockerUnavailable as exc:  # a worker of the wrong pool, most often
            raise DockerUnavailable(
                f"{exc} This worker (host {socket.gethostname()}, work pool "
                f"{run.pool or 'none'}) cannot run Docker events: send them to a pool whose "
                "workers have Docker, with the event's `pool:` field."
            ) from None
    return SSHExecutor(
        run.servers[target],
        target,
        run.runtime.ssh_pool,
        run.settings.ssh_remote_dir,
        say=lambda message: run.log.warning("%s", message),
        stale_after=run.settings.ssh_stale_after,
    )


def run_on_target(run: ScriptRun, attempt: int, target: str, variables: Visible) -> ExecutionResult:
    """One attempt on one target, seeing `variables` (the run's, with what its earlier
    attempts saved). Variable writes are saved whatever the outcome; infrastructure errors
    become results."""
    event = run.event
    language = event.type.value
    staging = Staging.create(
        run.settings.staging_root,
        language,
        event.script or "",
        run.input,
        run.metadata(attempt, target),
        variables.values,
        writer_uid=_container_uid(run.settings.docker_user) if target == LOCAL else None,
    )
    tag = "" if len(run.targets) == 1 and target == LOCAL else f"{target} "
    try:
        request = ExecutionRequest(
            run_id=run.run_id,
            language=language,
            staging=staging,
            timeout=event.timeout,
            env=event.env,
            on_line=lambda stream, line: run.log.info(SCRIPT_LINE_FORMAT, tag, stream, line),
            secrets=variables.secret_values,
            output_limit=run.settings.output_limit,
            out_max_files=run.settings.out_max_files,
            max_variables=run.settings.max_variable_writes,
            image=run.image(),
            limits=run.limits(),
            labels={"io.cronium.event": event.name, "io.cronium.attempt": str(attempt)},
            cancel=run.cancel,
        )
        try:
            result = _executor(run, target).run(request)
        except ExecutorError as exc:
            run.log.error("%s%s", f"{target}: " if tag else "", exc)
            return ExecutionResult(error=str(exc))
        undeclared = _undeclared(event, result.collected.variables)
        if undeclared:  # after the script's own error, if it had one: both are the run's
            result.error = f"{result.error}; {undeclared}" if result.error else undeclared
            run.log.error("%s%s", f"{target}: " if tag else "", undeclared)
        elif result.collected.variables:
            try:
                with _write_lock:  # servers of one run write in turn; the last server wins
                    changes = result.collected.variables
                    run.store.write(changes, event.owner, run.variables.secret_keys)
                    run.written.update(changes)
            except Exception as exc:  # the store (Prefect API) failed: say so, never drop it
                result.error = (
                    f"could not save variables {sorted(result.collected.variables)}: {exc}"
                )
                run.log.error("%s", result.error)
        if result.oom_killed or result.timed_out:
            run.log.error("%s%s", f"{target}: " if tag else "", result.error)
        return result
    finally:
        staging.remove()


def _undeclared(event: Event, written: dict[str, Any]) -> str | None:
    """Why the run's writes are refused when it wrote a variable its event does not
    declare (all or nothing, as for the cap on writes)."""
    if event.variables is None:
        return None
    extra = sorted(set(written) - set(event.variables))
    if not extra:
        return None
    return (
        f"the script wrote {', '.join(extra)}, not in the event's variables "
        f"({', '.join(event.variables) or 'none'}); none of its variable writes was saved"
    )

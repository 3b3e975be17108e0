"""What executes runs in one process, held in one object: the settings, the Docker
executor (and its client), the SSH connection pool, the template sandbox and the runs
executing here.

`cronium worker` makes its own, hands it to its runs (a context variable its run loops
inherit: Prefect's engine calls the flow, so it cannot be a parameter) and closes it when
it stops (SSH connections closed). `cronium run` and the Python API use the process's
default one. Leftovers of dead processes (containers, run directories) are reaped here,
and only here.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cronium_prefect.errors import ExecutorError
from cronium_prefect.runtime_helpers.host import Staging
from cronium_prefect.settings import CroniumSettings, get_settings

if TYPE_CHECKING:
    from cronium_prefect.executors.docker import DockerExecutor
    from cronium_prefect.executors.ssh_pool import ConnectionPool
    from cronium_prefect.executors.template_sandbox import TemplateSandbox

_log = logging.getLogger("cronium.runtime")

__all__ = [
    "Runtime",
    "current_runtime",
    "using_runtime",
    "configured_docker_client",
    "private_directories",
]


class Runtime:
    def __init__(self, settings: CroniumSettings | None = None):
        from cronium_prefect.executors.ssh_pool import ConnectionPool

        from .servers import announce_circuit

        self.settings = settings or get_settings()
        private_directories(self.settings.home, _results_directory())
        self.ssh_pool: ConnectionPool = ConnectionPool(
            threshold=self.settings.ssh_breaker_threshold,
            cooldown=self.settings.ssh_breaker_cooldown,
            announce=announce_circuit,
        )
        # By flow run id, the cancel switch of each run executing here (`cancel_run`).
        self.running: dict[str, threading.Event] = {}
        # The worker is stopping (SIGTERM, Ctrl-C): its runs are cut short, not cancelled
        # (a workflow leaves its steps running, to be resumed: see workflow_flow).
        self.stopping = False
        # By flow run id, the deployment the worker read to start the run: the run reads it
        # from here instead of asking the API again.
        self.deployments: dict[str, Any] = {}
        self._docker: DockerExecutor | None = None
        self._templates: TemplateSandbox | None = None
        self._lock = threading.Lock()

    def docker(self) -> DockerExecutor:
        """The Docker executor (one client for every run); made at first use, after the
        leftovers of dead processes are reaped. Raises DockerUnavailable."""
        with self._lock:
            if self._docker is None:
                from cronium_prefect.executors.docker import DockerExecutor

                executor = DockerExecutor(
                    configured_docker_client(self.settings),
                    user=self.settings.docker_user,
                    pull=self.settings.docker_pull,
                )
                self._reap(executor)
                self._docker = executor
            return self._docker

    @property
    def templates(self) -> TemplateSandbox:
        """Where messages and HTTP requests are rendered (child processes, made at first
        use)."""
        with self._lock:
            if self._templates is None:
                from cronium_prefect.executors.template_sandbox import TemplateSandbox

                self._templates = TemplateSandbox(
                    memory_mb=self.settings.template_memory_mb,
                    cpu_seconds=self.settings.template_cpu_seconds,
                    max_chars=self.settings.template_max_chars,
                )
            return self._templates

    def reap_leftovers(self) -> str | None:
        """Remove what runs of dead processes left here (containers, run directories), as a
        worker starts or a crashed run starts again; the reason when Docker cannot be
        reached (SSH events still work)."""
        fresh = self._docker is None
        try:
            executor = self.docker()
        except ExecutorError as exc:
            return str(exc)
        if not fresh:  # a new executor has just been reaped around
            self._reap(executor)
        return None

    def _reap(self, executor: DockerExecutor) -> None:
        Staging.reap_orphans(self.settings.staging_root)
        executor.reap_orphans()

    def cancel_run(self, run_id: str) -> bool:
        """Kill the scripts of a flow run executing here; False if none is."""
        cancel = self.running.get(run_id)
        if cancel is None:
            return False
        cancel.set()
        return True

    def close(self) -> None:
        """Close what outlives runs: SSH connections, the Docker client, the template
        renderers."""
        self.ssh_pool.close()
        with self._lock:
            if self._docker is not None:
                self._docker.client.close()
                self._docker = None
            if self._templates is not None:
                self._templates.close()
                self._templates = None


_current: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar(
    "cronium_runtime", default=None
)
_default: Runtime | None = None
_default_lock = threading.Lock()


def current_runtime() -> Runtime:
    """The runtime of the worker running this code, else the process's default one."""
    found = _current.get()
    if found is not None:
        return found
    global _default
    with _default_lock:
        if _default is None:
            _default = Runtime()
        return _default


@contextlib.contextmanager
def using_runtime(runtime: Runtime) -> Iterator[Runtime]:
    """Code inside (and the threads and loops it starts, which copy the context) runs on
    `runtime`."""
    token = _current.set(runtime)
    try:
        yield runtime
    finally:
        _current.reset(token)


def private_directories(*paths: Path) -> None:
    """Make each directory owner-only (0700), tightening an existing one: Cronium's
    home holds run directories and the encryption key, and Prefect's result files hold
    run records. A directory of 0700 keeps every file under it from other users, whatever
    the file's own mode (Prefect writes results 0644)."""
    for path in paths:
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            info = path.stat()
            # Only what is ours, and never the user's home itself (CRONIUM_HOME=$HOME).
            if info.st_mode & 0o077 and info.st_uid == os.getuid() and path != Path.home():
                path.chmod(0o700)
                _log.warning("made %s private (0700): it was open to other users", path)
        except OSError as exc:
            _log.warning("could not make %s private: %s", path, exc)


def _results_directory() -> Path:
    from prefect.settings import get_current_settings

    return Path(get_current_settings().results.local_storage_path).expanduser()


def configured_docker_client(settings: CroniumSettings | None = None) -> Any:
    """The Docker daemon runs go to: the prefect-docker `DockerHost` block named by
    CRONIUM_DOCKER_HOST_BLOCK, else the environment's (DOCKER_HOST or the local socket).
    Raises DockerUnavailable when it does not answer."""
    from cronium_prefect.executors.docker import docker_client

    block_name = (settings or get_settings()).docker_host_block
    if not block_name:
        return docker_client()
    from prefect_docker import DockerHost

    from cronium_prefect.prefect_adapter import load_block_sync

    return docker_client(
        lambda: load_block_sync(DockerHost, block_name).get_client(),
        f"DockerHost block {block_name!r}",
    )

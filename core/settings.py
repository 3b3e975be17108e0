"""Process-wide settings, read from `CRONIUM_*` environment variables (or a `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CroniumSettings", "get_settings"]


class CroniumSettings(BaseSettings):
    """Knobs an operator sets once per machine; per-event choices live on the Event."""

    model_config = SettingsConfigDict(env_prefix="CRONIUM_", env_file=".env", extra="ignore")

    home: Path = Field(
        default=Path.home() / ".cronium",
        description="Where Cronium keeps its database and staging directories.",
    )
    image_bash: str = Field(
        default="debian:bookworm-slim", description="Default image for bash events."
    )
    image_python: str = Field(
        default="python:3.12-slim", description="Default image for python events."
    )
    image_node: str = Field(default="node:22-slim", description="Default image for node events.")
    docker_host_block: str | None = Field(
        default=None,
        description="Name of a prefect-docker `DockerHost` block to connect with; "
        "unset: the environment (DOCKER_HOST, the local socket).",
    )
    docker_pull: str = Field(
        default="missing",
        pattern="^(missing|never)$",
        description="`missing`: pull an image that is not present locally; `never`: fail instead.",
    )
    docker_user: str = Field(
        default="65534:65534",
        description="User the script runs as inside the container (default: nobody).",
    )
    default_memory: str = Field(default="512m", description="Memory limit when an event sets none.")
    default_cpus: float = Field(default=1.0, description="CPU limit when an event sets none.")
    default_pids: int = Field(default=256, description="Process limit when an event sets none.")
    default_network: str = Field(default="bridge", description="Network when an event sets none.")
    tmpfs_size: str = Field(default="256m", description="Size of the writable /tmp in containers.")
    output_limit: int = Field(
        default=1024 * 1024, description="Largest output a script may set, in bytes."
    )
    out_max_files: int = Field(
        default=1000,
        ge=10,
        description="Most entries (files and directories) a script may leave in its out/ "
        "directory; more stops the run.",
    )
    max_variable_writes: int = Field(
        default=100, ge=1, description="Most variables one run may write (none saved beyond)."
    )
    input_limit: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest run input (as JSON, in bytes): --input, the dashboard's Run now, "
        "the output a run_event action passes on, the Python API.",
    )
    retry_backoff: float = Field(
        default=10.0, description="First retry delay in seconds; doubles with every retry."
    )
    ssh_breaker_threshold: int = Field(
        default=3, ge=1, description="Consecutive connection failures that open a circuit."
    )
    ssh_breaker_cooldown: float = Field(
        default=30.0, gt=0, description="Seconds an open circuit fails fast before retrying."
    )
    ssh_remote_dir: str = Field(
        default=".cronium/runs",
        description="Where run directories are made on SSH servers (relative: to the home).",
    )
    ssh_stale_after: float = Field(
        default=600.0,
        ge=10,
        description="Seconds after which a run directory on an SSH server that no worker "
        "touched is a dead worker's: the next worker to connect kills what is left of it "
        "and removes it (a live worker touches its runs' every quarter of this).",
    )
    work_pool: str = Field(default="cronium", description="Work pool event deployments use.")
    worker_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often `cronium worker` asks for new runs."
    )
    crash_after: int = Field(
        default=90,
        ge=60,
        description="Seconds without a heartbeat after which a worker's run is marked Crashed "
        "(its worker sends one every 30 s).",
    )
    chain_limit: int = Field(
        default=10, ge=1, description="Deepest run_event chain (A -> B -> ...) allowed."
    )
    message_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of a message that failed to send."
    )
    template_memory_mb: int = Field(
        default=256, ge=16, description="Memory one template may use while it renders, in MiB."
    )
    template_cpu_seconds: float = Field(
        default=2.0, gt=0, le=60, description="CPU time one template may use while it renders."
    )
    template_max_chars: int = Field(
        default=1_000_000,
        ge=1,
        description="Longest text a template may render to (a message, an HTTP URL, header "
        "or body).",
    )
    stack_port: int = Field(default=4200, description="Port of the API started by `cronium up`.")
    dashboard_port: int = Field(
        default=8501, description="Port of the dashboard started by `cronium up` (127.0.0.1)."
    )

    @property
    def staging_root(self) -> Path:
        return self.home / "staging"


@lru_cache(maxsize=1)
def get_settings() -> CroniumSettings:
    return CroniumSettings()

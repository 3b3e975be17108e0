"""Process-wide settings, read from `CRONIUM_*` environment variables (or a `.env` file).

A `.env` in the working directory is read too, so a checkout one did not write could
change them: a value no event could choose (a host network) is refused, and a value that
loosens a guard (root in containers, a raised cap) is named at start-up with its source.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from dotenv import dotenv_values
from pydantic import AfterValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import CroniumError
from .sizes import size_bytes

__all__ = ["CroniumSettings", "InvalidSettings", "get_settings", "loosened"]

ENV_PREFIX = "CRONIUM_"
ENV_FILE = ".env"


def _size(value: str) -> str:
    size_bytes(value)  # a size Docker reads, or a clear error naming the setting
    return value


class CroniumSettings(BaseSettings):
    """Knobs an operator sets once per machine; per-event choices live on the Event."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=ENV_FILE, extra="ignore")

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
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})?$",
        description="User the script runs as inside the container (default: nobody).",
    )
    default_memory: Annotated[str, AfterValidator(_size)] = Field(
        default="512m", description="Memory limit when an event sets none."
    )
    default_cpus: float = Field(default=1.0, description="CPU limit when an event sets none.")
    default_pids: int = Field(default=256, description="Process limit when an event sets none.")
    default_network: str = Field(
        default="bridge",
        pattern="^(none|bridge)$",
        description="Network when an event sets none: `bridge` or `none`, as for an event.",
    )
    tmpfs_size: Annotated[str, AfterValidator(_size)] = Field(
        default="256m", description="Size of the writable /tmp in containers."
    )
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
    api_port: int = Field(
        default=8502,
        description="Port of Cronium's HTTP service (webhooks, tokens), `cronium api` and `up`.",
    )
    webhook_body_limit: Annotated[str, AfterValidator(_size)] = Field(
        default="256k", description="Largest request body a webhook accepts (413 above)."
    )
    audit_retention_days: int = Field(
        default=365, ge=1, description="Audit entries older than this are deleted."
    )

    @property
    def staging_root(self) -> Path:
        return self.home / "staging"

    @property
    def stack_api_url(self) -> str:
        """The Prefect API `cronium up` serves on this machine."""
        return f"http://127.0.0.1:{self.stack_port}/api"

    @property
    def stack_database_url(self) -> str:
        """The SQLite database `cronium up` gives Prefect (and Cronium's own tables)."""
        return f"sqlite+aiosqlite:///{self.home / 'prefect.db'}"


class InvalidSettings(CroniumError):
    """A CRONIUM_* setting (from the environment or a .env file) is refused."""


@lru_cache(maxsize=1)
def get_settings() -> CroniumSettings:
    try:
        return CroniumSettings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0])
            problems.append(
                f"{_env_name(field)}={error.get('input')!r} ({_source(field)}): {error['msg']}"
            )
        raise InvalidSettings("; ".join(problems)) from None


# Guards an operator may raise, each bigger = looser: named at start-up when above default.
_RAISED_CAPS = (
    "output_limit",
    "out_max_files",
    "max_variable_writes",
    "input_limit",
    "template_memory_mb",
    "template_cpu_seconds",
    "template_max_chars",
    "default_pids",
    "default_cpus",
    "default_memory",
    "tmpfs_size",
    "chain_limit",
    "webhook_body_limit",
)


def loosened(settings: CroniumSettings) -> list[str]:
    """Each setting that loosens a guard, with its value and where it came from."""
    found = []

    def name(field: str, why: str) -> None:
        value = getattr(settings, field)
        found.append(f"{_env_name(field)}={value} ({_source(field)}): {why}")

    user, _, group = settings.docker_user.partition(":")
    if _is_root(user):
        name("docker_user", "scripts run as root inside their containers")
    elif _is_root(group):
        name("docker_user", "scripts run in the root group inside their containers")
    for field in ("image_bash", "image_python", "image_node"):
        if getattr(settings, field) != CroniumSettings.model_fields[field].default:
            name(field, "scripts, and the variables they declare, go into this image")
    if settings.docker_host_block is not None:
        name("docker_host_block", "containers run on the Docker host this block names")
    for field in _RAISED_CAPS:
        value, default = getattr(settings, field), CroniumSettings.model_fields[field].default
        if _amount(value) > _amount(default):
            name(field, f"above the default of {default}")
    return found


def _is_root(name: str) -> bool:
    return name == "root" or (name.isdigit() and int(name) == 0)


def _amount(value: int | float | str) -> float:
    return size_bytes(value) if isinstance(value, str) else value


def _env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _source(field: str) -> str:
    name = _env_name(field)
    if any(key.upper() == name for key in os.environ):
        return "from the environment"
    path = Path(ENV_FILE)
    if path.is_file() and any((k or "").upper() == name for k in dotenv_values(path)):
        return f"from {path.resolve()}"
    return "default"

"""Which Prefect API this process talks to, and the local stack `cronium up` runs.

Order: a configured `PREFECT_API_URL` (environment or Prefect profile); else the stack
`cronium up` serves, when it answers; else Prefect's ephemeral server on the stack's own
SQLite database, so runs made before `cronium up` was ever started are not lost.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
from prefect.settings import get_current_settings, temporary_settings

from cronium_prefect.errors import CroniumError
from cronium_prefect.settings import get_settings

__all__ = [
    "stack_encryption_env",
    "stack_api_url",
    "using_api",
    "start_prefect",
    "start_prefect_server",
    "wait_until_healthy",
]

EPHEMERAL_STARTUP_TIMEOUT_S = 180  # a first start migrates the database; slow disks need time


def stack_api_url() -> str:
    return get_settings().stack_api_url


def stack_encryption_env() -> dict[str, str]:
    """PREFECT_SERVER_ENCRYPTION_KEY for the stack's server, from a key file kept apart
    from the database.

    Prefect encrypts block secrets (SSH keys, passwords, secret variables) with a key that,
    by default, it stores in the same database: a copy of prefect.db would then carry both.
    A key the user set wins; an existing database that already holds its own key keeps it
    (a new key could not read its secrets); otherwise the first start writes one (0600).
    """
    if os.environ.get("PREFECT_SERVER_ENCRYPTION_KEY"):
        return {}
    home = get_settings().home
    key_file = home / "encryption.key"
    if not key_file.exists():
        if _prefect_made(home / "prefect.db"):
            return {}
        from cryptography.fernet import Fernet

        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(Fernet.generate_key())
    return {"PREFECT_SERVER_ENCRYPTION_KEY": key_file.read_text().strip()}


def _prefect_made(database: Path) -> bool:
    """Whether Prefect's server has used this SQLite file (its own migrations ran): one
    that holds only Cronium's tables (`cronium user add` before the first `up`) has no
    block key of Prefect's yet, and gets the key file like a new one."""
    if not database.exists():
        return False
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
    return found is not None


def _answers(api_url: str) -> bool:
    """A Prefect API is there (behind basic auth, it answers 401 without credentials)."""
    try:
        return httpx.get(f"{api_url}/health", timeout=0.5).status_code in (200, 401)
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def using_api(say: Callable[[str], None], allow_ephemeral: bool = True) -> Iterator[str]:
    """Enter the Prefect settings for the API to use; yields a description of it."""
    configured = get_current_settings().api.url
    if configured:
        yield configured
        return
    stack = stack_api_url()
    if _answers(stack):
        with temporary_settings(updates={"api.url": stack}):
            yield stack
        return
    if not allow_ephemeral:
        raise CroniumError(
            f"no Prefect API: set PREFECT_API_URL, or start the stack with `cronium up` "
            f"(expected at {stack})"
        )
    home = get_settings().home
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ.update(stack_encryption_env())  # the temporary server inherits it
    say(
        "No Prefect API configured (PREFECT_API_URL) and `cronium up` is not running: "
        f"starting a temporary Prefect server on {home / 'prefect.db'} (takes a few seconds)."
    )
    with temporary_settings(
        updates={
            "server.database.connection_url": get_settings().stack_database_url,
            "server.ephemeral.enabled": True,
            "server.ephemeral.startup_timeout_seconds": EPHEMERAL_STARTUP_TIMEOUT_S,
            "server.analytics_enabled": False,
        }
    ):
        yield "ephemeral"


def start_prefect_server(
    port: int,
    env: dict[str, str] | None = None,
    log: IO[str] | None = None,
    host: str = "127.0.0.1",
    api_processes: int = 1,
    services: bool = True,
) -> subprocess.Popen:
    """`prefect server start` on host:port in the background (analytics off): with
    `api_processes` API processes, and its background services unless `services` is
    False (the scaled server runs them apart: scale.start_prefect_services)."""
    return start_prefect(
        ["server", "start", "--host", host, "--port", str(port)]
        + ["--workers", str(api_processes), *([] if services else ["--no-services"])],
        env,
        log,
    )


def start_prefect(
    arguments: list[str], env: dict[str, str] | None = None, log: IO[str] | None = None
) -> subprocess.Popen:
    """`prefect ARGUMENTS` in the background, in a session of its own (stopped by whoever
    started it, not by a terminal's Ctrl-C), analytics off, its output to `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "prefect", *arguments],
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {}), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
        start_new_session=True,
    )


def wait_until_healthy(api_url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    """Block until the API answers; raise RuntimeError if the server exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {server.returncode}")
        if _answers(api_url):
            return
        time.sleep(0.3)
    raise RuntimeError(f"prefect server at {api_url} did not answer within {timeout:.0f} s")

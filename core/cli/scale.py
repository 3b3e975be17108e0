"""Prefect's scaled server, as Prefect documents its scale-out: several API processes and
the background services in a process of their own, sharing PostgreSQL and Redis (events,
their ordering, concurrency leases and the services' task queue go through Redis instead
of one process's memory). `cronium up --redis URL --api-processes N` starts it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import IO
from urllib.parse import urlsplit

from cronium_prefect.errors import CroniumError

__all__ = [
    "MAX_API_PROCESSES",
    "check_scaled",
    "prepare_database",
    "prepare_database_command",
    "scaled_env",
    "start_prefect_services",
]

MAX_API_PROCESSES = 64


def scaled_env(url: str) -> dict[str, str]:
    """The Prefect server settings of every process of the scaled server: messaging on
    the Redis at `url`, and nothing done at start that prepare_database did once."""
    return {
        "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
        "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
        "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
        # Where a cancelled run's teardown waits for its worker, whichever process it is on.
        "PREFECT_SERVER_WORKER_CHANNEL_CLEANUP_QUEUE_STORAGE": "prefect_redis.cleanup_queue",
        "PREFECT_REDIS_WORKER_CLEANUP_QUEUE_URL": url,  # its own setting (else localhost)
        "PREFECT_REDIS_MESSAGING_URL": url,
        "PREFECT_SERVER_DOCKET_URL": url,
    }


def check_scaled(
    database_url: str, redis: str | None, api_processes: int, redis_from: str = "--redis"
) -> None:
    """Refuse, naming the option (or `redis_from`, where the URL came from), what
    Prefect's server would refuse later, or worse accept: several API processes on one
    process's memory lose events."""
    if not 1 <= api_processes <= MAX_API_PROCESSES:
        raise CroniumError(
            f"--api-processes: {api_processes} is not between 1 and {MAX_API_PROCESSES}"
        )
    if redis is None:
        if api_processes > 1:
            raise CroniumError(
                f"--api-processes {api_processes}: several API processes share events "
                "through Redis: give --redis redis://HOST:PORT/DB (and --database "
                "postgresql+asyncpg://...)"
            )
        return
    try:
        parts = urlsplit(redis)
        valid = parts.scheme in ("redis", "rediss") and bool(parts.hostname)
        valid = valid and (parts.port or 6379) > 0
    except ValueError:  # an unclosed [ or a port that is not a number
        valid = False
    if not valid:
        raise CroniumError(
            f"{redis_from}: {_without_password(redis)!r} is not a redis:// or rediss:// "
            "URL (redis://HOST:PORT/DB)"
        )
    if not database_url.startswith("postgresql"):
        raise CroniumError(
            f"{redis_from}: the scaled server needs PostgreSQL (SQLite cannot be shared by "
            "several processes): give --database postgresql+asyncpg://USER@HOST/DB"
        )


def _without_password(url: str) -> str:
    """The URL as it may be shown: whatever stands between `//` and the last `@` is
    hidden (a password may hold `@` or `/`); text that is no URL but has an `@` or `=`
    (a DSN's password=...) is not shown at all."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "(not shown)" if "@" in url or "=" in url else url
    if "@" in rest:
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def prepare_database(port: int, env: dict[str, str], log: IO[str] | None = None) -> None:
    """Run one API process until it answers, then stop it: it migrates the schema and
    registers the block types, once. N processes starting together on a new database
    race at both (one fails on "column already exists" or a duplicate block type, and
    `prefect server start --workers N` stops them all)."""
    from .api import start_prefect_server, wait_until_healthy

    server = start_prefect_server(port, env, log=log, services=False)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/api", server)
    except RuntimeError as exc:
        raise CroniumError(f"preparing Prefect's database: {exc}") from None
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def start_prefect_services(env: dict[str, str], log: IO[str] | None = None) -> subprocess.Popen:
    """`prefect server services start`: the scheduler, the automations' triggers, late
    runs and the rest of the loop services, in one process beside the API processes."""
    from .api import start_prefect

    return start_prefect(["server", "services", "start"], env, log)


def prepare_database_command() -> None:
    """Migrate Prefect's database and register its block types, then exit: once, before the
    scaled server's API processes start (they must not do both together; see
    deploy/compose.scaled.yaml). The database: PREFECT_SERVER_DATABASE_CONNECTION_URL."""
    from .common import fail

    url = os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL", "")
    if not url.startswith("postgresql+asyncpg://"):
        given = f"{_without_password(url)!r} is not" if url else "not set: give"
        raise fail(
            f"PREFECT_SERVER_DATABASE_CONNECTION_URL: {given} a postgresql+asyncpg:// URL "
            "(the scaled server's database)"
        )
    with socket.socket() as probe:  # a free loopback port for the one API process
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    on_start = {
        "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "true",
        "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "true",
    }
    try:
        prepare_database(port, on_start, log=sys.stderr)
    except CroniumError as exc:
        raise fail(str(exc)) from None
    sys.stderr.write("Prefect's database is migrated and its block types registered\n")

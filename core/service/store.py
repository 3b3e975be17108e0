"""The connection to Cronium's tables: Prefect's database (the same URL its server uses,
SQLite by default, PostgreSQL when Prefect runs on it), migrated to the newest schema
before first use."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from cronium_prefect.errors import CroniumError
from cronium_prefect.settings import get_settings

__all__ = ["Store", "database_url", "server_store", "StoreUnavailable"]

DATABASE_ENV = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x43524F4E  # PostgreSQL advisory lock held while migrating ("CRON")


class StoreUnavailable(CroniumError):
    """Cronium's tables cannot be reached (the database is down, or the URL is wrong)."""


def database_url() -> str:
    """Prefect's database: PREFECT_SERVER_DATABASE_CONNECTION_URL, else `cronium up`'s."""
    return os.environ.get(DATABASE_ENV) or get_settings().stack_database_url


def server_store(api_url: str | None, pooled: bool = False) -> Store | None:
    """Cronium's tables when this process provably shares the Prefect server's database:
    PREFECT_SERVER_DATABASE_CONNECTION_URL is set, or the API is `cronium up`'s own on
    this machine (whose database is the stack's SQLite file). None otherwise: a process
    talking to a remote API cannot know the server's database, and must not open a local
    file in its place (an empty one has no users, and would let everyone in)."""
    if os.environ.get(DATABASE_ENV) or not api_url or api_url == get_settings().stack_api_url:
        return Store(pooled=pooled)
    return None


class Store:
    """An engine on the database and sessions from it. `pooled=False` (a connection per
    session) for callers that make a new event loop per call: the CLI, the dashboard."""

    def __init__(self, url: str | None = None, pooled: bool = False):
        self.url = url or database_url()
        options: dict = {} if pooled else {"poolclass": NullPool}
        if self.url.startswith("sqlite"):
            Path(self.url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"timeout": 30}  # Prefect's server writes here too
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        self._migrated = False

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed when the block ends without error."""
        if not self._migrated:
            await self.migrate()
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            async with session.begin():
                yield session

    async def migrate(self) -> None:
        """Bring the tables to the newest schema (a no-op when they are), one process at a
        time: a PostgreSQL advisory lock, or a lock file beside the SQLite database."""
        try:
            if self.url.startswith("sqlite"):
                lock_path = self.url.split("///", 1)[1] + ".cronium-migrate.lock"
                descriptor = await asyncio.to_thread(_lock_file, lock_path)
                try:
                    async with self.engine.begin() as connection:
                        await connection.run_sync(_upgrade)
                finally:
                    os.close(descriptor)  # closing releases the lock
            else:
                async with self.engine.begin() as connection:
                    await connection.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
                    await connection.run_sync(_upgrade)
        except OSError as exc:
            raise StoreUnavailable(f"cannot reach Cronium's tables: {exc}") from None
        except CommandError as exc:  # e.g. tables migrated by a newer Cronium
            raise StoreUnavailable(
                f"Cronium's tables are at a schema this version does not know ({exc}): "
                "run the Cronium version that migrated them, or a newer one"
            ) from None
        self._migrated = True

    async def close(self) -> None:
        await self.engine.dispose()


def _upgrade(connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _lock_file(path: str) -> int:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor

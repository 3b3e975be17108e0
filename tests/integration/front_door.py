"""The front door as a user runs it: `cronium api` against the test Prefect server, with
Cronium's tables in that server's SQLite database, Secret blocks, and events applied with
the CLI into a work pool of their own (no other module's worker runs their runs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prefect.blocks.system import Secret

from cronium_prefect.webhook import github_sign, sign
from tests.cli import cronium
from tests.ports import free_port
from tests.processes import stop, wait_for_http

DATABASE_ENV = "PREFECT_SERVER_DATABASE_CONNECTION_URL"


def database_env() -> dict[str, str]:
    """The test server's own database (conftest: PREFECT_HOME/prefect.db)."""
    path = Path(os.environ["PREFECT_HOME"]) / "prefect.db"
    return {**os.environ, DATABASE_ENV: f"sqlite+aiosqlite:///{path}"}


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return cronium(*args, env=database_env(), stdin=stdin)


def save_secret(name: str, value: str) -> None:
    Secret(value=value).save(name, overwrite=True)


class FrontDoor:
    """A running `cronium api`; `log()` is everything it printed."""

    def __init__(self, folder: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "api.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cronium_prefect.cli", "api", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env or database_env(),
        )
        wait_for_http(f"{self.url}/health", self.process)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text()

    def post(self, hook: str, body: bytes = b"", **headers: str) -> httpx.Response:
        return self.http.post(f"/hooks/{hook}", content=body, headers=headers)

    def bearer(self, hook: str, token: str, body: bytes = b"{}") -> httpx.Response:
        return self.post(
            hook, body, Authorization=f"Bearer {token}", **{"Content-Type": "application/json"}
        )

    def hmac(
        self, hook: str, secret: str, body: bytes, at: int | None = None, **extra: str
    ) -> httpx.Response:
        stamp = str(int(time.time()) if at is None else at)
        headers = {
            "Content-Type": "application/json",
            "X-Cronium-Timestamp": stamp,
            "X-Cronium-Signature": sign(secret, stamp, body),
            **extra,
        }
        return self.http.post(f"/hooks/{hook}", content=body, headers=headers)

    def github(self, hook: str, secret: str, body: bytes) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "User-Agent": "GitHub-Hookshot/044aadd",
            "X-Hub-Signature-256": github_sign(secret, body),
        }
        return self.http.post(f"/hooks/{hook}", content=body, headers=headers)

    def stop(self) -> None:
        self.http.close()
        stop(self.process)
        self._log.close()


def user_token(user: str, role: str, *scopes: str, expires: float = 86400) -> str:
    """Add `user` (if new) and create a token with `scopes`, in this process (the CLI's
    own path is tested once, in test_audit.py): the token's text."""
    import asyncio
    from datetime import timedelta

    from cronium_prefect.access import Role
    from cronium_prefect.service.store import Store
    from cronium_prefect.service.tokens import create_token
    from cronium_prefect.service.users import add_user, find_user

    async def make() -> str:
        store = Store(database_env()[DATABASE_ENV])
        try:
            if await find_user(store, user) is None:
                await add_user(store, user, Role(role), "password-of-" + user)
            return (await create_token(store, user, list(scopes), timedelta(seconds=expires)))[1]
        finally:
            await store.close()

    return asyncio.run(make())

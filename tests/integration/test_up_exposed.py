"""`cronium up` for other machines: beyond 127.0.0.1 only with basic auth (or a loud
--insecure), the dashboard only with --insecure, and Prefect on PostgreSQL with
--database. The address a remote worker needs is printed, and answers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.integration.test_up import start_up, stop_up, wait_for_dashboard
from tests.ports import free_port

CLI = [sys.executable, "-m", "cronium_prefect.cli"]
AUTH = "admin:up-exposed-4e1f"


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING")
    }
    env.update(
        CRONIUM_HOME=str(tmp_path / "home"),
        CRONIUM_STACK_PORT=str(free_port()),
        CRONIUM_DASHBOARD_PORT=str(free_port()),
        **extra,
    )
    return env


REFUSED = [
    (["--host", "0.0.0.0"], {}, "set PREFECT_SERVER_API_AUTH_STRING"),
    (["--host", "::"], {"PREFECT_SERVER_API_AUTH_STRING": AUTH}, "IPv6 addresses are not"),
    (["--dashboard-host", "0.0.0.0"], {"PREFECT_SERVER_API_AUTH_STRING": AUTH}, "no login"),
    (["--database", "mysql://root:pw@db/prefect"], {}, "expected a postgresql+asyncpg:// URL"),
    (["--database", "postgresql://u:pw@db/prefect"], {}, "expected a postgresql+asyncpg:// URL"),
    (["--database", "u:pw@db/prefect"], {}, "got not a URL"),
]


@pytest.mark.parametrize("args, extra, said", REFUSED)
def test_up_refuses_to_expose_without_auth_or_to_use_an_unknown_database(
    tmp_path, args, extra, said
):
    done = subprocess.run(
        [*CLI, "up", *args],
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    shown = " ".join(done.stderr.split())
    assert done.returncode == 2 and said in shown, shown
    assert "Traceback" not in done.stderr and "pw" not in shown  # no password echoed
    assert not (tmp_path / "home" / "prefect-server.log").exists()  # nothing started


@pytest.mark.timeout(400)
def test_up_on_the_scaled_server_serves_other_machines_with_auth(
    docker_client, redis_url, tmp_path
):
    """`up` on PostgreSQL and Redis with two API processes (Prefect's scaled server), the
    API exposed with basic auth."""
    from tests.postgres import Postgres, binaries

    if binaries() is None:
        pytest.skip("needs Debian's postgresql")
    cluster = Postgres.start()
    try:
        database = cluster.create_database("stack")
        env = _env(
            tmp_path,
            PREFECT_SERVER_API_AUTH_STRING=AUTH,
            PREFECT_SERVER_DATABASE_CONNECTION_URL=database,  # no password on the command line
            # Its own database: the scaled_server fixture may use /0 on this Redis.
            PREFECT_REDIS_MESSAGING_URL=redis_url.removesuffix("/0") + "/1",
        )
        port = int(env["CRONIUM_STACK_PORT"])
        log = tmp_path / "up.log"
        process = start_up(env, log, args=("--host", "0.0.0.0", "--api-processes", "2"))
        try:
            printed = log.read_text()
            said = " ".join(printed.split())
            assert "on PostgreSQL and Redis: 2 API process(es), the services apart" in said, said
            assert AUTH.split(":")[1] not in printed  # the secret is not printed
            wait_for_dashboard(int(env["CRONIUM_DASHBOARD_PORT"]))  # still 127.0.0.1 only
            found = re.search(
                r"PREFECT_API_URL=(http://[^ ]+/api) PREFECT_API_AUTH_STRING", printed
            )
            assert found, printed
            remote = found.group(1)
            assert f":{port}/api" in remote and "127.0.0.1" not in remote, remote
            client = {k: v for k, v in env.items() if not k.startswith("PREFECT_SERVER_")}
            client["PREFECT_API_URL"] = remote

            def cli(*args: str, auth: str | None = AUTH):
                run_env = {**client, **({"PREFECT_API_AUTH_STRING": auth} if auth else {})}
                return subprocess.run(
                    [*CLI, *args], env=run_env, capture_output=True, text=True, timeout=180
                )

            refused = cli("events", auth="admin:wrong")
            said = " ".join(refused.stderr.split())  # Rich wraps long lines
            assert refused.returncode == 1 and "refused the credentials (401)" in said, said
            assert cli("events", auth=None).returncode == 1
            ran = cli("trigger", "hello", "--input", '"Far"', "--wait", "--json")
            assert ran.returncode == 0, ran.stderr[-2000:]
            assert json.loads(ran.stdout)["output"] == {"greeted": "Far"}
            # Prefect's own tables hold them, in PostgreSQL.
            stored = subprocess.run(
                [
                    str(cluster.bin / "psql"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(cluster.port),
                    "-U",
                    "postgres",
                    "-d",
                    "stack",
                    "-tAc",
                    "select count(*) from deployment where name = 'hello'",
                ],
                capture_output=True,
                text=True,
            )
            assert stored.stdout.strip() == "1", stored.stdout + stored.stderr
        finally:
            stop_up(process, port, log, scaled=True)
    finally:
        cluster.stop()

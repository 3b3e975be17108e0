"""`cronium up`: server, worker and example events from one command; Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.ports import free_port
from tests.processes import wait_for_http

CLI = [sys.executable, "-m", "cronium_prefect.cli"]


def start_up(
    env: dict[str, str], log_path, cli: list[str] = CLI, cwd=None, args: tuple[str, ...] = ()
) -> subprocess.Popen:
    """`cronium up`, once it says it is up."""
    log = open(log_path, "w")
    # In a process group of its own, as a terminal runs a foreground job: Ctrl-C is a
    # SIGINT to the whole group (see stop_up).
    process = subprocess.Popen(
        [*cli, "up", *args],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while "Cronium is up" not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"cronium up did not come up:\n{log_path.read_text()}")
        time.sleep(0.5)
    return process


def wait_for_dashboard(port: int) -> None:
    """Streamlit answers its health check, on 127.0.0.1 only."""
    from tests.processes import wait_for_http

    wait_for_http(f"http://127.0.0.1:{port}/_stcore/health")
    addresses = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    for address in addresses - {"127.0.0.1"}:
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=1).close()


def _check_encryption_key_is_kept_apart(home, secret: str) -> None:
    """Block secrets are encrypted with ~/.cronium/encryption.key (0600), which is not in
    the database: a copy of prefect.db alone does not give the secrets away."""
    import sqlite3

    from cryptography.fernet import Fernet

    key_file = home / "encryption.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    database = sqlite3.connect(home / "prefect.db")
    try:
        stored_keys = database.execute(
            "SELECT count(*) FROM configuration WHERE key = 'ENCRYPTION_KEY'"
        ).fetchone()[0]
        documents = [row[0] for row in database.execute("SELECT data FROM block_document")]
    finally:
        database.close()
    assert stored_keys == 0
    assert documents and not any(secret in str(d) for d in documents)
    fernet = Fernet(key_file.read_bytes().strip())
    assert any(secret in fernet.decrypt(str(d).strip('"').encode()).decode() for d in documents)


def stop_up(process: subprocess.Popen, port: int, log_path, scaled: bool = False) -> None:
    """Ctrl-C as a terminal sends it (to the whole foreground group): everything stops,
    dashboard, worker, then server (the scaled server: its services, then its API
    processes), with no traceback from anyone."""
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=120)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    printed = log_path.read_text()
    stopping = printed[printed.index("stopping ...") :]
    assert "Traceback" not in stopping and "Error" not in stopping, stopping
    order = re.search(
        r"stopped \(dashboard [\d.]+ s, HTTP service [\d.]+ s, worker [\d.]+ s, "
        r"Prefect services [\d.]+ s, " * scaled + r"Prefect server [\d.]+ s\)",
        stopping,
    )
    assert order, stopping
    print(order.group(0))


def test_up_serves_applies_the_examples_runs_them_and_stops_on_ctrl_c(docker_client, tmp_path):
    port, dashboard_port, api_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        {
            "CRONIUM_HOME": str(tmp_path / "home"),
            "CRONIUM_STACK_PORT": str(port),
            "CRONIUM_DASHBOARD_PORT": str(dashboard_port),
            "CRONIUM_API_PORT": str(api_port),
        }
    )
    client_env = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}

    process = start_up(env, tmp_path / "up.log")
    try:
        printed = (tmp_path / "up.log").read_text()
        assert f"dashboard:   http://127.0.0.1:{dashboard_port}" in printed
        # How to turn on auth is said before anyone exposes the stack.
        assert "Before exposing this beyond this machine, set PREFECT_SERVER_API_AUTH_STRING" in (
            printed
        )
        wait_for_dashboard(dashboard_port)
        listed = {
            row["name"]
            for row in json.loads(
                subprocess.run(
                    [*CLI, "events", "--json"], env=client_env, capture_output=True, text=True
                ).stdout
            )
        }
        assert {"hello", "nightly-report", "visit-counter"} <= listed
        ran = subprocess.run(
            [*CLI, "trigger", "hello", "--input", '"Up"', "--wait", "--json"],
            env=client_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["output"] == {"greeted": "Up"}
        # The HTTP service runs beside them, on the stack's database: the CLI here shares
        # it, so its trigger is in the audit log.
        assert f"webhooks:    http://127.0.0.1:{api_port}/hooks/EVENT" in printed
        wait_for_http(f"http://127.0.0.1:{api_port}/health", timeout=60)
        audited = subprocess.run(
            [*CLI, "audit", "--json"], env=client_env, capture_output=True, text=True
        )
        assert ("trigger", "hello", "ok") in [
            (e["action"], e["target"], e["outcome"]) for e in json.loads(audited.stdout)
        ], audited.stderr
        secret = subprocess.run(
            [*CLI, "var", "set", "UP_TOKEN", "up-secret-5d1f", "--secret"], env=client_env
        )
        assert secret.returncode == 0
    finally:
        stop_up(process, port, tmp_path / "up.log")
    _check_encryption_key_is_kept_apart(tmp_path / "home", "up-secret-5d1f")
    with pytest.raises(OSError):  # the dashboard stopped with the rest
        socket.create_connection(("127.0.0.1", dashboard_port), timeout=1).close()

    # A second start reuses the database: the earlier run is still there.
    process = start_up(env, tmp_path / "up2.log")
    try:
        rows = json.loads(
            subprocess.run(
                [*CLI, "events", "--json"], env=client_env, capture_output=True, text=True
            ).stdout
        )
        hello = next(row for row in rows if row["name"] == "hello")
        assert hello["last_status"] == "Completed"
        got = subprocess.run(  # the second start found the same key: the secret still reads
            [*CLI, "var", "get", "UP_TOKEN", "--reveal"],
            env=client_env,
            capture_output=True,
            text=True,
        )
        assert json.loads(got.stdout) == "up-secret-5d1f", got.stderr
    finally:
        stop_up(process, port, tmp_path / "up.log")

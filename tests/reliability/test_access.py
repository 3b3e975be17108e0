"""The whole stack behind Prefect's basic auth: the server refuses requests without the
credentials; the CLI, a worker and runs work with them; a CLI without them gets a clear
error, not a traceback. (The dashboard's side: tests/dashboard/test_pages.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from cronium_prefect.cli.api import start_prefect_server
from tests.ports import free_port
from tests.processes import stop, wait_for_http

from .report import report

CLI = [sys.executable, "-m", "cronium_prefect.cli"]
AUTH = "admin:rel-pass-93b1"


@pytest.fixture
def auth_api(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        "PREFECT_SERVER_API_AUTH_STRING": AUTH,
        "PREFECT_HOME": str(tmp_path / "home"),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
    }
    with open(tmp_path / "server.log", "w") as log:
        server = start_prefect_server(port, env, log=log)
        wait_for_http(f"{url}/health", server, auth=tuple(AUTH.split(":")), timeout=180)
        yield url
        stop(server)


def test_server_worker_and_cli_work_with_basic_auth_and_refuse_without(
    auth_api, docker_client, tmp_path
):
    anonymous = httpx.post(f"{auth_api}/deployments/filter", json={}, timeout=5)
    wrong = httpx.post(f"{auth_api}/deployments/filter", json={}, auth=("admin", "x"), timeout=5)
    base = {k: v for k, v in os.environ.items() if k != "PREFECT_API_AUTH_STRING"}
    base |= {"PREFECT_API_URL": auth_api, "CRONIUM_HOME": str(tmp_path / "cronium")}
    with_auth = {**base, "PREFECT_API_AUTH_STRING": AUTH}

    refused = subprocess.run([*CLI, "events"], env=base, capture_output=True, text=True, timeout=60)

    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "a.yaml").write_text("name: auth-hello\ntype: bash\nscript: echo behind auth\n")
    applied = subprocess.run(
        [*CLI, "apply", str(folder)], env=with_auth, capture_output=True, text=True, timeout=120
    )
    assert applied.returncode == 0, applied.stderr
    worker_log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [*CLI, "worker"], env=with_auth, stdout=worker_log, stderr=subprocess.STDOUT
    )
    try:
        ran = subprocess.run(
            [*CLI, "trigger", "auth-hello", "--wait", "--json"],
            env=with_auth,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        stop(worker)
        worker_log.close()
    counts = {
        "anonymous_request": anonymous.status_code,
        "wrong_password": wrong.status_code,
        "cli_without_auth_exit": refused.returncode,
        "triggered_run_with_auth": json.loads(ran.stdout)["status"]
        if ran.returncode == 0
        else ran.stderr[-500:],
    }
    report("access_basic_auth", counts)
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "401" in refused.stderr and "PREFECT_API_AUTH_STRING" in refused.stderr, refused.stderr
    assert ran.returncode == 0, (ran.stderr, (tmp_path / "worker.log").read_text()[-3000:])
    assert json.loads(ran.stdout)["status"] == "SUCCESS"
    assert "behind auth" in ran.stderr

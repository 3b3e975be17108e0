"""What an operator deploys with: the cronium image (Dockerfile, built by tests/run.sh from
the wheel on the offline base), deploy/compose.yaml and the systemd unit; and three
hosts as far as the network goes: the Prefect server here (basic auth on, reached over
the Docker bridge), a worker in a container (the image) and an sshd in a third container
— events run from the worker over SSH, their logs, records, variables and actions
complete. A worker with a wrong auth string fails with the clear 401 message."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.settings import temporary_settings
from pydantic import SecretStr

from cronium_prefect.blocks import SSHServer
from tests.cli import cronium
from tests.integration.test_apply import write_events
from tests.ports import free_port
from tests.processes import stop
from tests.receivers import HttpReceiver

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "cronium:test"
SSHD_IMAGE = "cronium-sshd:test"
AUTH = "operator:deploy-8c2d"
ENV = {
    "POSTGRES_PASSWORD": "pg-secret-1",
    "PREFECT_SERVER_API_AUTH_STRING": AUTH,
    "PREFECT_SERVER_ENCRYPTION_KEY": "k" * 43 + "=",
}


@pytest.fixture(scope="module")
def image() -> str:
    where = os.environ.get("CRONIUM_WHEEL_DIR")
    if not where:
        from tests.conftest import _unavailable

        _unavailable("the deploy tests need CRONIUM_WHEEL_DIR (set by tests/run.sh)")
    done = Path(where) / "image.done"
    deadline = time.monotonic() + 1200
    while not done.exists():
        assert time.monotonic() < deadline, "the cronium image was not built in time"
        time.sleep(2)
    log = Path(where) / "image.log"
    assert done.read_text().strip() == "0", log.read_text()[-5000:] if log.exists() else ""
    return IMAGE


def _compose(
    env_file: Path, *args: str, files: tuple[str, ...] = ("compose.yaml",)
) -> subprocess.CompletedProcess:
    if not shutil.which("docker-compose"):
        from tests.conftest import _unavailable

        _unavailable("the compose check needs docker-compose")
    return subprocess.run(
        [
            "docker-compose",
            "--env-file",
            str(env_file),
            *(part for name in files for part in ("-f", str(ROOT / "deploy" / name))),
            *args,
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in ENV},
    )


def test_compose_file_is_valid_and_takes_every_secret_from_the_environment(tmp_path):
    env_file = tmp_path / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in ENV.items()))
    done = _compose(env_file, "config")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert services["server"]["command"] == [
        "server",
        "start",
        "--host",
        "0.0.0.0",
        "--port",
        "4200",
    ]
    assert services["worker"]["command"] == ["worker", "--pool", "cronium"]
    # The front door keeps its tables in the database Prefect's server uses.
    assert services["api"]["command"] == ["api", "--host", "0.0.0.0", "--port", "8502"]
    database = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
    for service in ("api", "dashboard"):  # users, tokens, audit: the server's database
        assert (
            services[service]["environment"][database]
            == (services["server"]["environment"][database])
        )
    assert (
        services["dashboard"]["ports"][0]["host_ip"] == "127.0.0.1"
        if isinstance(services["dashboard"]["ports"][0], dict)
        else services["dashboard"]["ports"][0].startswith("127.0.0.1:")
    )
    # Nothing secret is written in the file itself: each one is required from outside.
    text = (ROOT / "deploy" / "compose.yaml").read_text()
    assert not any(value in text for value in ENV.values())
    for missing in ENV:
        partial = tmp_path / f"without-{missing}.env"
        partial.write_text("".join(f"{k}={v}\n" for k, v in ENV.items() if k != missing))
        refused = _compose(partial, "config")
        assert refused.returncode != 0 and f"set {missing}" in refused.stderr, refused.stderr


def test_the_scaled_compose_file_runs_the_settings_cronium_up_uses(tmp_path):
    """compose.scaled.yaml over compose.yaml: Redis, the database prepared once, N API
    processes without the services, the services apart, with exactly the settings of
    `cronium up --redis` (core/cli/scale.py), and every secret still from outside."""
    from cronium_prefect.cli.scale import scaled_env

    files = ("compose.yaml", "compose.scaled.yaml")
    env_file = tmp_path / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in ENV.items()) + "PREFECT_API_PROCESSES=3\n")
    done = _compose(env_file, "config", files=files)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    server, apart = services["server"], services["services"]
    assert server["command"][-3:] == ["--workers", "3", "--no-services"]
    assert apart["entrypoint"] == ["prefect"]
    assert apart["command"] == ["server", "services", "start"]
    assert services["prepare"]["command"] == ["prepare-database"]  # the cronium image's
    assert services["prepare"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    expected = scaled_env("redis://redis:6379/0")
    database = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
    for service in (server, apart):
        assert {k: service["environment"].get(k) for k in expected} == expected
        assert service["environment"][database] == services["prepare"]["environment"][database]
        assert service["depends_on"]["prepare"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["redis"]["condition"] == "service_started"
    assert "REDIS" not in " ".join(services["worker"]["environment"])  # the server's alone
    text = (ROOT / "deploy" / "compose.scaled.yaml").read_text()
    assert not any(value in text for value in ENV.values())
    for missing in ENV:
        partial = tmp_path / f"without-{missing}.env"
        partial.write_text("".join(f"{k}={v}\n" for k, v in ENV.items() if k != missing))
        refused = _compose(partial, "config", files=files)
        assert refused.returncode != 0 and f"set {missing}" in refused.stderr, refused.stderr


def test_systemd_unit_verifies(installed_cronium, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("needs systemd-analyze")
    unit = (ROOT / "deploy" / "cronium-worker.service").read_text()
    assert "ExecStart=/home/cronium/venv/bin/cronium worker\n" in unit
    env_file = tmp_path / "worker.env"
    env_file.write_text("PREFECT_API_URL=http://127.0.0.1:4200/api\n")
    local = tmp_path / "cronium-worker.service"  # the same unit, pointed at this machine's
    local.write_text(
        unit.replace("/home/cronium/venv/bin/cronium", str(installed_cronium))
        .replace("/etc/cronium/worker.env", str(env_file))
        .replace("User=cronium", "User=nobody")
    )
    done = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed_cronium() -> Path:
    where = os.environ.get("CRONIUM_WHEEL_DIR")
    if not where:
        pytest.skip("needs CRONIUM_WHEEL_DIR (set by tests/run.sh)")
    return Path(where) / "venv" / "bin" / "cronium"


def test_the_image_runs_as_a_user_not_root(image):
    from cronium_prefect.version import __version__

    shown = subprocess.run(
        ["docker", "run", "--rm", image, "--version"], capture_output=True, text=True
    )
    assert shown.stdout.strip() == f"cronium {__version__}", shown.stderr
    uid = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", image, "-u"], capture_output=True, text=True
    )
    assert uid.stdout.strip() == "10001"


def _gateway() -> str:
    """This host's address on Docker's default bridge (docker0), where containers reach it."""
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True, check=True
    ).stdout.split()
    return shown[shown.index("inet") + 1].split("/")[0]


@pytest.mark.timeout(600)
def test_a_worker_in_a_container_runs_events_over_ssh_with_auth(image, prefect_api, tmp_path):
    """The server: Prefect on this host, on the bridge's address, basic auth on. The worker:
    the image in a container (another host, as far as the network goes). The target: an
    sshd on the bridge's address. Only the worker's container runs the events."""
    from cronium_prefect.cli.api import start_prefect_server, wait_until_healthy

    gateway = _gateway()
    name = f"w{uuid.uuid4().hex[:6]}"
    port = free_port()
    server_log = open(tmp_path / "server.log", "w")
    server = start_prefect_server(
        port,
        env={
            "PREFECT_SERVER_API_AUTH_STRING": AUTH,
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        },
        log=server_log,
        host=gateway,
    )
    api = f"http://{gateway}:{port}/api"
    target, host_key, client_key = _sshd_container(tmp_path, f"{name}-sshd")
    receiver = HttpReceiver(host=gateway).start()
    pool = f"remote-{uuid.uuid4().hex[:6]}"
    client = {**os.environ, "PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": AUTH}
    try:
        wait_until_healthy(api, server)
        with temporary_settings(updates={"api.url": api, "api.auth_string": AUTH}):
            SSHServer(
                host=target,
                port=22,
                username="runner",
                private_key=SecretStr(client_key),
                host_key=host_key,
                connect_timeout=5,
            ).save("far-target", overwrite=True, _sync=True)
            CustomWebhookNotificationBlock(
                name="far-hook", url=receiver.url("/hook"), json_data={"text": "{{body}}"}
            ).save("far-hook", overwrite=True)
        folder = write_events(
            tmp_path / "events",
            {
                "far.yaml": f"name: far-{name}\ntype: bash\nstatus: active\npool: {pool}\n"
                "run_location: remote\nservers: [far-target]\nvariables: [FAR_COUNT]\n"
                'script: |\n  echo "far line from $(hostname)"\n'
                "  cronium_setVariable FAR_COUNT 41\n  cronium_output '{\"far\": true}'\n"
                "actions:\n  - on: success\n    send_message: {block: far-hook, message: 'done {{ output.far }}'}\n",
            },
        )
        applied = cronium("apply", str(folder), env=client)
        assert applied.returncode == 0, applied.stderr
        wrong = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "-e",
                f"PREFECT_API_URL={api}",
                "-e",
                "PREFECT_API_AUTH_STRING=operator:wrong",
                image,
                "worker",
                "--pool",
                pool,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = " ".join(wrong.stderr.split())
        assert wrong.returncode == 1 and "refused the credentials (401)" in said, said
        _start_container(
            name,
            "-e",
            f"PREFECT_API_URL={api}",
            "-e",
            f"PREFECT_API_AUTH_STRING={AUTH}",
            image,
            "worker",
            "--pool",
            pool,
        )
        ran = cronium("trigger", f"far-{name}", "--wait", "--json", env=client, timeout=180)
        assert ran.returncode == 0, ran.stdout + ran.stderr + _logs(name)
        record = json.loads(ran.stdout)
        assert record["status"] == "SUCCESS" and record["output"] == {"far": True}, record
        shown = cronium("logs", f"far-{name}", env=client)
        assert "far line from" in shown.stdout, shown.stdout
        value = cronium("var", "get", "FAR_COUNT", env=client)
        assert json.loads(value.stdout) == 41, value.stdout + value.stderr
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.3)
        assert receiver.requests and "done True" in receiver.requests[0].body.decode()
    finally:
        subprocess.run(["docker", "rm", "-f", name, f"{name}-sshd"], capture_output=True)
        receiver.stop()
        stop(server)
        server_log.close()


def _sshd_container(tmp_path: Path, name: str) -> tuple[str, str, str]:
    """An sshd in a container of its own (tests/images/sshd.Dockerfile): its address,
    host key line and the client's private key."""
    keys = tmp_path / "sshd-keys"
    keys.mkdir()
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / key)], check=True
        )
    (keys / "authorized_keys").write_text((keys / "client_key.pub").read_text())
    (keys / "sshd_config").write_text(
        "Port 22\nHostKey /keys/host_key\nAuthorizedKeysFile /keys/authorized_keys\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "AllowUsers runner\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    keys.chmod(0o755)
    _start_container(
        name,
        "-v",
        f"{keys}:/keys:ro",
        SSHD_IMAGE,
        "/usr/sbin/sshd",
        "-D",
        "-e",
        "-f",
        "/keys/sshd_config",
    )
    address = subprocess.run(
        ["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((address, 22), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, _logs(name)
            time.sleep(0.2)
    kind, blob, *_ = (keys / "host_key.pub").read_text().split()
    return address, f"{kind} {blob}", (keys / "client_key").read_text()


def _start_container(name: str, *args: str) -> None:
    subprocess.run(["docker", "run", "-d", "--name", name, *args], check=True, capture_output=True)


def _logs(container: str) -> str:
    return subprocess.run(["docker", "logs", container], capture_output=True, text=True).stdout[
        -3000:
    ]

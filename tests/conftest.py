"""Test services: a real Prefect server, the real Docker daemon, an offline-built image.

Environment is set here, before anything imports Prefect, so every test (and every
`cronium` subprocess) talks to the server this session starts on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.ports import free_port
from tests.processes import stop

TEST_IMAGE = os.environ.get("CRONIUM_TEST_IMAGE", "cronium-test:bookworm")
REQUIRE_SERVICES = os.environ.get("CRONIUM_REQUIRE_SERVICES") == "1"


_WORK = Path(tempfile.mkdtemp(prefix="cronium-tests-"))
_PORT = free_port()
os.environ.update(
    {
        "PREFECT_HOME": str(_WORK / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{_PORT}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.3",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(_WORK / "results"),
        "CRONIUM_HOME": str(_WORK / "cronium"),
        "CRONIUM_IMAGE_BASH": TEST_IMAGE,
        "CRONIUM_IMAGE_PYTHON": TEST_IMAGE,
        "CRONIUM_IMAGE_NODE": TEST_IMAGE,
        "CRONIUM_DOCKER_PULL": "never",
        "CRONIUM_RETRY_BACKOFF": "0.2",
    }
)


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing (CRONIUM_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


def _copy_migrated_database(target: Path) -> None:
    """Each xdist worker's server starts on a copy of one database migrated once per Prefect
    version (migrating costs ~20 s of CPU per server; the copy, none)."""
    import prefect

    if target.exists():
        return  # a restart keeps its database
    template = Path(tempfile.gettempdir()) / f"cronium-tests-prefect-{prefect.__version__}.db"
    with open(f"{template}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            partial = template.with_name(template.name + ".partial")
            partial.unlink(missing_ok=True)
            migrated = subprocess.run(
                [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                env={
                    **os.environ,
                    "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{partial}",
                },
                capture_output=True,
                text=True,
            )
            if migrated.returncode != 0:
                pytest.fail(
                    f"migrating a Prefect database failed:\n{migrated.stdout[-3000:]}{migrated.stderr[-3000:]}"
                )
            partial.rename(template)
    target.parent.mkdir(parents=True, exist_ok=True)
    # SQLite's own copy: whole even if the template's last writes sit in its WAL file.
    with sqlite3.connect(template) as source, sqlite3.connect(target) as copy:
        source.backup(copy)


class PrefectServer:
    """The session's `prefect server` process; `restart` stops it and starts it again on
    the same port and database (the reliability suite's server-restart fault)."""

    def __init__(self) -> None:
        self.url = os.environ["PREFECT_API_URL"]
        self.log_path = _WORK / "prefect-server.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        from cronium_prefect.cli.api import start_prefect_server, wait_until_healthy

        _copy_migrated_database(_WORK / "prefect" / "prefect.db")
        with open(self.log_path, "a") as log:
            self.process = start_prefect_server(_PORT, log=log)
        try:
            wait_until_healthy(self.url, self.process)
        except RuntimeError as exc:
            self.process.kill()
            pytest.fail(f"{exc}\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def restart(self, down_for: float = 0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


@pytest.fixture(scope="session")
def prefect_server() -> PrefectServer:
    """A real `prefect server` on 127.0.0.1 with its own SQLite database."""
    server = PrefectServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prefect_api(prefect_server) -> str:
    return prefect_server.url


@pytest.fixture(scope="session")
def docker_client():
    """The real Docker daemon, with the offline test image present."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # any failure means: no usable daemon here
        _unavailable(f"Docker daemon not reachable: {exc}")
    try:
        client.images.get(TEST_IMAGE)
    except Exception:
        _unavailable(f"test image {TEST_IMAGE} missing: run tests/images/build.sh")
    return client


@pytest.fixture
def private_dockerd(docker_client):
    """A Docker daemon of the test's own (tests/dockerd.py), for tests that stop it or need
    to know who removed a container: every `cronium` process on a host reaps the containers
    of its dead ones, and every Docker test running beside uses the machine's daemon."""
    from tests.dockerd import PrivateDockerd

    if os.geteuid() != 0:
        _unavailable("starting a dockerd needs root")
    daemon = PrivateDockerd.create(TEST_IMAGE)
    yield daemon
    daemon.remove()


@pytest.fixture
def stack(prefect_api, docker_client):
    """Prefect server + Docker: what an in-process event run needs."""
    return prefect_api


@pytest.fixture(scope="session", autouse=True)
def _cleanup_workdir():
    yield
    shutil.rmtree(_WORK, ignore_errors=True)


@pytest.fixture(scope="session")
def sshd():
    """A real sshd on 127.0.0.1 (needs root, for the test user and the privileged daemon)."""
    if os.geteuid() != 0 or not Path("/usr/sbin/sshd").exists():
        _unavailable("sshd tests need root and openssh-server")
    from tests.sshd import Sshd

    server = Sshd.create(_WORK / "sshd")
    yield server
    server.remove()


@pytest.fixture(scope="session")
def sshd_without_sftp(sshd):
    """A second sshd for the same user, with no `Subsystem sftp` (hardened servers)."""
    from tests.sshd import Sshd

    server = Sshd.create(_WORK / "sshd-without-sftp", sftp=False)
    yield server
    server.remove()


@pytest.fixture(scope="session")
def ssh_server(sshd, prefect_api):
    """Saves cronium-ssh-server blocks for the test sshd; returns a factory by name."""
    from pydantic import SecretStr

    from cronium_prefect.blocks import SSHServer
    from tests.sshd import PASSWORD, USER

    def save(
        name: str, password: bool = False, host_key: str | None = "pinned", target=None, **fields
    ) -> SSHServer:
        target = target or sshd
        server = SSHServer(
            host="127.0.0.1",
            port=target.port,
            username=USER,
            private_key=None if password else SecretStr(target.client_key),
            password=SecretStr(PASSWORD) if password else None,
            host_key=target.host_key_line if host_key == "pinned" else host_key,
            connect_timeout=5,
            **fields,
        )
        server.save(name, overwrite=True, _sync=True)
        return server

    return save


@pytest.fixture(scope="module")
def worker(request, prefect_api, docker_client, tmp_path_factory):
    """A `cronium worker` for one test module (so that modules that start their own
    workers never share runs with it); a module's WORKER_ENV dict adds to its environment."""

    log = open(tmp_path_factory.mktemp("worker") / "worker.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "worker"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **getattr(request.module, "WORKER_ENV", {})},
    )
    yield process
    stop(process)
    log.close()


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (one per xdist worker)."""
    from tests.postgres import Postgres, binaries

    if binaries() is None or os.geteuid() != 0:
        reason = "the PostgreSQL test needs root and Debian's postgresql package"
        _unavailable(reason)
    cluster = Postgres.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgres_api(tmp_path_factory, postgres_cluster):
    """A second Prefect server, on a throwaway PostgreSQL cluster: for many runs at once
    (Prefect on SQLite answers 503, database locked, to ~50 simultaneous writes)."""
    from cronium_prefect.cli.api import start_prefect_server, wait_until_healthy

    cluster = postgres_cluster
    folder = tmp_path_factory.mktemp("prefect-on-postgres")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        server = start_prefect_server(
            port,
            env={
                "PREFECT_API_DATABASE_CONNECTION_URL": cluster.create_database("prefect"),
                "PREFECT_HOME": str(folder / "home"),
            },
            log=log,
        )
        try:
            wait_until_healthy(url, server)
            yield url
        except RuntimeError as exc:
            pytest.fail(f"{exc}\n{log_path.read_text()[-3000:]}")
        finally:
            stop(server)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """Debian's redis-server on a free loopback port (one per xdist worker), no persistence."""
    from tests.redis import start_redis

    if shutil.which("redis-server") is None:
        _unavailable("the scaled-server tests need Debian's redis-server")
    try:
        server, url = start_redis(tmp_path_factory.mktemp("redis"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield url
    stop(server)


class ScaledServer:
    """Prefect's scaled server as `cronium up --redis` starts it (the same functions): on
    PostgreSQL and Redis, API_PROCESSES API processes and the services in a process apart."""

    API_PROCESSES = 2

    def __init__(self, folder: Path, database: str, redis: str) -> None:
        from cronium_prefect.cli.api import start_prefect_server, wait_until_healthy
        from cronium_prefect.cli.scale import (
            prepare_database,
            scaled_env,
            start_prefect_services,
        )

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.database = database  # Cronium's tables (users, audit) beside Prefect's
        self.log_path = folder / "server.log"
        env = {"PREFECT_API_DATABASE_CONNECTION_URL": database, "PREFECT_HOME": str(folder)}
        self.api = self.services = None
        with open(self.log_path, "a") as log:
            prepare_database(self.port, env, log)
            scaled = {**env, **scaled_env(redis)}
            self.api = start_prefect_server(
                self.port, scaled, log=log, api_processes=self.API_PROCESSES, services=False
            )
            try:
                wait_until_healthy(self.url, self.api)
                self.services = start_prefect_services(scaled, log)
                time.sleep(2)
                if self.services.poll() is not None:
                    raise RuntimeError(f"the services exited ({self.services.returncode})")
            except BaseException:
                self.stop()
                raise

    def api_processes(self) -> list[int]:
        """The pids of the API processes: the children `prefect server start --workers`
        spawned (multiprocessing's; not its resource tracker)."""
        found = subprocess.run(
            ["pgrep", "-P", str(self.api.pid), "-f", "multiprocessing.spawn"],
            capture_output=True,
            text=True,
        ).stdout.split()
        return [int(pid) for pid in found]

    def stop(self) -> None:
        stop(*[p for p in (self.services, self.api) if p is not None])


@pytest.fixture(scope="session")
def scaled_server(tmp_path_factory, postgres_cluster, redis_url):
    folder = tmp_path_factory.mktemp("prefect-scaled")
    try:
        server = ScaledServer(folder, postgres_cluster.create_database("prefect_scaled"), redis_url)
    except Exception as exc:
        log = folder / "server.log"
        pytest.fail(f"{exc}\n{log.read_text()[-3000:] if log.exists() else ''}")
    yield server
    server.stop()

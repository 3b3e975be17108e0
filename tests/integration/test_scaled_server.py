"""Prefect's scaled server, as `cronium up --redis URL --api-processes N` starts it
(PostgreSQL, Redis, two API processes, the background services in a process apart): a
worker is woken by flow-run events through Redis, `cronium logs --follow` follows a run
to its end, a worker stops promptly, the dashboard reads it; and `cronium up` refuses
the combinations Prefect cannot run, naming the option. Three workers drain 90 runs (300
at full size) while an API process is SIGKILLed mid-drain (uvicorn starts another; the
clients' requests meanwhile are retried): every run executes exactly once (each writes a
marker on the SSH server that the test counts), none is lost. A critical backlog drains
before an older low one. (One module: one scaled server per test session.)"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from cronium_prefect.cli.app import app
from cronium_prefect.flows.worker import LISTENING
from tests.cli import cronium
from tests.dashboard.test_pages import _pages_in_a_process
from tests.processes import stop, wait_until
from tests.sizes import size
from tests.sshd import USER

from .test_apply import write_events
from .test_scheduling import critical_backlog_drains_first

PG = "postgresql+asyncpg://p@127.0.0.1/d"  # never reached: refused before
STOP_WITHIN_S = 15  # the worker's grace for its runs' scripts is 10 s; none runs here


def test_a_worker_is_woken_through_redis_logs_follow_and_a_workflow_runs(
    scaled_server, docker_client, tmp_path
):
    env = {**os.environ, "PREFECT_API_URL": scaled_server.url}
    folder = write_events(
        tmp_path / "s",
        {
            "s.yaml": "name: sc-lines\ntype: bash\nscript: |\n"
            "  echo first line\n  sleep 3\n  echo last line\n"
            "---\nname: sc-step\ntype: bash\nstatus: active\nscript: echo step\n"
            "---\nkind: workflow\nname: sc-flow\nsteps:\n"
            "  - {name: a, event: sc-step}\n  - {name: b, event: sc-step, needs: [a]}\n"
        },
    )
    assert cronium("apply", str(folder), env=env).returncode == 0
    log = tmp_path / "worker.log"
    # Polling every 120 s: only the flow-run event (through Redis) can wake it in time.
    worker = subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "worker"],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env={**env, "CRONIUM_WORKER_POLL_SECONDS": "120"},
    )
    try:
        wait_until(lambda: LISTENING in log.read_text(), 60, "the worker listening for new runs")
        began = time.monotonic()
        triggered = cronium("trigger", "sc-lines", "--json", env=env)
        assert triggered.returncode == 0, triggered.stderr
        run_id = json.loads(triggered.stdout)["run_id"]
        followed = subprocess.run(
            [sys.executable, "-m", "cronium_prefect.cli", "logs", run_id, "--follow"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        took = time.monotonic() - began
        # A workflow hears its steps end through the flow-run events, across API processes.
        flow = cronium("trigger", "sc-flow", "--wait", "--json", env=env, timeout=120)
        stopping = time.monotonic()
    finally:
        stop(worker)
    stopped_in = time.monotonic() - stopping
    assert followed.returncode == 0, followed.stderr + log.read_text()[-3000:]
    assert flow.returncode == 0, flow.stderr[-3000:]
    steps = {s["name"]: s["status"] for s in json.loads(flow.stdout)["steps"]}
    assert steps == {"a": "SUCCESS", "b": "SUCCESS"}, flow.stdout
    lines = followed.stdout
    assert "first line" in lines and "last line" in lines, lines
    assert lines.index("first line") < lines.index("last line")
    print(f"\nscaled server: trigger -> followed to the end {took:.1f} s, stop {stopped_in:.1f} s")
    assert took < 60, f"the run waited for the 120 s poll ({took:.0f} s)"
    assert worker.returncode == 0 and stopped_in < STOP_WITHIN_S, (stopped_in, log.read_text())


def test_the_dashboard_reads_the_scaled_server(scaled_server):
    env = {
        **os.environ,
        "PREFECT_API_URL": scaled_server.url,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": scaled_server.database,
    }
    pages = ["app_pages/overview.py", "app_pages/events.py", "app_pages/runs.py"]
    shown = _pages_in_a_process(env, pages)
    for path in pages:
        assert shown[path] == {**shown[path], "errors": [], "exceptions": 0}, (path, shown[path])


@pytest.mark.parametrize(
    ("arguments", "environment", "named"),
    [
        (["--api-processes", "2"], {}, "--api-processes 2: several API processes share events"),
        (["--api-processes", "0"], {}, "--api-processes: 0 is not between 1 and 64"),
        (
            ["--redis", "redis://127.0.0.1:6379/0"],
            {},
            "--redis: the scaled server needs PostgreSQL",
        ),
        (
            [],
            {"PREFECT_REDIS_MESSAGING_URL": "redis://127.0.0.1:6379/0"},
            "PREFECT_REDIS_MESSAGING_URL: the scaled server needs PostgreSQL",
        ),
        (
            ["--redis", "http://user:s3cret@127.0.0.1/0", "--database", PG],
            {},
            "--redis: 'http://***@127.0.0.1/0' is not a redis:// or rediss:// URL",
        ),
        (
            ["--redis", "redis://user:s3cret@127.0.0.1:port/0", "--database", PG],
            {},
            "--redis: 'redis://***@127.0.0.1:port/0' is not a redis:// or rediss:// URL",
        ),
        (
            ["--database", PG],
            {"PREFECT_REDIS_MESSAGING_URL": "redis://:s3cret@[::1/0"},
            "PREFECT_REDIS_MESSAGING_URL: 'redis://***@[::1/0' is not a redis://",
        ),
    ],
    ids=[
        "processes-without-redis",
        "no-processes",
        "redis-on-sqlite",
        "redis-from-the-environment-on-sqlite",
        "not-redis",
        "port-not-a-number",
        "unclosed-bracket",
    ],
)
def test_up_refuses_what_the_scaled_server_cannot_run(
    tmp_path, monkeypatch, arguments, environment, named
):
    monkeypatch.setenv("CRONIUM_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_REDIS_MESSAGING_URL", raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["up", *arguments])
    assert result.exit_code == 2, result.output
    assert named in " ".join(result.output.split()), result.output
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_a_critical_backlog_drains_first_on_the_scaled_server(
    scaled_server, docker_client, tmp_path
):
    critical_backlog_drains_first(scaled_server.url, tmp_path)


RUNS = size(ci=60, full=300)
WORKERS = 3


@pytest.mark.timeout(900)
def test_three_workers_drain_runs_each_exactly_once_though_an_api_process_dies(
    scaled_server, ssh_server, tmp_path
):
    postgres_api = scaled_server.url
    env = {**os.environ, "PREFECT_API_URL": postgres_api}
    with temporary_settings({PREFECT_API_URL: postgres_api}):
        ssh_server("mw-ssh")
    markers = Path(pwd.getpwnam(USER).pw_dir) / f"markers-{uuid.uuid4().hex}.txt"
    (tmp_path / "drain.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: mw-drain
            type: bash
            run_location: remote
            servers: [mw-ssh]
            overlap: allow
            script: |
              run_id=$(cronium_event | sed -n 's/.*"run_id": *"\\([^"]*\\)".*/\\1/p')
              sleep 0.2
              echo "$run_id" >> {markers}
            """
        )
    )
    applied = cronium("apply", str(tmp_path / "drain.yaml"), env=env)
    assert applied.returncode == 0, applied.stderr

    async def create_runs() -> set[str]:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("cronium-event/mw-drain")
            gate = asyncio.Semaphore(16)

            async def one() -> str:
                async with gate:
                    run = await client.create_flow_run_from_deployment(deployment.id)
                return str(run.id)

            return set(await asyncio.gather(*(one() for _ in range(RUNS))))

    with temporary_settings({PREFECT_API_URL: postgres_api}):
        created = asyncio.run(create_runs())
    assert len(created) == RUNS

    logs = [open(tmp_path / f"worker-{i}.log", "w") for i in range(WORKERS)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "cronium_prefect.cli", "worker", "--name", f"mw-{i}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        for i, log in enumerate(logs)
    ]

    async def states() -> dict[str, str]:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("cronium-event/mw-drain")
            found: dict[str, str] = {}
            offset = 0
            while True:
                page = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                    limit=200,
                    offset=offset,
                )
                found.update({str(r.id): r.state.type.value for r in page})
                if len(page) < 200:
                    return found
                offset += 200

    stopped_early: list[str] = []
    killed: list[int] = []
    killed_at = RUNS
    try:
        started = time.monotonic()
        with temporary_settings({PREFECT_API_URL: postgres_api}):
            while True:
                found = asyncio.run(states())
                final = {
                    k: v
                    for k, v in found.items()
                    if v in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
                }
                if not killed and len(final) >= RUNS // 3:
                    processes = scaled_server.api_processes()
                    assert len(processes) == scaled_server.API_PROCESSES, processes
                    killed, killed_at = processes[:1], len(final)
                    os.kill(killed[0], signal.SIGKILL)
                alive = any(w.poll() is None for w in workers)
                if len(final) == RUNS or not alive or time.monotonic() - started > 600:
                    break
                time.sleep(2)
        elapsed = time.monotonic() - started
    finally:
        stopped_early = [f"mw-{i}" for i, w in enumerate(workers) if w.poll() is not None]
        stop(*workers)
        for log in logs:
            log.close()

    written = markers.read_text().split() if markers.exists() else []
    markers.unlink(missing_ok=True)
    per_worker = [
        (tmp_path / f"worker-{i}.log").read_text().count("submitted to infrastructure")
        for i in range(WORKERS)
    ]
    print(
        f"\n{RUNS} runs, {WORKERS} workers, an API process killed: drained in {elapsed:.1f} s, "
        f"{len(written)} markers, {len(set(written))} distinct; runs per worker "
        f"{per_worker}; final states "
        f"{ {s: list(found.values()).count(s) for s in set(found.values())} }"
    )
    assert not stopped_early, f"workers died: {stopped_early}"
    assert killed and killed_at < RUNS, "no API process was killed while runs were left"
    # It was an API process: uvicorn has started another in its place.
    now = scaled_server.api_processes()
    assert len(now) == scaled_server.API_PROCESSES and killed[0] not in now, (killed, now)
    assert "6379" not in scaled_server.log_path.read_text()  # no part of it on a default Redis
    assert all(per_worker), f"a worker ran nothing: {per_worker}"
    assert set(found) == created, "runs appeared or vanished"
    assert all(state == "COMPLETED" for state in found.values()), {
        k: v for k, v in found.items() if v != "COMPLETED"
    }
    duplicates = len(written) - len(set(written))
    assert duplicates == 0, f"{duplicates} runs executed more than once"
    assert set(written) == created, f"{len(created - set(written))} runs never executed"


def test_prepare_database_migrates_and_registers_block_types_then_exits(postgres_cluster, tmp_path):
    """What deploy/compose.scaled.yaml runs once before the API processes; a URL that is
    not PostgreSQL is refused, naming the variable, its password hidden."""
    from tests.cli import CLI

    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    base.update(CRONIUM_HOME=str(tmp_path), PREFECT_HOME=str(tmp_path / "prefect"))
    for url, named in (
        (None, "PREFECT_SERVER_DATABASE_CONNECTION_URL: not set"),
        ("postgresql://u:s3cret@db/prefect", "'postgresql://***@db/prefect' is not a"),
        ("mysql://u:s3cret@db/x", "'mysql://***@db/x' is not a postgresql+asyncpg:// URL"),
        ("postgresql://u:s3/c@ret@db/x", "'postgresql://***@db/x' is not a"),  # @ and / in it
        ("host=db password=s3cret", "'(not shown)' is not a"),
    ):
        env = base if url is None else {**base, "PREFECT_SERVER_DATABASE_CONNECTION_URL": url}
        refused = subprocess.run(
            [*CLI, "prepare-database"], env=env, capture_output=True, text=True
        )
        assert refused.returncode == 1 and named in refused.stderr, refused.stderr
        for part in ("s3cret", "s3/c", "c@ret"):
            assert part not in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr

    name = "prep_" + uuid.uuid4().hex[:8]
    url = postgres_cluster.create_database(name)
    env = {**base, "PREFECT_SERVER_DATABASE_CONNECTION_URL": url}
    done = subprocess.run(
        [*CLI, "prepare-database"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "migrated and its block types registered" in done.stderr

    def query(sql: str) -> str:
        psql = [str(postgres_cluster.bin / "psql"), "-h", "127.0.0.1", "-p"]
        psql += [str(postgres_cluster.port), "-U", "postgres", "-d", name, "-Atc", sql]
        return subprocess.run(psql, capture_output=True, text=True, check=True).stdout.strip()

    assert query("select count(*) from alembic_version") == "1"
    assert {"secret", "cronium-ssh-server"} <= set(query("select slug from block_type").split())

"""Three `cronium worker` processes drain 90 runs (300 at full size) on Prefect's scaled
server (PostgreSQL, Redis, two API processes, the services apart), and one API process is
SIGKILLed mid-drain (uvicorn starts another; the clients' requests meanwhile are retried):
every run executes exactly once (each writes a marker on the SSH server that the test
counts), none is lost."""

from __future__ import annotations

import asyncio
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

from tests.cli import cronium
from tests.processes import stop
from tests.sizes import size
from tests.sshd import USER

RUNS = size(ci=90, full=300)
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

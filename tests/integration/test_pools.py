"""Events choose where they run with Prefect's own unit, the work pool: `pool:` becomes the
deployment's work pool (created, of the cronium type, saying so), `cronium worker --pool`
serves it, and a Docker event that lands on a worker without Docker fails at once naming
that worker's host, its pool and the `pool:` field."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid

from prefect.client.orchestration import get_client

from cronium_prefect.flows.resolve import FLOW_NAME
from tests.cli import cronium
from tests.integration.test_apply import write_events
from tests.processes import stop


async def _pool_of(event: str) -> tuple[str, str, list[str]]:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(f"{FLOW_NAME}/{event}")
        pool = await client.read_work_pool(deployment.work_pool_name)
        queues = await client.read_work_queues(work_pool_name=pool.name)
        return pool.name, pool.type, sorted(q.name for q in queues)


def test_pool_routes_events_to_the_workers_that_serve_it(
    prefect_api, docker_client, ssh_server, tmp_path
):
    ssh_server("pool-ssh")
    far = f"far-{uuid.uuid4().hex[:6]}"
    folder = write_events(
        tmp_path / "events",
        {
            "remote.yaml": f"name: pool-remote\ntype: bash\nstatus: active\npool: {far}\n"
            "run_location: remote\nservers: [pool-ssh]\nscript: echo from the far pool\n",
            "docker.yaml": f"name: pool-docker\ntype: bash\nstatus: active\npool: {far}\n"
            "script: echo never\n",
            "home.yaml": "name: pool-home\ntype: bash\nstatus: active\nscript: echo home\n",
        },
    )
    applied = cronium("apply", str(folder))
    assert applied.returncode == 0, applied.stderr
    assert f"created work pool {far} (cronium)" in " ".join(applied.stdout.split())
    name, kind, queues = asyncio.run(_pool_of("pool-remote"))
    assert (name, kind) == (far, "cronium") and {"critical", "normal", "low"} <= set(queues)
    assert asyncio.run(_pool_of("pool-home"))[0] == os.environ.get("CRONIUM_WORK_POOL", "cronium")
    again = cronium("apply", str(folder))
    assert "created work pool" not in again.stdout  # said once, when made

    # A worker of the far pool on a machine without Docker (no daemon at DOCKER_HOST).
    log = open(tmp_path / "far-worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "worker", "--pool", far],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"},
    )
    try:
        remote = cronium("trigger", "pool-remote", "--wait", "--json", timeout=120)
        assert remote.returncode == 0, remote.stdout + remote.stderr
        assert json.loads(remote.stdout)["status"] == "SUCCESS"
        docker = cronium("trigger", "pool-docker", "--wait", "--json", timeout=120)
        record = json.loads(docker.stdout)
        assert docker.returncode == 1 and record["status"] == "FAILURE", record
        error = " ".join(record["error"].split())
        for words in (f"host {socket.gethostname()}", f"work pool {far}", "`pool:` field"):
            assert words in error, error
        assert "Traceback" not in docker.stderr
    finally:
        stop(worker)
        log.close()


def test_a_pool_of_another_type_is_refused_naming_it(prefect_api, tmp_path):
    from prefect.client.schemas.actions import WorkPoolCreate

    other = f"proc-{uuid.uuid4().hex[:6]}"

    async def make() -> None:
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name=other, type="process"))

    asyncio.run(make())
    folder = write_events(
        tmp_path / "events",
        {"e.yaml": f"name: pool-other\ntype: bash\npool: {other}\nscript: echo\n"},
    )
    done = cronium("apply", str(folder))
    said = " ".join(done.stderr.split())
    assert done.returncode == 1 and f"work pool '{other}' exists with type 'process'" in said
    assert "`pool:` field" in said and "Traceback" not in done.stderr
    listed = json.loads(cronium("events", "--name", "pool-other", "--json").stdout)
    assert "pool-other" not in {row["name"] for row in listed}  # nothing written

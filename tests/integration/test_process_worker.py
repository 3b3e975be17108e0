"""A user's own Prefect flow that calls `docker_script` and `ssh_script`, deployed from its
repository's prefect.yaml (a `git_clone` pull step) and run by a standard Prefect worker,
`prefect worker start --type process`: no Cronium worker involved."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from prefect.client.orchestration import get_client

from tests.integration.helpers import logs_of
from tests.processes import stop

FLOW = """
from prefect import flow, get_run_logger

from cronium_prefect import docker_script, ssh_script


@flow
async def nightly(n: int = 3):
    square = await docker_script(f"import cronium; cronium.output({{'sq': {n} * {n}}})", "python")
    remote = await ssh_script("cronium_output 5", servers=["{server}"])
    get_run_logger().info("results docker=%s ssh=%s", square, remote)
"""

PROJECT = """
name: user-repo
prefect-version: 3.9.1
pull:
  - prefect.deployments.steps.git_clone:
      repository: {repository}
deployments:
  - name: nightly
    entrypoint: flows/nightly.py:nightly
    parameters: {{n: 7}}
    work_pool:
      name: {pool}
"""


def _git(*args: str, cwd) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _prefect(*args: str, cwd, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.timeout(400)
def test_a_users_flow_runs_on_a_process_worker_with_pull_steps(
    prefect_api, docker_client, ssh_server, tmp_path
):
    server = f"proc-{uuid.uuid4().hex[:6]}"
    ssh_server(server)
    pool = f"process-{uuid.uuid4().hex[:6]}"
    repo = tmp_path / "repo"
    (repo / "flows").mkdir(parents=True)
    (repo / "flows" / "nightly.py").write_text(FLOW.replace("{server}", server))
    bare = tmp_path / "repo.git"
    (repo / "prefect.yaml").write_text(
        textwrap.dedent(PROJECT.format(repository=f"file://{bare}", pool=pool))
    )
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "flows", cwd=repo)
    _git("clone", "-q", "--bare", str(repo), str(bare), cwd=tmp_path)

    made = _prefect("work-pool", "create", pool, "--type", "process", cwd=repo)
    assert made.returncode == 0, made.stdout + made.stderr
    deployed = _prefect("deploy", "--all", cwd=repo)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        ran = _prefect("deployment", "run", "nightly/nightly", cwd=tmp_path)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        run_id = ran.stdout.split("UUID:")[1].split()[0]
        state = _wait_final(run_id)
        lines = logs_of(run_id)
        assert state == "COMPLETED", (
            state,
            lines[-20:],
            (tmp_path / "worker.log").read_text()[-3000:],
        )
        assert any("results docker={'sq': 49} ssh=5" in line for line in lines), lines[-20:]
    finally:
        stop(worker)
        log.close()


def _wait_final(run_id: str, timeout: float = 240) -> str:
    import asyncio

    async def read() -> str | None:
        async with get_client() as client:
            state = (await client.read_flow_run(run_id)).state
            return state.type.value if state and state.is_final() else None

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := asyncio.run(read()):
            return found
        time.sleep(1)
    return "NOT FINAL"

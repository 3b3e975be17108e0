"""Timed-out runs in Docker and over SSH (20 each in CI, 50 at full size), each script forking children, ignoring
SIGTERM and holding its output pipe open: nothing is left behind — no container, no
remote process, no run directory."""

from __future__ import annotations

import asyncio
import time

import pytest

from cronium_prefect import parse_text
from cronium_prefect.flows import cronium_event
from cronium_prefect.settings import get_settings
from tests.integration.helpers import record_json
from tests.processes import settles
from tests.sizes import size
from tests.sshd import processes_of_user, run_directories

from .report import report

RUNS = size(ci=20, full=50)
AT_ONCE = 8

# Every way a script can outlive a polite kill.
HOSTILE = """\
sleep 301 &
bash -c 'trap "" TERM; sleep 302' &
( trap '' TERM; exec sleep 303 ) &
setsid sleep 304 < /dev/null &
trap '' TERM
echo started
sleep 305
"""


def _event(name: str, remote: bool):
    import json

    where = 'run_location: remote\nservers: ["rel-ssh"]\n' if remote else ""
    (event,) = parse_text(
        f"name: {name}\ntype: bash\ntimeout: 2s\n{where}script: {json.dumps(HOSTILE)}\n"
    )
    return event


async def _run_all(remote: bool) -> list[dict]:
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(index: int) -> dict:
        async with gate:
            state = await cronium_event(
                event=_event(f"rel-timeout-{index}", remote), return_state=True
            )
            result = await state.result(raise_on_failure=False)
            return record_json(result)

    return await asyncio.gather(*(one(i) for i in range(RUNS)))


def _staging_left() -> list[str]:
    root = get_settings().staging_root
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.mark.timeout(600)
def test_timed_out_docker_runs_leave_no_container_and_no_directory(stack, docker_client):
    started = time.monotonic()
    records = asyncio.run(_run_all(remote=False))
    ids = {r["run_id"] for r in records}

    def containers_left() -> list:
        # Sparse: a full listing inspects each container, and one that another test's run
        # removes meanwhile fails the listing with NotFound.
        listed = docker_client.containers.list(
            all=True, sparse=True, filters={"label": "io.cronium.run-id"}
        )
        return [c for c in listed if c.attrs["Labels"]["io.cronium.run-id"] in ids]

    settles(lambda: not containers_left() and not _staging_left(), 10)
    left = containers_left()
    counts = {
        "runs": len(records),
        "timed_out": sum(r["status"] == "TIMEOUT" for r in records),
        "containers_left": len(left),
        "staging_dirs_left": len(_staging_left()),
        "seconds": round(time.monotonic() - started, 1),
    }
    report("timeouts_docker", counts)
    assert counts["timed_out"] == RUNS, [r["error"] for r in records if r["status"] != "TIMEOUT"]
    assert counts["containers_left"] == 0 and counts["staging_dirs_left"] == 0


@pytest.mark.timeout(600)
def test_timed_out_ssh_runs_leave_no_process_and_no_directory(ssh_server):
    ssh_server("rel-ssh")
    started = time.monotonic()
    records = asyncio.run(_run_all(remote=True))

    def remote_left() -> bool:
        return any("sleep 30" in p for p in processes_of_user()) or bool(run_directories())

    settles(lambda: not remote_left() and not _staging_left(), 10)
    survivors = [p for p in processes_of_user() if "sleep 30" in p]
    counts = {
        "runs": len(records),
        "timed_out": sum(r["status"] == "TIMEOUT" for r in records),
        "remote_processes_left": len(survivors),
        "remote_run_dirs_left": len(run_directories()),
        "local_staging_dirs_left": len(_staging_left()),
        "seconds": round(time.monotonic() - started, 1),
    }
    report("timeouts_ssh", counts)
    assert counts["timed_out"] == RUNS, [r["error"] for r in records if r["status"] != "TIMEOUT"]
    assert survivors == [] and counts["remote_run_dirs_left"] == 0
    assert counts["local_staging_dirs_left"] == 0

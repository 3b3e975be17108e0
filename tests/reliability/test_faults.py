"""Faults around a run: the Prefect server restarted mid-run, the Docker daemon stopped,
an SSH port that swallows connections. Runs go through a real `cronium worker` (one run
at a time, so a slot held too long shows) or the in-process flow, against the real
server, dockerd and sshd. The worker killed with SIGKILL is in
tests/integration/test_worker_process.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

from cronium_prefect.flows.report import read_record
from tests.cli import cronium
from tests.integration.helpers import script_lines
from tests.integration.test_apply import write_events
from tests.integration.test_docker_runs import _running_flow_run_id
from tests.ports import free_port
from tests.processes import stop, wait_until

from .report import report

LINES = 40


@pytest.fixture(scope="module")
def one_slot_worker(prefect_api, docker_client, tmp_path_factory):
    """A `cronium worker --limit 1`: a run that keeps its slot blocks every other run."""
    log_path = tmp_path_factory.mktemp("fault-worker") / "worker.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "worker", "--limit", "1"],
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "started!" not in log_path.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.3)
    yield SimpleNamespace(process=process, log=log_path)
    stop(process)


def test_prefect_server_restarted_mid_run_loses_no_state_output_or_line(
    prefect_server, one_slot_worker, tmp_path
):
    script = f'for i in $(seq 1 {LINES}); do echo "line $i"; sleep 0.25; done\n'
    script += f"cronium_output '{{\"lines\": {LINES}}}'\n"
    folder = write_events(
        tmp_path / "e",
        {"restart.yaml": f"name: fault-restart\ntype: bash\nscript: {json.dumps(script)}\n"},
    )
    assert cronium("apply", str(folder)).returncode == 0
    waiting = subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "trigger", "fault-restart", "--wait"]
        + ["--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_id = _running_flow_run_id(event="fault-restart")
    time.sleep(1)  # a few lines are out and in the API
    began = time.monotonic()
    prefect_server.restart(down_for=2)
    down_s = time.monotonic() - began
    out, err = waiting.communicate(timeout=180)
    assert waiting.returncode == 0, err + one_slot_worker.log.read_text()[-3000:]
    assert json.loads(out)["status"] == "SUCCESS"  # `trigger --wait` rode out the restart
    record = asyncio.run(_record(run_id))
    lines = script_lines(run_id)
    report(
        "faults_server_restart",
        {
            "api_down_s": round(down_s, 1),
            "status": record["status"],
            "lines_printed": LINES,
            "lines_counted": record["log_lines"],
            "lines_in_api": len(lines),
        },
    )
    assert record["status"] == "SUCCESS" and record["output"] == {"lines": LINES}
    assert record["run_id"] == run_id
    assert lines == [f"[stdout] line {i}" for i in range(1, LINES + 1)]
    assert record["log_lines"] == LINES


async def _record(run_id: str) -> dict:
    async with get_client() as client:
        return (await read_record(client, UUID(run_id))).to_json()


@pytest.fixture
def blackhole():
    """A port that completes a TCP handshake or two and then never says anything — and
    whose backlog, once full, drops further SYNs (a firewall's DROP, seen from outside)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", free_port()))
    sock.listen(0)
    yield sock.getsockname()[1]
    sock.close()


def test_a_blackholed_ssh_port_fails_within_the_connect_timeout_and_frees_the_slot(
    ssh_server, sshd, one_slot_worker, blackhole, tmp_path
):
    target = SimpleNamespace(
        port=blackhole, client_key=sshd.client_key, host_key_line=sshd.host_key_line
    )
    block = ssh_server("fault-blackhole", target=target)
    folder = write_events(
        tmp_path / "b",
        {
            "b.yaml": """\
            name: fault-blackholed
            type: bash
            run_location: remote
            servers: [fault-blackhole]
            script: echo never
            ---
            name: fault-after
            type: bash
            script: echo after
            """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    outcomes = []
    for _ in range(3):  # the first ones fill the backlog: later ones hang in connect()
        done = cronium("trigger", "fault-blackholed", "--wait", "--json", timeout=120)
        record = json.loads(done.stdout)
        outcomes.append((record["status"], record["duration_s"], record["error"]))
    after = cronium("trigger", "fault-after", "--wait", "--json", timeout=60)
    report(
        "faults_ssh_blackhole",
        {
            "connect_timeout_s": block.connect_timeout,
            "runs": [{"status": s, "duration_s": d, "error": e} for s, d, e in outcomes],
            "next_run_on_the_one_slot": json.loads(after.stdout)["status"],
        },
    )
    for status, duration, error in outcomes:
        assert status == "FAILURE", error
        assert f"127.0.0.1:{blackhole}" in error, error
        assert "timed out" in error or "set up no SSH session within 5 s" in error, error
        assert duration <= block.connect_timeout + 3, (duration, error)
    assert after.returncode == 0 and json.loads(after.stdout)["status"] == "SUCCESS"


def _run_file(path: Path, docker_host: str, **popen) -> subprocess.Popen:
    """`cronium run FILE --json` against `docker_host`, as a user runs one event."""
    return subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "run", str(path), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DOCKER_HOST": docker_host},
        **popen,
    )


def _record_of(process: subprocess.Popen, timeout: float = 120) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert out.strip(), f"`cronium run` printed no record (exit {process.returncode}): {err}"
    return json.loads(out)


def test_docker_daemon_stopped_fails_runs_fast_and_clearly_then_they_work_again(
    prefect_api, private_dockerd, tmp_path
):
    import docker

    client = docker.DockerClient(base_url=private_dockerd.url)
    events = {}
    for name, script in [("mid", "sleep 60"), ("down", "echo x"), ("back", "echo back")]:
        events[name] = tmp_path / f"{name}.yaml"
        events[name].write_text(f"name: fault-dockerd-{name}\ntype: bash\nscript: {script}\n")
    mid = _run_file(events["mid"], private_dockerd.url)
    wait_until(lambda: client.containers.list(), 60, "the container starting")
    stopped_at = time.monotonic()
    private_dockerd.process.send_signal(signal.SIGTERM)
    wait_until(lambda: private_dockerd.process.poll() is not None, 60, "dockerd stopping")
    mid_record = _record_of(mid)
    mid_s = time.monotonic() - stopped_at
    while_down = _record_of(_run_file(events["down"], private_dockerd.url))
    private_dockerd.start()
    after = _record_of(_run_file(events["back"], private_dockerd.url))
    report(
        "faults_dockerd",
        {
            "mid_run": {"status": mid_record["status"], "error": mid_record["error"]},
            "mid_run_ended_after_stop_s": round(mid_s, 1),
            "while_down": {"status": while_down["status"], "error": while_down["error"]},
            "while_down_run_s": while_down["duration_s"],
            "after_restart": after["status"],
        },
    )
    # Stopping, dockerd stops its containers: the run ends on the daemon's failing API or
    # on its script's exit code (143, SIGTERM), whichever comes first; failed, either way.
    assert mid_record["status"] == "FAILURE", mid_record["error"]
    assert mid_s < 30, f"the run in progress took {mid_s:.0f} s to end"
    assert while_down["status"] == "FAILURE" and "Docker" in while_down["error"], while_down
    assert while_down["duration_s"] < 5, f"a run with dockerd down took {while_down} to fail"
    assert after["status"] == "SUCCESS", after["error"]

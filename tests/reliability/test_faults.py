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
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

from cronium_prefect.flows.follow import read_record
from tests.cli import cronium
from tests.integration.helpers import event_from, run_flow, script_lines
from tests.integration.test_apply import write_events
from tests.integration.test_docker_runs import _running_flow_run_id
from tests.ports import free_port
from tests.processes import stop

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
    run_id = _running_flow_run_id()
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
        return await read_record(client, UUID(run_id))


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


def _dockerd() -> tuple[int, list[str]] | None:
    found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True)
    pids = found.stdout.split()
    if len(pids) != 1:
        return None
    command = Path(f"/proc/{pids[0]}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    return int(pids[0]), [part.decode() for part in command]


def _exited(pid: int) -> bool:
    """True once `pid` has exited. When tests/run.sh started dockerd and then exec'd
    pytest, this process is dockerd's parent: the dead daemon stays a zombie (its /proc
    entry remains) until it is reaped here."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # not our child: init reaps it
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f} s"
        time.sleep(0.2)


def test_docker_daemon_stopped_fails_runs_fast_and_clearly_then_they_work_again(
    stack, docker_client
):
    daemon = _dockerd()
    if daemon is None or os.geteuid() != 0:
        pytest.skip("needs root and one dockerd process this test may stop and start again")
    pid, command = daemon
    results: dict[str, tuple] = {}

    def long_run() -> None:
        results["mid"] = run_flow(
            event_from("name: fault-dockerd-mid\ntype: bash\nscript: sleep 60\n")
        )

    thread = threading.Thread(target=long_run)
    thread.start()
    _running_flow_run_id()
    _wait_until(lambda: docker_client.containers.list(), 30, "the container starting")
    stopped_at = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    try:
        _wait_until(lambda: _exited(pid), 60, "dockerd stopping")
        thread.join(60)
        mid_s = time.monotonic() - stopped_at
        began = time.monotonic()
        _, while_down = run_flow(
            event_from("name: fault-dockerd-down\ntype: bash\nscript: echo x\n")
        )
        down_s = time.monotonic() - began
    finally:
        with open("/var/log/cronium-dockerd.log", "a") as log:
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_until(_pings(docker_client), 60, "dockerd answering again")
    _, mid_record = results["mid"]
    _, after = run_flow(event_from("name: fault-dockerd-back\ntype: bash\nscript: echo back\n"))
    report(
        "faults_dockerd",
        {
            "mid_run": {"status": mid_record["status"], "error": mid_record["error"]},
            "mid_run_ended_after_stop_s": round(mid_s, 1),
            "while_down": {"status": while_down["status"], "error": while_down["error"]},
            "while_down_s": round(down_s, 2),
            "after_restart": after["status"],
        },
    )
    # Stopping, dockerd stops its containers: the run ends on the daemon's failing API or
    # on its script's exit code (143, SIGTERM), whichever comes first; failed, either way.
    assert mid_record["status"] == "FAILURE", mid_record["error"]
    assert mid_s < 30, f"the run in progress took {mid_s:.0f} s to end"
    assert while_down["status"] == "FAILURE" and "Docker" in while_down["error"]
    assert down_s < 5, f"a run with dockerd down took {down_s:.1f} s to fail"
    assert after["status"] == "SUCCESS", after["error"]


def _pings(client):
    def answered() -> bool:
        try:
            return bool(client.ping())
        except Exception:
            return False

    return answered

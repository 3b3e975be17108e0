"""Connection loss, the circuit breaker, and concurrent variable writes over SSH."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from cronium_prefect.blocks.variable_store import get_variable_store
from cronium_prefect.flows.runtime import current_runtime
from tests.sshd import Sshd, run_directories

from .helpers import event_from, logs_of, run_flow, runs_at_once
from .test_docker_runs import _running_flow_run_id
from .test_ssh_runs import remote


@pytest.fixture
def flaky_sshd(sshd, tmp_path):
    server = Sshd.create(tmp_path / "flaky-sshd")
    yield server
    server.remove()


def test_sshd_gone_mid_run_fails_fast_then_the_circuit_opens_and_closes(ssh_server, flaky_sshd):
    block = ssh_server("ssh-flaky", target=flaky_sshd)
    breaker = current_runtime().ssh_pool.breaker(block)
    # Longer than any run here takes, however loaded the machine: the open circuit must
    # still be open for the run after the three failures. Ended by hand below.
    breaker.cooldown = 600.0
    results = {}

    def long_run():
        results["mid"] = run_flow(
            event_from(remote("ssh-cut", "bash", "echo started\nsleep 60\n", servers=["ssh-flaky"]))
        )

    thread = threading.Thread(target=long_run)
    thread.start()
    run_id = _running_flow_run_id()
    deadline = time.monotonic() + 20
    while not any("started" in m for m in logs_of(run_id, finished=False)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stopped = time.monotonic()
    flaky_sshd.stop()
    thread.join(30)
    assert time.monotonic() - stopped < block.connect_timeout + 2
    _, record = results["mid"]
    assert record["status"] == "FAILURE"
    assert "connection to server 'ssh-flaky'" in record["error"] and "was lost" in record["error"]

    quick = event_from(remote("ssh-refused", "bash", "echo hi", servers=["ssh-flaky"]))
    for _ in range(breaker.threshold):
        _, record = run_flow(quick)
        assert "cannot connect to 127.0.0.1" in record["error"], record["error"]
    assert breaker.opened_at is not None  # open
    _, record = run_flow(quick)
    assert "circuit open for server 'ssh-flaky' after 3 consecutive" in record["error"]
    assert record["servers"][0]["exit_code"] is None and record["duration_s"] < 2, record

    flaky_sshd.start()
    breaker.cooldown = 0.0  # the cooldown is over: the next run is the half-open trial
    _, record = run_flow(quick)
    assert record["status"] == "SUCCESS", record["error"]
    assert breaker.opened_at is None  # closed
    assert run_directories() == []  # the lost run's directory was removed on reconnecting
    logs = logs_of(record["run_id"])
    assert any("circuit half-open" in m for m in logs) and any("circuit closed" in m for m in logs)


def test_twenty_parallel_runs_lose_no_variable_write(ssh_server):
    ssh_server("ssh-main")
    script = (
        'i=$(cronium_input)\ncronium_setVariable "PARALLEL_$i" "{\\"run\\": $i}"\n'
        'cronium_setVariable SAME_KEY "$i"\n'
    )
    event = event_from(remote("ssh-parallel", "bash", script))
    states = asyncio.run(runs_at_once([(event, i) for i in range(20)]))
    assert all(state.is_completed() for state in states)
    values = get_variable_store().visible(None).values
    assert {k: v for k, v in values.items() if k.startswith("PARALLEL_")} == {
        f"PARALLEL_{i}": {"run": i} for i in range(20)
    }
    assert values["SAME_KEY"] in range(20)  # last write wins; every write was a whole value
    print(
        f"20 parallel runs: {len([k for k in values if k.startswith('PARALLEL_')])} of 20 "
        "distinct writes kept"
    )


def test_remote_json_output_over_the_limit_fails_without_downloading_it(ssh_server):
    ssh_server("ssh-main")
    script = 'head -c 5000000 /dev/zero | tr "\\\\0" x > "$CRONIUM_DIR/out/output.txt"'
    _, record = run_flow(event_from(remote("ssh-big", "bash", script)))
    assert record["status"] == "FAILURE"
    assert "output is 5000000 bytes, over the limit of 1048576 bytes" in record["error"]
    assert json.dumps(record).count("x" * 100) == 0


def test_a_pooled_connection_dropped_before_a_run_starts_is_replaced(ssh_server, monkeypatch):
    """The connection the pool lends can close between the pool's check and the script's
    start (the server or the network dropped it): nothing ran, so the run starts on another
    connection instead of failing with 'SSH session not active' (seen once in CI)."""
    import contextlib

    from cronium_prefect.executors.ssh_pool import ConnectionPool

    from .helpers import script_lines

    ssh_server("ssh-main")
    lend = ConnectionPool.transport
    dropped: list = []

    @contextlib.contextmanager
    def dropping_the_first(self, *args, **kwargs):
        with lend(self, *args, **kwargs) as transport:
            if not dropped:  # closed right after the pool looked at it
                transport.close()
                dropped.append(transport)
            yield transport

    monkeypatch.setattr(ConnectionPool, "transport", dropping_the_first)
    state, record = run_flow(event_from(remote("ssh-dropped", "bash", "echo still ran")))
    assert record["status"] == "SUCCESS", record["error"]
    assert dropped and not dropped[0].is_active()
    assert "[ssh-main stdout] still ran" in script_lines(record["run_id"])

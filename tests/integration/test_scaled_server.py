"""Prefect's scaled server, as `cronium up --redis URL --api-processes N` starts it
(PostgreSQL, Redis, two API processes, the background services in a process apart): a
worker is woken by flow-run events through Redis, `cronium logs --follow` follows a run
to its end, a worker stops promptly, the dashboard reads it; and `cronium up` refuses
the combinations Prefect cannot run, naming the option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from cronium_prefect.cli.app import app
from cronium_prefect.flows.worker import LISTENING
from tests.cli import cronium
from tests.dashboard.test_pages import _pages_in_a_process
from tests.processes import stop, wait_until

from .test_apply import write_events

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

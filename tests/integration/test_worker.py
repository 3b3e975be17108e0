"""Deployments run by `cronium worker`: trigger with input, logs while running, schedules."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from tests.processes import wait_until

from .test_apply import cronium, write_events


def test_trigger_with_input_runs_on_the_worker_and_waits(worker, tmp_path):
    folder = write_events(
        tmp_path / "w",
        {
            "echo.yaml": """\
        name: wk-echo
        type: python
        script: |
          import cronium
          data = cronium.input()
          print("got", data)
          cronium.output({"doubled": data["n"] * 2, "trigger": cronium.event()["trigger"]})
    """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    done = cronium("trigger", "wk-echo", "--input", '{"n": 21}', "--wait", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "SUCCESS"
    assert result["output"] == {"doubled": 42, "trigger": "manual"}
    assert "got {'n': 21}" in done.stderr


def test_logs_follow_streams_lines_while_the_run_goes(worker, tmp_path):
    """The follower prints the first line while the run still goes: before the run ends
    (timed by the API's end time, the same clock), not all at the end. The run sleeps
    10 s between its lines, so a follower slow to start (a loaded machine) still sees it
    running."""
    folder = write_events(
        tmp_path / "l",
        {
            "slow.yaml": """\
        name: wk-slow
        type: bash
        script: |
          echo first line
          sleep 10
          echo last line
    """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    triggered = cronium("trigger", "wk-slow", "--json")
    assert triggered.returncode == 0, triggered.stderr
    run_id = json.loads(triggered.stdout)["run_id"]
    follower = subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "logs", run_id, "--follow"],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: dict[str, float] = {}
    for line in follower.stdout:
        for marker in ("first line", "last line"):
            if marker in line:
                seen.setdefault(marker, time.time())
    follower.wait(timeout=60)
    assert follower.returncode == 0
    assert set(seen) == {"first line", "last line"}

    async def ended() -> float:
        async with get_client() as client:
            return (await client.read_flow_run(run_id)).end_time.timestamp()

    assert seen["first line"] < asyncio.run(ended()), "the first line came only at the end"


def test_an_interval_schedule_fires_on_the_server(worker, tmp_path):
    folder = write_events(
        tmp_path / "s",
        {
            "tick.yaml": textwrap.dedent("""\
        name: wk-tick
        type: bash
        script: echo tick
        status: active
        schedule: {interval: 5s}
    """)
        },
    )
    assert cronium("apply", str(folder)).returncode == 0

    async def completed_runs() -> int:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["wk-tick"]))
            )
            return len([r for r in runs if r.state and r.state.is_completed()])

    deadline = time.monotonic() + 90
    while asyncio.run(completed_runs()) < 2:
        assert time.monotonic() < deadline, "the schedule did not produce two completed runs"
        time.sleep(1)
    assert cronium("pause", "wk-tick").returncode == 0


def test_max_executions_pauses_the_event_and_resume_starts_a_new_count(worker, tmp_path):
    folder = write_events(
        tmp_path / "m",
        {
            "limited.yaml": """\
        name: wk-limited
        type: bash
        script: echo limited
        status: active
        schedule: {interval: 3s}
        max_executions: 2
    """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0

    async def state() -> tuple[bool, bool, int]:
        """(paused, every run final, runs completed). Pausing deletes the deployment's
        scheduled runs and the scheduler makes none for a paused one: once paused with
        every run final, nothing more can run."""
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("cronium-event/wk-limited")
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["wk-limited"]))
            )
            final = all(r.state and r.state.is_final() for r in runs)
            return deployment.paused, final, len([r for r in runs if r.state.is_completed()])

    def wait_paused() -> int:
        deadline = time.monotonic() + 90
        while not all((found := asyncio.run(state()))[:2]):
            assert time.monotonic() < deadline, f"not paused with every run final: {found}"
            time.sleep(0.5)
        return found[2]

    assert wait_paused() == 2
    listing = {
        r["name"]: r for r in json.loads(cronium("events", "--name", "wk-limited", "--json").stdout)
    }
    assert listing["wk-limited"]["status"] == "paused"
    assert cronium("resume", "wk-limited").returncode == 0
    assert wait_paused() == 4


def test_start_time_alone_runs_exactly_once(worker, tmp_path):
    from datetime import datetime, timedelta, timezone

    # Ahead by more than `cronium apply` takes on a loaded machine: a one-shot already in
    # the past when applied never runs (apply warns).
    at = (datetime.now(timezone.utc) + timedelta(seconds=20)).isoformat(timespec="seconds")
    folder = write_events(
        tmp_path / "o",
        {
            "once.yaml": f"""\
        name: wk-once
        type: bash
        script: echo once
        status: active
        schedule: {{start_time: "{at}"}}
    """
        },
    )
    applied = cronium("apply", str(folder))
    assert applied.returncode == 0 and "in the past" not in applied.stderr, applied.stderr

    async def runs() -> list:
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["wk-once"]))
            )

    deadline = time.monotonic() + 90
    while not any(r.state and r.state.is_completed() for r in asyncio.run(runs())):
        assert time.monotonic() < deadline, "the one run never happened"
        time.sleep(1)
    # The scheduler makes a schedule's runs ahead of time: a second run would already be
    # there, Scheduled, beside the completed one.
    found = asyncio.run(runs())
    assert len(found) == 1 and found[0].state.is_completed(), [r.state.name for r in found]
    assert found[0].expected_start_time.isoformat(timespec="seconds").replace(
        "+00:00", ""
    ) == at.replace("+00:00", "")


def test_cancelling_a_running_run_kills_its_script_and_ends_cancelled(
    worker, docker_client, tmp_path
):
    from prefect.states import Cancelling

    from cronium_prefect.executors.docker import RUN_LABEL

    folder = write_events(
        tmp_path / "x",
        {"x.yaml": "name: wk-cancel\ntype: bash\nscript: |\n  echo started\n  sleep 600\n"},
    )
    assert cronium("apply", str(folder)).returncode == 0
    started = cronium("trigger", "wk-cancel", "--json")
    run_id = json.loads(started.stdout)["run_id"]

    def containers() -> list:
        return docker_client.containers.list(
            all=True, sparse=True, filters={"label": f"{RUN_LABEL}={run_id}"}
        )

    async def state() -> str:
        async with get_client() as client:
            return (await client.read_flow_run(run_id)).state.type.value

    deadline = time.monotonic() + 60
    while not (asyncio.run(state()) == "RUNNING" and containers()):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.5)

    async def cancel() -> None:  # what Prefect's UI and `prefect flow-run cancel` do
        async with get_client() as client:
            await client.set_flow_run_state(run_id, Cancelling())

    asyncio.run(cancel())
    deadline = time.monotonic() + 45
    while asyncio.run(state()) != "CANCELLED":
        assert time.monotonic() < deadline, f"still {asyncio.run(state())} after cancelling"
        time.sleep(0.5)
    assert not containers(), "the script's container outlived the cancellation"


def test_automatic_retries_after_crashes_are_bounded_and_a_retry_by_hand_is_not(worker, tmp_path):
    """The history a crashed-and-retried run carries (what crash_detection's automations
    write) decides: within the event's retries it runs, past them it fails, and a retry
    started by hand (Prefect's Retry button) is never refused."""
    from prefect.states import Crashed, Running, Scheduled

    from cronium_prefect.flows.crash_detection import RETRY_AUTOMATION_NAME, RETRY_MESSAGE
    from tests.integration.helpers import logs_of

    folder = write_events(
        tmp_path / "r",
        {
            "r.yaml": """\
            name: wk-retried
            type: bash
            retries: 1
            overlap: allow  # two of its runs are due at once here: neither may be skipped
            script: echo ran
            ---
            name: wk-no-retries
            type: bash
            script: echo ran
            """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0

    async def crashed_run(event: str, retried_by: list[str]) -> str:
        """A run of `event` that started, crashed, and was scheduled again, per entry."""
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(f"cronium-event/{event}")
            # Due in an hour: no worker takes it before its history is written.
            later = datetime.now(timezone.utc) + timedelta(hours=1)
            run = await client.create_flow_run_from_deployment(
                deployment.id, state=Scheduled(scheduled_time=later)
            )
            for message in retried_by:
                await client.set_flow_run_state(run.id, Running(), force=True)
                await client.set_flow_run_state(run.id, Crashed(message="gone"), force=True)
                await client.set_flow_run_state(
                    run.id, Scheduled(name="AwaitingRetry", message=message), force=True
                )
            return str(run.id)

    async def final(run_id: str) -> str:
        async with get_client() as client:
            for _ in range(120):
                run = await client.read_flow_run(run_id)
                if run.state.is_final() and run.state.name != "Crashed":
                    return run.state.name
                await asyncio.sleep(0.5)
        raise AssertionError(f"run {run_id} did not finish")

    async def retry_automation(pause: bool) -> None:
        """Paused while this test writes the history the automation would write."""
        async with get_client() as client:
            for automation in await client.read_automations_by_name(RETRY_AUTOMATION_NAME):
                if pause:
                    await client.pause_automation(automation.id)
                else:
                    await client.resume_automation(automation.id)

    asyncio.run(retry_automation(pause=True))
    try:
        within = asyncio.run(crashed_run("wk-retried", [RETRY_MESSAGE]))
        past = asyncio.run(crashed_run("wk-retried", [RETRY_MESSAGE, RETRY_MESSAGE]))
        by_hand = asyncio.run(crashed_run("wk-no-retries", ["Retry from the UI"]))
    finally:
        asyncio.run(retry_automation(pause=False))
    # Each run was started more than once: an earlier start's closing line may be in
    # before the last start's lines, so wait for the line itself.
    assert asyncio.run(final(within)) == "Completed"
    said = "started again after its worker stopped (crash 1"
    wait_until(lambda: any(said in m for m in logs_of(within)), 30, f"{said!r} in the logs")
    assert asyncio.run(final(past)) == "Failed"
    said = "stopped 2 time(s); the event's retries (1) are used up"
    wait_until(lambda: any(said in m for m in logs_of(past)), 30, f"{said!r} in the logs")
    assert asyncio.run(final(by_hand)) == "Completed"

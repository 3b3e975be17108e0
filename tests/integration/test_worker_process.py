"""Worker processes: woken by Prefect's flow-run events rather than its poll; killed with
SIGKILL mid-run, its run is marked Crashed in bounded time, a worker starting again
removes the container it left, a run of an event with retries is run again, a workflow is
resumed without running its done steps again, and runs that finished normally are never
touched."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import docker
import pytest
from prefect.client.orchestration import get_client

from cronium_prefect.executors.docker import RUN_LABEL
from cronium_prefect.flows.crash_detection import AUTOMATION_NAME, RETRY_AUTOMATION_NAME
from cronium_prefect.flows.report import read_record
from cronium_prefect.flows.worker import LISTENING, STOPPED_MESSAGE
from tests.cli import cronium
from tests.integration.helpers import logs_of
from tests.processes import stop, wait_until

from .test_apply import write_events
from .workflow_runs import step_runs

CRASH_AFTER = 60  # the smallest CRONIUM_CRASH_AFTER


def _start_worker(log_path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "worker"],
        stdout=open(log_path, "a"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "CRONIUM_CRASH_AFTER": str(CRASH_AFTER), **env},
    )


def test_a_triggered_run_starts_without_waiting_for_the_poll(prefect_api, docker_client, tmp_path):
    folder = write_events(
        tmp_path / "w", {"w.yaml": "name: wp-now\ntype: bash\nscript: echo now\n"}
    )
    assert cronium("apply", str(folder)).returncode == 0
    log = tmp_path / "worker.log"
    # Polling every 120 s: only the flow-run event can wake this worker in time.
    worker = _start_worker(log, CRONIUM_WORKER_POLL_SECONDS="120")
    try:
        wait_until(lambda: LISTENING in log.read_text(), 60, "the worker listening for new runs")
        began = time.monotonic()
        done = cronium("trigger", "wp-now", "--wait", "--json", timeout=100)
        took = time.monotonic() - began
    finally:
        stop(worker)
    assert done.returncode == 0, done.stderr + log.read_text()
    print(f"\ntrigger -> completed with a 120 s poll interval: {took:.1f} s")
    assert took < 30, f"the run waited for the poll ({took:.0f} s)"


def _state(run_id: str) -> str:
    async def read() -> str:
        async with get_client() as client:
            return (await client.read_flow_run(run_id)).state.type.value

    return asyncio.run(read())


# Two kills' worth of waiting in one (the crash wait is the same): over the default 300 s
# under a loaded CI machine (each wait below has its own bound).
@pytest.mark.timeout(600)
def test_sigkilled_worker_run_is_crashed_reaped_and_retried_when_it_has_retries(
    prefect_api, private_dockerd, tmp_path
):
    # The workers' own daemon: on the machine's, any new `cronium` process of a test beside
    # this one could reap the dead worker's containers before the next worker does.
    docker_client = docker.DockerClient(base_url=private_dockerd.url)
    folder = write_events(
        tmp_path / "c",
        {
            "crash.yaml": """\
            name: wc-long
            type: bash
            script: |
              echo started
              sleep 600
            timeout: 15m
            ---
            name: wc-again
            type: bash
            retries: 1
            script: |
              echo started
              sleep 20
              echo finished
            ---
            name: wc-quick
            type: bash
            script: echo quick
            ---
            name: wfc-a
            type: bash
            status: active
            script: cronium_output '"from a"'
            ---
            name: wfc-b
            type: bash
            status: active
            retries: 1
            script: |
              echo started
              sleep 15
              cronium_output "$(cronium_input)"
            ---
            name: wfc-c
            type: bash
            status: active
            script: cronium_output "$(cronium_input)"
            ---
            kind: workflow
            name: wfc
            status: active
            steps:
              - {name: a, event: wfc-a}
              - {name: b, event: wfc-b, needs: [a]}
              - {name: c, event: wfc-c, needs: [b]}
            """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    log = tmp_path / "worker.log"
    first = _start_worker(log, DOCKER_HOST=private_dockerd.url)
    try:
        quick = cronium("trigger", "wc-quick", "--wait", "--json")
        assert quick.returncode == 0, quick.stderr + log.read_text()
        quick_id = json.loads(quick.stdout)["run_id"]
        run_ids = {}
        for name in ("wc-long", "wc-again"):
            started = cronium("trigger", name, "--json")
            assert started.returncode == 0, started.stderr
            run_ids[name] = json.loads(started.stdout)["run_id"]
        started = cronium("trigger", "wfc", "--json")
        assert started.returncode == 0, started.stderr
        workflow_id = json.loads(started.stdout)["run_id"]

        def containers() -> list:
            return [
                c
                for run_id in run_ids.values()
                for c in docker_client.containers.list(
                    all=True, sparse=True, filters={"label": f"{RUN_LABEL}={run_id}"}
                )
            ]

        wait_until(
            lambda: (
                all(_state(r) == "RUNNING" for r in run_ids.values()) and len(containers()) == 2
            ),
            60,
            "both runs starting",
        )
        wait_until(lambda: _step_running("b"), 120, "the workflow's step b running")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed_at = time.monotonic()
    assert len(containers()) == 2, "the containers went away with the worker: nothing to reap"
    assert _state(run_ids["wc-long"]) == "RUNNING"

    second = _start_worker(log, DOCKER_HOST=private_dockerd.url)
    try:
        reaped_in = wait_until(lambda: not containers(), 60, "reaping the orphaned containers")
        wait_until(
            lambda: _state(run_ids["wc-long"]) == "CRASHED",
            CRASH_AFTER + 90,
            "marking the run crashed",
        )
        crashed_in = time.monotonic() - killed_at
        wait_until(
            lambda: _state(run_ids["wc-again"]) == "COMPLETED", 120, "the retried run finishing"
        )
        retried_in = time.monotonic() - killed_at
        wait_until(
            lambda: _state(workflow_id) in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED"),
            240,
            "the workflow resuming and ending",
        )
    finally:
        stop(second)
    print(
        f"\nafter SIGKILL: containers reaped {reaped_in:.1f} s after the next worker started; "
        f"run Crashed {crashed_in:.0f} s after the kill (CRONIUM_CRASH_AFTER={CRASH_AFTER}); "
        f"the run with retries Completed {retried_in:.0f} s after the kill"
    )

    async def history(run_id: str) -> list[str]:
        async with get_client() as client:
            return [s.name for s in await client.read_flow_run_states(run_id)]

    assert "Crashed" in asyncio.run(history(run_ids["wc-again"]))
    assert "AwaitingRetry" in asyncio.run(history(run_ids["wc-again"]))
    again_logs = logs_of(run_ids["wc-again"])
    assert any("started again after its worker stopped (crash 1" in m for m in again_logs)
    assert "[stdout] finished" in again_logs
    # No retries: Crashed it stays.
    assert "AwaitingRetry" not in asyncio.run(history(run_ids["wc-long"]))
    assert _state(run_ids["wc-long"]) == "CRASHED"

    async def automations():
        async with get_client() as client:
            return [
                await client.read_automations_by_name(name)
                for name in (AUTOMATION_NAME, RETRY_AUTOMATION_NAME)
            ]

    assert [len(found) for found in asyncio.run(automations())] == [1, 1]
    # The quick run finished well over CRASH_AFTER seconds ago: it must still be Completed.
    assert _state(quick_id) == "COMPLETED"
    _resumed_without_rerunning_done_steps(workflow_id)


def _step_runs(step: str) -> list:
    return step_runs("wfc", step)


def _step_running(step: str) -> bool:
    runs = _step_runs(step)
    return bool(runs) and runs[0].state.is_running()


def _resumed_without_rerunning_done_steps(workflow_id: str) -> None:
    """The workflow run crashed with its worker, the crash automation started it again,
    and the next worker resumed it: the step that had succeeded did not run again, the
    one that was running was run again by its own retry."""

    async def record_and_history():
        async with get_client() as client:
            states = [s.name for s in await client.read_flow_run_states(workflow_id)]
            return (await read_record(client, workflow_id)).to_json(), states

    record, history = asyncio.run(record_and_history())
    assert _state(workflow_id) == "COMPLETED", (history, json.dumps(record, indent=1)[-4000:])
    assert "Crashed" in history and "AwaitingRetry" in history
    steps = {s["name"]: s for s in record["steps"]}
    assert [s["status"] for s in steps.values()] == ["SUCCESS"] * 3
    assert steps["c"]["output"] == "from a"
    (a_run,) = _step_runs("a")  # a ran once, and only once
    assert a_run.run_count == 1 and steps["a"]["run_ids"] == [str(a_run.id)]
    (b_run,) = _step_runs("b")  # b's one run: crashed, then run again by the automation
    assert b_run.run_count == 2
    assert len(_step_runs("c")) == 1


def test_workers_starting_together_leave_one_crash_automation(prefect_api):
    from cronium_prefect.flows.crash_detection import ensure_crash_detection

    async def race() -> int:
        async with get_client() as client:
            for automation in await client.read_automations_by_name(AUTOMATION_NAME):
                await client.delete_automation(automation.id)

        async def one_worker() -> None:
            async with get_client() as client:
                await ensure_crash_detection(client)

        for _ in range(3):  # both orders of create/delete get a chance
            await asyncio.gather(*(one_worker() for _ in range(4)))
        async with get_client() as client:
            return len(await client.read_automations_by_name(AUTOMATION_NAME))

    assert asyncio.run(race()) == 1


def _line_delays(run_id: str, lines: int) -> list[float]:
    """Seconds from each `LAT <n> <time printed>` line's printing to its first sight
    through the API (read every 0.1 s)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async def watch() -> list[float]:
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 90
        async with get_client() as client:
            while len(seen) < lines and time.monotonic() < deadline:
                logs = await client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
                )
                now = time.time()
                for log in logs:
                    if "LAT " in log.message:
                        number, printed = log.message.split("LAT ", 1)[1].split()[:2]
                        seen.setdefault(number, now - float(printed))
                await asyncio.sleep(0.1)
        return sorted(seen.values())

    return asyncio.run(watch())


def test_the_worker_ships_log_lines_every_half_second_unless_prefect_is_told_otherwise(
    prefect_api, docker_client, tmp_path
):
    """Prefect batches log lines for 2 s: a line showed ~1 s late on average in the UI and
    `cronium logs --follow`. The worker ships every 0.5 s; PREFECT_LOGGING_TO_API_BATCH_INTERVAL,
    when set, still decides."""
    script = 'for i in $(seq 20); do echo "LAT $i $(date +%s.%N)"; sleep 0.2; done'
    folder = write_events(
        tmp_path / "l",
        {"l.yaml": f"name: wp-lines\ntype: bash\noverlap: allow\nscript: '{script}'\n"},
    )
    assert cronium("apply", str(folder)).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_TO_API_BATCH_INTERVAL"}
    medians = {}
    for interval in (None, "2"):
        log = tmp_path / f"worker-{interval}.log"
        extra = {"PREFECT_LOGGING_TO_API_BATCH_INTERVAL": interval} if interval else {}
        worker = subprocess.Popen(
            [sys.executable, "-m", "cronium_prefect.cli", "worker"],
            stdout=open(log, "w"),
            stderr=subprocess.STDOUT,
            env={**env, **extra},
        )
        try:
            wait_until(lambda log=log: "started!" in log.read_text(), 60, "the worker starting")
            started = cronium("trigger", "wp-lines", "--json")
            assert started.returncode == 0, started.stderr
            run_id = json.loads(started.stdout)["run_id"]
            delays = _line_delays(run_id, 20)
            wait_until(lambda r=run_id: _state(r) == "COMPLETED", 60, "the run ending")
        finally:
            stop(worker)
        assert len(delays) == 20, log.read_text()
        medians[interval] = delays[len(delays) // 2]
    print(
        f"\nmedian line delay: worker default {medians[None]:.2f} s, 2 s set {medians['2']:.2f} s"
    )
    assert medians[None] < 0.8, "lines are not shipped every 0.5 s"
    assert medians["2"] > 0.8, "PREFECT_LOGGING_TO_API_BATCH_INTERVAL was not respected"


def test_a_worker_stopped_with_sigterm_ends_its_runs_and_sends_their_last_lines(
    prefect_api, docker_client, tmp_path
):
    """systemd, `docker stop` and `cronium up` stop a worker with SIGTERM. It used to die at
    once: its running runs stayed Running (Crashed a minute later) with their containers,
    and the log lines of its last half second never reached the API. Now its runs are
    Crashed at once (run again when their event has retries), their containers gone."""
    folder = write_events(
        tmp_path / "t",
        {
            "t.yaml": """\
            name: wp-stopped
            type: bash
            script: |
              echo started
              sleep 600
            timeout: 15m
            ---
            name: wp-stopped-retried
            type: bash
            retries: 1
            script: |
              echo started
              sleep 600
            timeout: 15m
            ---
            name: wp-quick
            type: bash
            script: echo quick
            """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    log = tmp_path / "worker.log"
    worker = _start_worker(log)
    try:
        run_ids = []
        for name in ("wp-stopped", "wp-stopped-retried"):
            started = cronium("trigger", name, "--json")
            assert started.returncode == 0, started.stderr
            run_ids.append(json.loads(started.stdout)["run_id"])
        long_id, retried_id = run_ids
        wait_until(
            lambda: all(
                docker_client.containers.list(
                    sparse=True, filters={"label": f"{RUN_LABEL}={run_id}"}
                )
                for run_id in run_ids
            ),
            60,
            "both runs' containers starting",
        )
        quick = cronium("trigger", "wp-quick", "--wait", "--json")
        assert quick.returncode == 0, quick.stderr + log.read_text()
        quick_id = json.loads(quick.stdout)["run_id"]
        worker.send_signal(signal.SIGTERM)  # at once: its last lines are still to be sent
        began = time.monotonic()
        code = worker.wait(timeout=60)
        took = time.monotonic() - began
    finally:
        stop(worker)
    print(f"\nworker stopped by SIGTERM in {took:.1f} s, exit code {code}")
    assert code == 0, log.read_text()[-3000:]
    assert _state(long_id) == "CRASHED"

    async def message() -> str:
        async with get_client() as client:
            return (await client.read_flow_run(long_id)).state.message

    assert asyncio.run(message()) == STOPPED_MESSAGE
    for run_id in run_ids:
        assert not docker_client.containers.list(
            all=True, sparse=True, filters={"label": f"{RUN_LABEL}={run_id}"}
        ), "a stopped run's container was left behind"
    # The retry automation puts the run of the event with retries back in the queue.
    wait_until(lambda: _state(retried_id) == "SCHEDULED", 60, "the run with retries rescheduled")

    async def forget() -> None:  # no later test's worker should run it
        async with get_client() as client:
            await client.delete_flow_run(retried_id)

    asyncio.run(forget())
    quick_logs = logs_of(quick_id, timeout=10)  # fails unless "Finished in state" arrived
    assert "[stdout] quick" in quick_logs
    long_logs = logs_of(long_id, finished=False)
    assert "[stdout] started" in long_logs


def test_a_run_taken_ahead_of_its_time_can_be_cancelled_or_handed_back_before_it(
    prefect_api, docker_client, tmp_path
):
    """A worker polling every 15 s takes runs up to 30 s ahead and holds them until their
    time: one cancelled meanwhile ends at once without starting; the others, when the
    worker stops, go back to Scheduled at their time, and the next worker runs them then."""
    from datetime import datetime, timedelta, timezone

    from prefect.states import Cancelling, Scheduled

    from cronium_prefect.flows.worker import UNSTARTED_MESSAGE

    folder = write_events(
        tmp_path / "due",
        {
            "due.yaml": """\
            name: wp-due
            type: bash
            status: active
            pool: wp-due
            overlap: allow
            script: date +%s.%N
            """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    log = tmp_path / "worker.log"
    worker = _start_worker(log, CRONIUM_WORKER_POLL_SECONDS="15", CRONIUM_WORK_POOL="wp-due")

    async def read(ids: list) -> list:
        async with get_client() as client:
            return [await client.read_flow_run(i) for i in ids]

    try:
        wait_until(lambda: LISTENING in log.read_text(), 60, "the worker listening")

        async def schedule() -> list:
            due = datetime.now(timezone.utc) + timedelta(seconds=25)
            async with get_client() as client:
                deployment = await client.read_deployment_by_name("cronium-event/wp-due")
                return [
                    await client.create_flow_run_from_deployment(
                        deployment.id, state=Scheduled(scheduled_time=due)
                    )
                    for _ in range(3)
                ]

        created = asyncio.run(schedule())
        ids = [r.id for r in created]
        due = created[0].state.state_details.scheduled_time
        wait_until(
            lambda: all(r.state.is_pending() for r in asyncio.run(read(ids))),
            10,
            "the runs taken ahead of their time",
        )

        async def cancel() -> None:
            async with get_client() as client:
                await client.set_flow_run_state(ids[0], Cancelling(), force=True)

        asyncio.run(cancel())
        wait_until(
            lambda: asyncio.run(read(ids[:1]))[0].state.is_cancelled(), 8, "the cancel, at once"
        )
    finally:
        stop(worker)
    cancelled, *handed_back = asyncio.run(read(ids))

    async def history(run_id) -> list:
        async with get_client() as client:
            return [(s.name, s.timestamp) for s in await client.read_flow_run_states(run_id)]

    states = asyncio.run(history(ids[0]))
    assert [name for name, _ in states] == ["Scheduled", "Pending", "Cancelling", "Cancelled"], (
        states  # it never ran
    )
    assert states[-1][1] < due, (states, due)  # cancelled at once, not at its time
    assert cancelled.state.is_cancelled()
    for run in handed_back:
        assert run.state.is_scheduled() and run.state.message == UNSTARTED_MESSAGE, run.state
        assert run.state.state_details.scheduled_time == due
    worker = _start_worker(log, CRONIUM_WORK_POOL="wp-due")
    try:
        wait_until(
            lambda: all(r.state.is_final() for r in asyncio.run(read(ids[1:]))),
            90,
            "the next worker to run them",
        )
    finally:
        stop(worker)
    for run in asyncio.run(read(ids[1:])):
        assert run.state.is_completed() and run.start_time >= due, (run.state, run.start_time)

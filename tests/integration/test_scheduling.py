"""Overlap and priority, as Prefect's deployment concurrency and work-queue priorities."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings

from cronium_prefect.flows.resolve import run_now
from cronium_prefect.flows.worker import LISTENING
from tests.processes import stop, wait_until

from .test_apply import cronium, write_events

EVENTS = ("sc-low", "sc-critical")


async def _runs(*names: str) -> list:
    async with get_client() as client:
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=list(names))),
            limit=200,
        )


def test_overlap_skip_never_runs_two_at_once(worker, tmp_path):  # noqa: F811
    folder = write_events(
        tmp_path / "ov",
        {
            "long.yaml": """\
        name: sc-long
        type: bash
        script: sleep 6
        status: active
        schedule: {interval: 2s}
    """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    deadline = time.monotonic() + 120
    while len([r for r in asyncio.run(_runs("sc-long")) if r.state.is_completed()]) < 2:
        assert time.monotonic() < deadline, "the long event never completed twice"
        time.sleep(1)
    assert cronium("pause", "sc-long").returncode == 0
    finished = sorted(
        (r for r in asyncio.run(_runs("sc-long")) if r.state.is_completed()),
        key=lambda r: r.start_time,
    )
    for earlier, later in zip(finished, finished[1:], strict=False):
        assert later.start_time >= earlier.end_time, "two runs of sc-long overlapped"
    skipped = [r for r in asyncio.run(_runs("sc-long")) if r.state.is_cancelled()]
    assert skipped, "scheduled runs during a running one should have been skipped"


def test_critical_backlog_drains_before_an_older_low_backlog(prefect_api, docker_client, tmp_path):
    critical_backlog_drains_first(prefect_api, tmp_path)


def critical_backlog_drains_first(api: str, tmp_path) -> None:
    """Three low runs, then three critical ones, drained by a one-slot worker: the
    critical ones run first (test_scaled_server.py runs it on the scaled server too)."""
    env = {**os.environ, "CRONIUM_WORK_POOL": "prio-test", "PREFECT_API_URL": api}
    folder = write_events(
        tmp_path / "pr",
        {
            "p.yaml": """\
        name: sc-low
        type: bash
        script: echo low
        priority: low
        overlap: allow
        ---
        name: sc-critical
        type: bash
        script: echo critical
        priority: critical
        overlap: allow
    """
        },
    )
    cli = [sys.executable, "-m", "cronium_prefect.cli"]
    assert subprocess.run([*cli, "apply", str(folder)], env=env).returncode == 0

    async def trigger(names: list[str]) -> None:
        async with get_client() as client:
            for name in names:  # `cronium trigger NAME`, without a process each
                await run_now(client, name)
                await asyncio.sleep(0.2)

    with temporary_settings({PREFECT_API_URL: api}):
        asyncio.run(trigger(["sc-low"] * 3 + ["sc-critical"] * 3))  # the low backlog is older
    one_slot = subprocess.Popen(
        [*cli, "worker", "--limit", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        with temporary_settings({PREFECT_API_URL: api}):
            while len([r for r in asyncio.run(_runs(*EVENTS)) if r.state.is_completed()]) < 6:
                assert time.monotonic() < deadline, "the backlog did not drain"
                time.sleep(1)
            runs = asyncio.run(_runs(*EVENTS))
    finally:
        one_slot.terminate()
        one_slot.wait(timeout=30)
    order = [r.name for r in sorted(runs, key=lambda r: r.start_time)]
    names = {
        r.name: ("critical" if r.parameters["event"]["name"] == "sc-critical" else "low")
        for r in runs
    }
    assert [names[n] for n in order] == ["critical"] * 3 + ["low"] * 3


def test_a_scheduled_run_never_starts_before_its_time(prefect_api, docker_client, tmp_path):
    """A worker takes runs ahead of their time (its prefetch: twice its poll interval) and
    used to start them at once. Here a worker polling every 5 s takes runs due 6, 7 and 8 s
    from now at once (woken by their creation): each is Pending well before its time, and
    the run and its script start at or after it (the container shares this clock)."""
    from datetime import datetime, timedelta, timezone

    from prefect.states import Scheduled

    from .helpers import script_lines

    env = {**os.environ, "CRONIUM_WORK_POOL": "sc-due", "CRONIUM_WORKER_POLL_SECONDS": "5"}
    folder = write_events(
        tmp_path / "due",
        {
            "due.yaml": """\
        name: sc-due
        type: bash
        status: active
        pool: sc-due
        overlap: allow
        script: date +%s.%N
    """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "worker"],
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )

    async def schedule() -> list:
        now = datetime.now(timezone.utc)
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("cronium-event/sc-due")
            return [
                await client.create_flow_run_from_deployment(
                    deployment.id, state=Scheduled(scheduled_time=now + timedelta(seconds=s))
                )
                for s in (6, 7, 8)
            ]

    async def read(ids: list) -> list:
        async with get_client() as client:
            return [
                (await client.read_flow_run(i), await client.read_flow_run_states(i)) for i in ids
            ]

    try:
        wait_until(lambda: LISTENING in log.read_text(), 60, "the worker listening")
        created = asyncio.run(schedule())
        ids = [r.id for r in created]
        wait_until(
            lambda: all(run.state.is_final() for run, _ in asyncio.run(read(ids))),
            120,
            "the runs to end",
        )
    finally:
        stop(worker)
    for (run, states), made in zip(asyncio.run(read(ids)), created, strict=True):
        due = made.state.state_details.scheduled_time
        assert run.state.is_completed(), run.state
        taken = next(s.timestamp for s in states if s.name == "Pending")
        assert taken < due - timedelta(seconds=2), (taken, due)  # taken well ahead
        assert run.start_time >= due, (run.start_time, due)
        (line,) = script_lines(str(run.id))
        printed = datetime.fromtimestamp(float(line.split()[-1]), timezone.utc)
        assert printed >= due, (printed, due)

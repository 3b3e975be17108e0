"""run_event actions through the worker: data flows along a chain A -> B -> C, the runs are
linked as subflows, `delay` schedules the target, and a chain deeper than the limit stops
with an error naming it."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from cronium_prefect.flows.report import read_record

from .test_apply import cronium, write_events

WORKER_ENV = {"CRONIUM_CHAIN_LIMIT": "3"}


def _runs(name: str) -> list:
    async def read():
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
            )

    return asyncio.run(read())


def _finished_run(name: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while True:
        done = [r for r in _runs(name) if r.state and r.state.is_final()]
        if done:
            return done[0]
        assert time.monotonic() < deadline, f"{name} never ran"
        time.sleep(1)


def _record(run) -> dict:
    async def read():
        async with get_client() as client:
            return (await read_record(client, run.id)).to_json()

    return asyncio.run(read())


def test_a_chain_passes_output_along_as_linked_subflows(worker, tmp_path):
    folder = write_events(
        tmp_path / "c",
        {
            "chain.yaml": """\
            name: ch-a
            type: python
            script: |
              import cronium
              cronium.output({"n": 1, "by": "a"})
            actions:
              - {on: success, run_event: ch-b}
            ---
            name: ch-b
            type: node
            script: |
              const cronium = require("cronium");
              (async () => {
                const got = await cronium.input();
                await cronium.output({n: got.n + 1, saw: got});
              })();
            actions:
              - {on: success, run_event: ch-c}
            ---
            name: ch-c
            type: bash
            script: cronium_output "$(cronium_input)"
            """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    first = cronium("trigger", "ch-a", "--wait", "--json")
    assert first.returncode == 0, first.stderr
    a_run_id = json.loads(first.stdout)["run_id"]
    c_run = _finished_run("ch-c")
    assert _record(c_run)["output"] == {"n": 2, "saw": {"n": 1, "by": "a"}}
    assert c_run.parameters["chain"] == ["ch-a", "ch-b"]

    # Linked: B's run hangs off a task run of A's, C's off one of B's.
    (b_run,) = _runs("ch-b")

    async def parent_flow_run(run) -> str:
        async with get_client() as client:
            return str((await client.read_task_run(run.parent_task_run_id)).flow_run_id)

    assert b_run.parent_task_run_id is not None and c_run.parent_task_run_id is not None
    assert asyncio.run(parent_flow_run(b_run)) == a_run_id
    assert asyncio.run(parent_flow_run(c_run)) == str(b_run.id)


def test_delay_schedules_the_target_instead_of_waiting(worker, tmp_path):
    folder = write_events(
        tmp_path / "d",
        {
            "delay.yaml": """\
            name: ch-later-src
            type: bash
            script: echo now
            actions:
              - {on: success, run_event: ch-later-dst, delay: 5s}
            ---
            name: ch-later-dst
            type: bash
            script: echo later
            """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    first = cronium("trigger", "ch-later-src", "--wait", "--json")
    assert first.returncode == 0, first.stderr
    source = json.loads(first.stdout)
    # The source run is over (its worker slot free) before the target even starts.
    assert source["duration_s"] < 5
    target = _finished_run("ch-later-dst")
    assert target.state.is_completed()
    expected = target.expected_start_time
    source_end = datetime.fromisoformat(_record(_runs("ch-later-src")[0])["end_time"])
    gap = (expected - source_end).total_seconds()
    assert 4 <= gap <= 7, f"target scheduled {gap:.1f} s after the source ended"
    # Workers may start a run up to about a second early (Prefect's own tolerance).
    assert (target.start_time - expected).total_seconds() > -1.5


def test_a_chain_deeper_than_the_limit_stops_with_the_chain_named(worker, tmp_path):
    links = ["ch-d1", "ch-d2", "ch-d3", "ch-d4", "ch-d5"]
    documents = [
        f"name: {name}\ntype: bash\nscript: echo {name}\n"
        + (f"actions:\n  - {{on: success, run_event: {after}}}\n" if after else "")
        for name, after in zip(links, [*links[1:], None], strict=True)
    ]
    folder = write_events(tmp_path / "l", {"deep.yaml": "---\n".join(documents)})
    assert cronium("apply", str(folder)).returncode == 0
    assert cronium("trigger", "ch-d1", "--wait").returncode == 0
    d4 = _finished_run("ch-d4")
    assert d4.state.is_completed(), "a failing action must not fail the run"
    logs = cronium("logs", str(d4.id))
    assert (
        "run_event chain ch-d1 -> ch-d2 -> ch-d3 -> ch-d4 -> ch-d5 is longer than "
        "CRONIUM_CHAIN_LIMIT (3)" in logs.stdout
    ), logs.stdout
    # ch-d4's actions ran before its run ended: a run of ch-d5 would exist by now.
    assert _runs("ch-d5") == []


def test_apply_refuses_a_static_cycle(prefect_api, tmp_path):
    folder = write_events(
        tmp_path / "y",
        {
            "cycle.yaml": """\
            name: ch-x
            type: bash
            script: "true"
            actions: [{on: always, run_event: ch-y}]
            ---
            name: ch-y
            type: bash
            script: "true"
            actions: [{on: always, run_event: ch-x}]
            """
        },
    )
    refused = cronium("apply", str(folder))
    assert refused.returncode == 2
    assert "run_event chain forms a cycle: ch-x -> ch-y -> ch-x" in refused.stderr

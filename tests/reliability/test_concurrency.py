"""Many at once: 50 events of all four priorities triggered together all complete, each
exactly once; 20 runs writing the same variable leave one of their values, whole."""

from __future__ import annotations

import asyncio
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

from cronium_prefect.flows.resolve import deployment_name
from cronium_prefect.variables import get_variable_store
from tests.cli import cronium
from tests.integration.helpers import logs_of

from .report import report

PRIORITIES = ["critical", "high", "normal", "low"]
EVENTS = 50


def _apply(folder, events: dict[str, str]) -> None:
    folder.mkdir()
    for name, text in events.items():
        (folder / f"{name}.yaml").write_text(text)
    done = cronium("apply", str(folder))
    assert done.returncode == 0, done.stderr


async def _trigger_all(names: list[str], inputs: list) -> list[str]:
    async with get_client() as client:
        deployments = await asyncio.gather(
            *(client.read_deployment_by_name(deployment_name(n)) for n in names)
        )
        # Prefect on SQLite answers 503 (database locked) to ~50 simultaneous writes: queue
        # them 8 at a time; all are waiting before the worker has finished the first few.
        gate = asyncio.Semaphore(8)

        async def create(deployment, value):
            async with gate:
                return await client.create_flow_run_from_deployment(
                    deployment.id, parameters={"input": value}
                )

        runs = await asyncio.gather(
            *(create(d, v) for d, v in zip(deployments, inputs, strict=True))
        )
        return [str(r.id) for r in runs]


async def _final(run_ids: list[str], timeout: float) -> list:
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            runs = await asyncio.gather(*(client.read_flow_run(i) for i in run_ids))
            if all(r.state and r.state.is_final() for r in runs):
                return runs
            assert time.monotonic() < deadline, [
                r.state.name for r in runs if not r.state.is_final()
            ]
            await asyncio.sleep(1)


async def _runs_of(names: list[str]) -> dict[str, int]:
    async with get_client() as client:
        counts = {}
        for name in names:
            deployment = await client.read_deployment_by_name(deployment_name(name))
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])
                )
            )
            counts[name] = len(runs)
        return counts


@pytest.mark.timeout(600)
def test_50_events_with_priorities_triggered_at_once_all_run_exactly_once(worker, tmp_path):
    names = [f"rel-many-{i:02d}" for i in range(EVENTS)]
    _apply(
        tmp_path / "many",
        {
            name: f"name: {name}\ntype: bash\nstatus: active\npriority: {PRIORITIES[i % 4]}\n"
            f'script: echo ran {name}; cronium_output "$(cronium_input)"\n'
            for i, name in enumerate(names)
        },
    )
    started = time.monotonic()
    run_ids = asyncio.run(_trigger_all(names, list(range(EVENTS))))
    runs = asyncio.run(_final(run_ids, timeout=420))
    seconds = time.monotonic() - started
    per_event = asyncio.run(_runs_of(names))
    executions = [
        sum(line == f"[stdout] ran {name}" for line in logs_of(run_id))
        for name, run_id in zip(names, run_ids, strict=True)
    ]
    counts = {
        "triggered": EVENTS,
        "completed": sum(r.state.name == "Completed" for r in runs),
        "flow_runs_per_event": sorted(set(per_event.values())),
        "script_executions_per_run": sorted(set(executions)),
        "seconds": round(seconds, 1),
    }
    report("concurrency_50_priorities", counts)
    assert counts["completed"] == EVENTS, [r.state.name for r in runs]
    assert counts["flow_runs_per_event"] == [1] and counts["script_executions_per_run"] == [1]


def test_20_runs_writing_one_variable_leave_one_whole_value(stack):
    """In-process runs, all at once: the write that lands last wins, whole."""
    from cronium_prefect import parse_text
    from cronium_prefect.flows import cronium_event

    (event,) = parse_text(
        "name: rel-same\ntype: python\nscript: |\n  import cronium\n"
        "  cronium.setVariable('REL_SAME', {'writer': cronium.input(), 'pad': 'x' * 5000})\n"
    )

    async def all_at_once():
        return await asyncio.gather(
            *(cronium_event(event=event, input=i, return_state=True) for i in range(20))
        )

    states = asyncio.run(all_at_once())
    value = get_variable_store().get("REL_SAME").value
    report(
        "concurrency_same_key",
        {
            "writers": 20,
            "completed": sum(s.name == "Completed" for s in states),
            "final_writer": value.get("writer"),
        },
    )
    assert all(s.name == "Completed" for s in states), [s.message for s in states]
    assert value["writer"] in range(20) and value["pad"] == "x" * 5000

"""Many at once: 24 events (50 at full size) of all four priorities triggered together all complete, each
exactly once, critical ones first; 20 runs writing the same variable leave one of their
values, whole."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from statistics import mean
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.settings import PREFECT_API_URL, temporary_settings

from cronium_prefect.blocks.variable_store import get_variable_store
from cronium_prefect.executors.docker import RUN_LABEL
from cronium_prefect.flows.report import read_record
from cronium_prefect.flows.resolve import deployment_name
from tests.cli import cronium
from tests.integration.helpers import logs_of
from tests.processes import settles, stop
from tests.sizes import size

from .report import report

PRIORITIES = ["critical", "high", "normal", "low"]
EVENTS = size(ci=24, full=50)  # six or more of each priority


class ContainerStarts:
    """Counts the daemon's container starts per run as they happen. Asking afterwards
    would not do: dockerd keeps only its last 256 events, ~7 per container."""

    def __init__(self, client):
        self.counts: Counter = Counter()
        self.stream = client.events(
            decode=True, filters={"type": "container", "event": "start", "label": RUN_LABEL}
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream closed under it
            for event in self.stream:
                self.counts[event["Actor"]["Attributes"].get(RUN_LABEL)] += 1

    def close(self, run_ids: list[str]) -> Counter:
        """The counts, once every run's start has arrived (or 10 s have passed)."""
        settles(lambda: all(self.counts[i] for i in run_ids), 10)
        self.stream.close()
        self.thread.join(10)
        return self.counts


async def _trigger_all(names: list[str]) -> list[str]:
    async with get_client() as client:
        deployments = [await client.read_deployment_by_name(deployment_name(n)) for n in names]
        runs = await asyncio.gather(
            *(
                client.create_flow_run_from_deployment(d.id, parameters={"input": i})
                for i, d in enumerate(deployments)
            )
        )
        return [str(r.id) for r in runs]


async def _until_final(run_ids: list[str], timeout: float) -> list:
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
            )
            if len(runs) == len(run_ids) and all(r.state.is_final() for r in runs):
                return runs
            assert time.monotonic() < deadline, [r.state.name for r in runs]
            await asyncio.sleep(1)


async def _outputs(run_ids: list[str]) -> list:
    async with get_client() as client:
        return [(await read_record(client, UUID(i))).output for i in run_ids]


@pytest.mark.timeout(600)
def test_events_with_priorities_triggered_at_once_all_run_once_critical_first(
    postgres_api, docker_client, tmp_path
):
    env = {**os.environ, "PREFECT_API_URL": postgres_api}
    names = [f"rel-many-{i:02d}" for i in range(EVENTS)]
    folder = tmp_path / "many"
    folder.mkdir()
    for i, name in enumerate(names):
        (folder / f"{name}.yaml").write_text(
            f"name: {name}\ntype: bash\npriority: {PRIORITIES[i % 4]}\n"
            f'script: echo ran {name}; cronium_output "$(cronium_input)"\n'
        )
    applied = cronium("apply", str(folder), env=env)
    assert applied.returncode == 0, applied.stderr
    log_path = tmp_path / "worker.log"
    starts = ContainerStarts(docker_client)
    with temporary_settings({PREFECT_API_URL: postgres_api}):
        run_ids = asyncio.run(_trigger_all(names))  # all wait before a worker exists
        started = time.monotonic()
        worker = subprocess.Popen(
            [sys.executable, "-m", "cronium_prefect.cli", "worker", "--name", "rel-many"],
            stdout=open(log_path, "w"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            runs = asyncio.run(_until_final(run_ids, timeout=420))
        finally:
            stop(worker)
        seconds = time.monotonic() - started
        by_id = {str(r.id): r for r in runs}
        # Executions are counted by the daemon's own container starts, apart from the
        # logs: a line logged twice is a logging defect, a second start runs the script twice.
        counted = starts.close(run_ids)
        executions = [counted[run_id] for run_id in run_ids]
        lines_logged = [
            sum(line == f"[stdout] ran {name}" for line in logs_of(run_id))
            for name, run_id in zip(names, run_ids, strict=True)
        ]
        outputs = asyncio.run(_outputs(run_ids))
    order = sorted(run_ids, key=lambda i: by_id[i].start_time)
    rank_by_priority = {
        priority: mean(order.index(run_ids[i]) for i in range(EVENTS) if i % 4 == p)
        for p, priority in enumerate(PRIORITIES)
    }
    counts = {
        "triggered": EVENTS,
        "completed": sum(r.state.name == "Completed" for r in runs),
        "script_executions_per_run": sorted(set(executions)),
        "ran_line_logged_per_run": sorted(set(lines_logged)),
        "outputs_match_inputs": outputs == list(range(EVENTS)),
        "mean_start_rank_by_priority": {k: round(v, 1) for k, v in rank_by_priority.items()},
        "seconds": round(seconds, 1),
    }
    report("concurrency_50_priorities", counts)
    assert counts["completed"] == EVENTS, [r.state.name for r in runs]
    assert counts["script_executions_per_run"] == [1], counts
    assert counts["ran_line_logged_per_run"] == [1], counts
    assert counts["outputs_match_inputs"]
    ranks = [rank_by_priority[p] for p in PRIORITIES]
    assert ranks == sorted(ranks), f"runs did not start by priority: {rank_by_priority}"


def test_20_runs_writing_one_variable_leave_one_whole_value(stack):
    """In-process runs, all at once: the write that lands last wins, whole."""
    from cronium_prefect import parse_text
    from tests.integration.helpers import runs_at_once

    (event,) = parse_text(
        "name: rel-same\ntype: python\nscript: |\n  import cronium\n"
        "  cronium.setVariable('REL_SAME', {'writer': cronium.input(), 'pad': 'x' * 5000})\n"
    )
    states = asyncio.run(runs_at_once([(event, i) for i in range(20)]))
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

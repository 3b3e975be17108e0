"""Workflows: a linear workflow of N steps against the same N events run one after another
by hand, and a for_each of M items (max_parallel 8) against M runs at once.

    python bench/workflows.py [--steps 50] [--items 100] [--sqlite] [--quick]

Linear: N trivial bash events (Docker), and a workflow whose step i runs event i after step
i-1. Ours: from the workflow run's creation to its end (end_time on the server). Baseline,
in the same run just before: the same N events, each run created and awaited (state read
every 0.2 s, as `cronium trigger --wait` and the workflow both do) before the next, from
the first creation to the last end. Goal: ours <= 1.2x the baseline.

Fan-out: a workflow of one for_each step over M items, max_parallel 8, on a trivial event.
Ours: the workflow run's creation to its end. Baseline: burst's figure in the same run: M
runs of that event created at once, drained by the same worker (--limit 8), first creation
to last end. No goal is set; the ratio says what the workflow costs on top.

Prefect runs on a throwaway PostgreSQL cluster (--sqlite: on SQLite, as `cronium up`).
--quick: 10 steps, 20 items.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import metric, parse_with_image, prefect_api, stop, write_result  # noqa: E402
from harness import (  # noqa: E402
    apply,
    create_runs,
    start_worker,
    wait_final,
    wait_for_workers,
)

LINEAR_GOAL = 1.2
LIMIT = 8
POLL = 0.2  # how often `cronium trigger --wait` and a workflow look at a run


def definitions(steps: int, items: int) -> str:
    events = [
        f"name: bench-wf-{i:03d}\ntype: bash\nstatus: active\nscript: echo {i}\n"
        for i in range(steps)
    ]
    events.append(
        "name: bench-wf-item\ntype: bash\nstatus: active\noverlap: allow\nscript: echo hi\n"
    )
    linear = ["kind: workflow\nname: bench-wf-linear\nstatus: active\nsteps:"]
    for i in range(steps):
        needs = f", needs: [s{i - 1:03d}]" if i else ""
        linear.append(f"  - {{name: s{i:03d}, event: bench-wf-{i:03d}{needs}}}")
    fan = (
        "kind: workflow\nname: bench-wf-fan\nstatus: active\nmax_parallel: 8\nsteps:\n"
        f"  - {{name: each, event: bench-wf-item, for_each: '{{{{ range({items}) | list }}}}', "
        "max_parallel: 8}\n"
    )
    return "---\n".join([*events, "\n".join(linear) + "\n", fan])


async def one_after_another(names: list[str]) -> tuple[float, list[Any]]:
    """Each event's run created and awaited before the next: first creation to last end,
    and the runs."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployments = [await client.read_deployment_by_name(f"cronium-event/{n}") for n in names]
        began, runs = time.time(), []
        for deployment in deployments:
            run = await client.create_flow_run_from_deployment(deployment.id, parameters={})
            while not (run.state and run.state.is_final()):
                await asyncio.sleep(POLL)
                run = await client.read_flow_run(run.id)
            if run.state.type.value != "COMPLETED":
                raise RuntimeError(f"{deployment.name}: {run.state.name}")
            runs.append(run)
    return runs[-1].end_time.timestamp() - began, runs


async def step_runs(workflow_run_id: str) -> list[Any]:
    """The workflow run's step runs (its subflow runs), in creation order."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        return await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(workflow_run_id)])
            ),
            sort=FlowRunSort.START_TIME_ASC,
        )


def edges(workflow: Any, steps: list[Any]) -> dict[str, float]:
    """What the workflow run adds at either end, in ms: its creation to its first step's
    creation, and its last step's end to its own end."""
    first = min(steps, key=lambda r: r.created)
    last = max(steps, key=lambda r: r.end_time)
    return {
        "to_first_step_ms": round(1000 * (first.created - workflow.created).total_seconds()),
        "after_last_step_ms": round(1000 * (workflow.end_time - last.end_time).total_seconds()),
    }


def timeline(runs: list[Any]) -> dict[str, float]:
    """Medians, in ms, of each run's wait (creation to start), its run (start to end), and
    the gap between one run's end and the next one's creation: where a chain's time goes."""
    runs = sorted(runs, key=lambda r: r.created)
    waits = [(r.start_time - r.created).total_seconds() for r in runs]
    life = [(r.end_time - r.start_time).total_seconds() for r in runs]
    gaps = [(b.created - a.end_time).total_seconds() for a, b in itertools.pairwise(runs)]
    return {
        "wait_ms": round(1000 * statistics.median(waits)),
        "run_ms": round(1000 * statistics.median(life)),
        "gap_ms": round(1000 * statistics.median(gaps)) if gaps else 0,
    }


def workflow_run(name: str, timeout: float) -> tuple[float, Any]:
    """Trigger to end, and the run."""
    began, ids = asyncio.run(create_runs(f"cronium-workflow/{name}", 1, None))
    (run,) = asyncio.run(wait_final(ids, timeout, every=POLL))
    if run.state.type.value != "COMPLETED":
        raise RuntimeError(f"{name}: {run.state.name}: {run.state.message}")
    return run.end_time.timestamp() - began, run


def all_at_once(name: str, count: int, timeout: float) -> tuple[float, list[Any]]:
    """First creation to last end, and the runs."""
    began, ids = asyncio.run(create_runs(f"cronium-event/{name}", count, None))
    finished = asyncio.run(wait_final(ids, timeout, every=POLL))
    states = {r.state.type.value for r in finished}
    if states != {"COMPLETED"}:
        raise RuntimeError(f"not every run completed: {sorted(states)}")
    return max(r.end_time.timestamp() for r in finished) - began, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--sqlite", action="store_true", help="Prefect on SQLite")
    parser.add_argument("--quick", action="store_true", help="10 steps, 20 items")
    args = parse_with_image(parser)
    if args.quick:
        args.steps, args.items = 10, 20
    database = "sqlite" if args.sqlite else "postgresql"
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-workflows-"))
    (work / "defs").mkdir()
    (work / "defs" / "all.yaml").write_text(definitions(args.steps, args.items))
    with prefect_api(postgres=not args.sqlite):
        apply(work / "defs")
        log = open(work / "worker.log", "w")
        worker = start_worker("--limit", str(LIMIT), log=log)
        try:
            asyncio.run(wait_for_workers("cronium", 1))
            all_at_once("bench-wf-item", 1, 120)  # warm-up: image, loops, connections
            names = [f"bench-wf-{i:03d}" for i in range(args.steps)]
            by_hand, hand_runs = asyncio.run(one_after_another(names))
            linear, linear_run = workflow_run("bench-wf-linear", 60 + 20 * args.steps)
            steps = asyncio.run(step_runs(str(linear_run.id)))
            burst, burst_runs = all_at_once("bench-wf-item", args.items, 60 + 10 * args.items)
            fan, fan_run = workflow_run("bench-wf-fan", 60 + 10 * args.items)
            items = asyncio.run(step_runs(str(fan_run.id)))
        finally:
            stop(worker)
            log.close()
    rows = [
        metric(
            f"{args.steps}-step linear workflow, trigger -> end ({database})",
            linear,
            "s",
            f"<= {LINEAR_GOAL}x",
            linear / by_hand <= LINEAR_GOAL,
            baseline=by_hand,
            baseline_name=f"the same {args.steps} events, each run awaited before the next",
            ratio=linear / by_hand,
            steps=timeline(steps),
            workflow_edges=edges(linear_run, steps),
            by_hand=timeline(hand_runs),
        ),
        metric(
            f"for_each over {args.items} items, max_parallel {LIMIT}, trigger -> end ({database})",
            fan,
            "s",
            "report",
            None,
            baseline=burst,
            baseline_name=f"{args.items} runs of the event at once, worker --limit {LIMIT}",
            ratio=fan / burst,
            items=timeline(items),
            burst=timeline(burst_runs),
        ),
    ]
    name = "workflows_sqlite" if args.sqlite else "workflows"
    write_result(name, {"steps": args.steps, "items": args.items, "database": database}, rows)
    for row in rows:
        print(
            f"{row['metric']}: ours {row['ours']:.2f} s, baseline {row['baseline']:.2f} s "
            f"({row['baseline_name']}), ratio {row['ratio']:.2f}x, goal {row['goal']}"
        )
    print(f"per run, median ms: steps {timeline(steps)}, by hand {timeline(hand_runs)}")
    print(f"the workflow run's own: {edges(linear_run, steps)}")
    print(f"for_each items, median ms: {timeline(items)}, burst {timeline(burst_runs)}")


if __name__ == "__main__":
    main()

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
import sys
import tempfile
import time
from pathlib import Path

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


async def one_after_another(names: list[str]) -> float:
    """Each event's run created and awaited before the next: first creation to last end."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployments = [await client.read_deployment_by_name(f"cronium-event/{n}") for n in names]
        began, last_end = time.time(), 0.0
        for deployment in deployments:
            run = await client.create_flow_run_from_deployment(deployment.id, parameters={})
            while not (run.state and run.state.is_final()):
                await asyncio.sleep(POLL)
                run = await client.read_flow_run(run.id)
            if run.state.type.value != "COMPLETED":
                raise RuntimeError(f"{deployment.name}: {run.state.name}")
            last_end = run.end_time.timestamp()
    return last_end - began


def workflow_run(name: str, timeout: float) -> float:
    began, ids = asyncio.run(create_runs(f"cronium-workflow/{name}", 1, None))
    (run,) = asyncio.run(wait_final(ids, timeout, every=POLL))
    if run.state.type.value != "COMPLETED":
        raise RuntimeError(f"{name}: {run.state.name}: {run.state.message}")
    return run.end_time.timestamp() - began


def all_at_once(name: str, count: int, timeout: float) -> float:
    began, ids = asyncio.run(create_runs(f"cronium-event/{name}", count, None))
    finished = asyncio.run(wait_final(ids, timeout, every=POLL))
    states = {r.state.type.value for r in finished}
    if states != {"COMPLETED"}:
        raise RuntimeError(f"not every run completed: {sorted(states)}")
    return max(r.end_time.timestamp() for r in finished) - began


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
            by_hand = asyncio.run(one_after_another(names))
            linear = workflow_run("bench-wf-linear", 60 + 20 * args.steps)
            burst = all_at_once("bench-wf-item", args.items, 60 + 10 * args.items)
            fan = workflow_run("bench-wf-fan", 60 + 10 * args.items)
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
        ),
    ]
    name = "workflows_sqlite" if args.sqlite else "workflows"
    write_result(name, {"steps": args.steps, "items": args.items, "database": database}, rows)
    for row in rows:
        print(
            f"{row['metric']}: ours {row['ours']:.2f} s, baseline {row['baseline']:.2f} s "
            f"({row['baseline_name']}), ratio {row['ratio']:.2f}x, goal {row['goal']}"
        )


if __name__ == "__main__":
    main()

"""Worker memory: `cronium worker` vs Prefect's process worker, N runs executing at once.

    python bench/worker_rss.py [--runs 20] [--sleep 30] [--quick]

The same flow runs for both: N runs of one bash event (`sleep S` in a container), created
at once, on a Prefect server on a throwaway PostgreSQL cluster.
- ours: `cronium worker --limit N` (runs execute inside its process, in threads);
- Prefect's: `prefect worker start --type process --limit N` on a process-type pool,
  with a deployment of the same flow, entrypoint and parameters; it starts a Python
  subprocess per flow run.
Each worker's whole process tree (the worker and its descendants) is sampled every 0.25 s
from /proc: RSS summed (shared pages counted once per process, as `ps` does) and PSS
(shared pages split between the processes that share them). Reported: idle (before the
runs), peak, and steady (the median while all N runs were Running, from the runs' own
start and end times; else over the whole burst). Goal: ours <= 300 MB (peak RSS).
--quick: 10 runs of `sleep 10`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import metric, parse_with_image, prefect_api, stop, write_result  # noqa: E402
from harness import (  # noqa: E402
    CLI,
    apply,
    cli_env,
    create_runs,
    descendants,
    pss_bytes,
    rss_bytes,
    start_worker,
    wait_final,
    wait_for_workers,
)

GOAL_MB = 300
MB = 1024 * 1024
PROCESS_POOL = "bench-process"


class Sampler(threading.Thread):
    """RSS and PSS of a process tree, every 0.25 s, with the wall-clock time."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples = pid, []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.25):
            tree = descendants(self.pid)
            self.samples.append((time.time(), rss_bytes(tree), pss_bytes(tree), len(tree)))


def tree_now(pid: int) -> tuple[float, float]:
    tree = descendants(pid)
    return rss_bytes(tree) / MB, pss_bytes(tree) / MB


def burst(worker: subprocess.Popen, deployment: str, runs: int, timeout: float) -> dict:
    idle_rss, idle_pss = tree_now(worker.pid)
    sampler = Sampler(worker.pid)
    sampler.start()
    _, ids = asyncio.run(create_runs(deployment, runs, None))
    finished = asyncio.run(wait_final(ids, timeout))
    time.sleep(1)
    sampler.stopped.set()
    sampler.join()
    states = sorted({r.state.type.value for r in finished})
    if states != ["COMPLETED"]:
        raise RuntimeError(f"{deployment}: not every run completed: {states}")
    window = (
        max(r.start_time.timestamp() for r in finished),
        min(r.end_time.timestamp() for r in finished),
    )
    inside = [s for s in sampler.samples if window[0] <= s[0] <= window[1]]
    steady = inside or sampler.samples
    after_rss, after_pss = tree_now(worker.pid)
    return {
        "idle_rss_mb": round(idle_rss, 1),
        "idle_pss_mb": round(idle_pss, 1),
        "peak_rss_mb": round(max(s[1] for s in sampler.samples) / MB, 1),
        "peak_pss_mb": round(max(s[2] for s in sampler.samples) / MB, 1),
        "steady_rss_mb": round(statistics.median(s[1] for s in steady) / MB, 1),
        "steady_pss_mb": round(statistics.median(s[2] for s in steady) / MB, 1),
        "steady_from": "all runs Running" if inside else "whole burst (never all at once)",
        "steady_seconds": round(max(0.0, window[1] - window[0]), 1),
        "peak_processes": max(s[3] for s in sampler.samples),
        "after_rss_mb": round(after_rss, 1),
        "samples": len(sampler.samples),
    }


async def deploy_to_process_pool(source: str) -> str:
    """The deployment `source` again, on a process-type pool: same flow and parameters."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        original = await client.read_deployment_by_name(source)
        try:
            await client.create_work_pool(WorkPoolCreate(name=PROCESS_POOL, type="process"))
        except ObjectAlreadyExists:
            pass
        await client.create_deployment(
            flow_id=original.flow_id,
            name="process-worker",
            entrypoint=original.entrypoint,
            parameters=original.parameters,
            work_pool_name=PROCESS_POOL,
        )
        flow = await client.read_flow(original.flow_id)
        return f"{flow.name}/process-worker"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sleep", type=int, default=30, help="seconds each script sleeps")
    parser.add_argument("--quick", action="store_true", help="10 runs of sleep 10")
    args = parse_with_image(parser)
    if args.quick:
        args.runs, args.sleep = 10, 10
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-rss-"))
    (work / "events").mkdir()
    (work / "events" / "rss.yaml").write_text(
        f"name: bench-rss\ntype: bash\noverlap: allow\nscript: sleep {args.sleep}\n"
    )
    timeout = 120 + 10 * args.runs + args.sleep
    figures: dict[str, dict] = {}
    with prefect_api(postgres=True):
        apply(work / "events")
        env = cli_env()
        with open(work / "cronium-worker.log", "w") as log:
            worker = start_worker("--limit", str(args.runs), env=env, log=log)
            try:
                asyncio.run(wait_for_workers("cronium", 1))
                asyncio.run(
                    wait_final(asyncio.run(create_runs("cronium-event/bench-rss", 1, None))[1], 120)
                )
                figures["cronium_worker"] = burst(
                    worker, "cronium-event/bench-rss", args.runs, timeout
                )
            finally:
                stop(worker)
        deployment = asyncio.run(deploy_to_process_pool("cronium-event/bench-rss"))
        with open(work / "process-worker.log", "w") as log:
            prefect_worker = subprocess.Popen(
                [CLI[0], "-m", "prefect", "worker", "start", "--pool", PROCESS_POOL,
                 "--type", "process", "--limit", str(args.runs)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                asyncio.run(wait_for_workers(PROCESS_POOL, 1))
                asyncio.run(wait_final(asyncio.run(create_runs(deployment, 1, None))[1], 180))
                figures["prefect_process_worker"] = burst(
                    prefect_worker, deployment, args.runs, timeout
                )
            finally:
                stop(prefect_worker)

    ours, theirs = figures["cronium_worker"], figures["prefect_process_worker"]
    rows = [
        metric(
            f"cronium worker tree, {args.runs} runs at once, {label}",
            ours[key],
            "MB",
            f"<= {GOAL_MB} MB" if key == "peak_rss_mb" else "-",
            ours[key] <= GOAL_MB if key == "peak_rss_mb" else None,
            baseline=theirs[key],
            baseline_name="prefect worker --type process (its tree: a subprocess per run)",
            ratio=ours[key] / theirs[key],
        )
        for label, key in (
            ("peak RSS", "peak_rss_mb"),
            ("steady RSS", "steady_rss_mb"),
            ("peak PSS", "peak_pss_mb"),
        )
    ]
    path = write_result(
        "worker_rss",
        {"runs": args.runs, "sleep_s": args.sleep, "database": "postgresql", **figures},
        rows,
    )
    print(f"\n{args.runs} runs of `sleep {args.sleep}` at once; MB of the worker's process tree")
    print(f"{'':26}{'idle':>7}{'peak RSS':>10}{'steady RSS':>12}{'peak PSS':>10}{'procs':>7}")
    for label, f in (("cronium worker", ours), ("prefect process worker", theirs)):
        print(
            f"{label:26}{f['idle_rss_mb']:>7.0f}{f['peak_rss_mb']:>10.0f}"
            f"{f['steady_rss_mb']:>12.0f}{f['peak_pss_mb']:>10.0f}{f['peak_processes']:>7}"
            f"   steady over {f['steady_seconds']} s ({f['steady_from']})"
        )
    verdict = "met" if ours["peak_rss_mb"] <= GOAL_MB else "NOT met"
    print(f"goal: ours <= {GOAL_MB} MB peak RSS: {verdict}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()

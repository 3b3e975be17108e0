"""What one worker poll costs the Prefect server with runs waiting: Prefect's default limit
(200 runs returned) against a limit of 8 (a worker's free slots). A profiling aid, not a
goal: not part of bench/run_all.

    python bench/poll_cost.py [--waiting 300] [--polls 30]

A fresh Prefect server on SQLite, one deployment on a process-type pool, N flow runs
scheduled now; then `POST /work_pools/p/get_scheduled_flow_runs` (what BaseWorker sends
every poll) timed in rounds, and the server's CPU seconds per poll read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import prefect_api  # noqa: E402
from harness import cpu_seconds, descendants, server_pid  # noqa: E402


async def measure(waiting: int, polls: int) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    @flow
    def nothing() -> None:
        pass

    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name="p", type="process"))
        flow_id = await client.create_flow(nothing)
        deployment = await client.create_deployment(flow_id=flow_id, name="d", work_pool_name="p")
        for _ in range(waiting):
            await client.create_flow_run_from_deployment(deployment)
        for label, body in [("default limit", {}), ("limit 8", {"limit": 8})] * 2:
            pids = descendants(server_pid())
            cpu, began = cpu_seconds(pids), time.perf_counter()
            for _ in range(polls):
                response = await client.request(
                    "POST", "/work_pools/p/get_scheduled_flow_runs", json=body
                )
            wall = (time.perf_counter() - began) / polls
            cpu = (cpu_seconds(pids) - cpu) / polls
            print(
                f"{label:14} {len(response.json()):4} runs returned: server CPU "
                f"{cpu * 1000:6.1f} ms, wall {wall * 1000:6.1f} ms per poll",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=300)
    parser.add_argument("--polls", type=int, default=30)
    args = parser.parse_args()
    with prefect_api() as url:
        os.environ["PREFECT_API_URL"] = url
        asyncio.run(measure(args.waiting, args.polls))


if __name__ == "__main__":
    main()

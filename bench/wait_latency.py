"""End-of-run latency: a run reaches its final state -> `cronium trigger --wait` returns.

    python bench/wait_latency.py [--runs 20] [--quick]

A trivial bash event (`echo`) runs on `cronium worker`, one run at a time. For each run,
`cronium trigger NAME --wait --json` is started and the time it returns is compared with
the run's end time as Prefect's API records it (the same clock: one machine). So the
figure is the follower's idle time after the run, not the CLI's start-up or the run.

Baseline, measured in the same run against the same worker and server: Prefect's own
`prefect deployment run cronium-event/NAME --watch`, which waits for the final state
(and shows no logs). Goal: `trigger --wait` p50 <= 0.5 s after the final state.
--quick: 8 runs each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import metric, parse_with_image, prefect_api, quantiles, stop, write_result  # noqa: E402
from harness import CLI, apply, cli_env, start_worker, wait_for_workers  # noqa: E402

P50_GOAL = 0.5
EVENT = "bench-wait"
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def _end_time(run_id: str) -> float:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        run = await client.read_flow_run(run_id)
    if run.end_time is None:
        raise RuntimeError(f"run {run_id} has no end time after its follower returned")
    return run.end_time.timestamp()


def _after_end(command: list[str], run_id_of) -> float:
    """Seconds from the run's end (per the API) to `command` returning."""
    done = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=300)
    returned = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return returned - asyncio.run(_end_time(run_id_of(done)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="8 runs each")
    args = parse_with_image(parser)
    if args.quick:
        args.runs = 8
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-wait-"))
    (work / "events").mkdir()
    (work / "events" / "wait.yaml").write_text(
        f"name: {EVENT}\ntype: bash\nstatus: active\nscript: echo done\n"
    )
    ours_command = [*CLI, "trigger", EVENT, "--wait", "--json"]
    prefect_command = [
        sys.executable,
        "-m",
        "prefect",
        "deployment",
        "run",
        f"cronium-event/{EVENT}",
        "--watch",
    ]
    with prefect_api():
        apply(work / "events")
        with open(work / "worker.log", "w") as log:
            worker = start_worker(log=log)
            try:
                asyncio.run(wait_for_workers("cronium", 1))
                _after_end(ours_command, lambda d: json.loads(d.stdout)["run_id"])  # warm-up
                ours, prefect = [], []
                for _ in range(args.runs):  # interleaved: both meet the same load
                    ours.append(_after_end(ours_command, lambda d: json.loads(d.stdout)["run_id"]))
                    prefect.append(
                        _after_end(prefect_command, lambda d: RUN_ID.search(d.stdout).group(0))
                    )
            finally:
                stop(worker)
    figures = {
        "trigger_wait": quantiles(ours, (0.5, 0.9)),
        "prefect_deployment_run_watch": quantiles(prefect, (0.5, 0.9)),
    }
    row = metric(
        "run final -> `cronium trigger --wait` returned, p50",
        figures["trigger_wait"]["p50_s"],
        "s",
        f"<= {P50_GOAL} s",
        figures["trigger_wait"]["p50_s"] <= P50_GOAL,
        baseline=figures["prefect_deployment_run_watch"]["p50_s"],
        baseline_name="`prefect deployment run --watch` (no logs), p50",
        ratio=figures["trigger_wait"]["p50_s"] / figures["prefect_deployment_run_watch"]["p50_s"],
    )
    path = write_result("wait_latency", {"runs": args.runs, **figures}, [row])
    print(f"\n{args.runs} runs each; seconds from the run's end time to the command returning")
    print(f"{'':32}{'p50':>7}{'p90':>7}{'max':>7}")
    for label, f in figures.items():
        print(f"{label:32}{f['p50_s']:>7.2f}{f['p90_s']:>7.2f}{f['max_s']:>7.2f}")
    print(f"goal: {row['goal']} {'met' if row['met'] else 'NOT met'}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()

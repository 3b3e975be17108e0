"""Log latency: a script prints a line -> the line can be read through Prefect's API.

    python bench/log_latency.py [--lines 300] [--quick]

A bash event prints N lines, 20 a second, each with the time it was printed (`date
+%s.%N`, the same clock as here), and runs on `cronium worker`. Meanwhile this process
reads the run's logs every 0.1 s with `POST /logs/filter` (what Prefect's UI, the
dashboard and `cronium logs --follow` read) and notes when each line first appears; so a
figure can be up to ~0.1 s plus one request late. Per line: printed -> visible, and its
parts: printed -> the worker's log record (the record's timestamp: stream and line
handling) and record -> visible (batching, the request, the server). p50 / p99 / max.

Measured for two worker settings, one after the other on the same server (SQLite):
- `cronium worker` as it starts by default (it ships logs every 0.5 s unless
  PREFECT_LOGGING_TO_API_BATCH_INTERVAL is set);
- PREFECT_LOGGING_TO_API_BATCH_INTERVAL=2, Prefect's default.
Goals (the default worker): p50 <= 0.5 s, p99 <= 2.5 s. --quick: 100 lines.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import metric, parse_with_image, prefect_api, quantiles, stop, write_result  # noqa: E402
from harness import (  # noqa: E402
    apply,
    cli_env,
    create_runs,
    loadavg,
    start_worker,
    wait_final,
    wait_for_workers,
)

P50_GOAL, P99_GOAL = 0.5, 2.5
MARK = "LAT "
DEPLOYMENT = "cronium-event/bench-log-latency"


async def watch(run_id: str, lines: int, timeout: float) -> dict[int, tuple[float, float, float]]:
    """Line number -> (printed, record timestamp, first seen), reading the run's logs."""
    from datetime import datetime, timedelta, timezone

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        LogFilter,
        LogFilterFlowRunId,
        LogFilterTimestamp,
    )
    from prefect.client.schemas.sorting import LogSort

    seen: dict[int, tuple[float, float, float]] = {}
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while len(seen) < lines and time.monotonic() < deadline:
            logs = await client.read_logs(
                log_filter=LogFilter(
                    flow_run_id=LogFilterFlowRunId(any_=[run_id]),
                    timestamp=LogFilterTimestamp(after_=since),
                ),
                sort=LogSort.TIMESTAMP_ASC,
                limit=200,
            )
            now = time.time()
            for log in logs:
                if MARK not in log.message:
                    continue
                number, printed = log.message.split(MARK, 1)[1].split()[:2]
                if int(number) not in seen:
                    seen[int(number)] = (float(printed), log.timestamp.timestamp(), now)
            if logs:  # a batch may land with older timestamps: look back a little
                since = max(since, logs[-1].timestamp - timedelta(seconds=10))
            await asyncio.sleep(0.1)
    return seen


def measure(label: str, env: dict[str, str], lines: int, work: Path) -> dict:
    with open(work / f"worker-{label}.log", "w") as log:
        worker = start_worker(env=env, log=log)
        try:
            asyncio.run(wait_for_workers("cronium", 1))
            asyncio.run(wait_final(asyncio.run(create_runs(DEPLOYMENT, 1, None))[1], 120))
            load = loadavg()
            _, (run_id,) = asyncio.run(create_runs(DEPLOYMENT, 1, None))
            seen = asyncio.run(watch(run_id, lines, timeout=120 + lines / 5))
            asyncio.run(wait_final([run_id], 120))
        finally:
            stop(worker)
    if len(seen) < lines:
        raise RuntimeError(f"{label}: only {len(seen)} of {lines} lines became visible")
    return {
        "printed_to_visible": quantiles([s - p for p, _, s in seen.values()]),
        "printed_to_record": quantiles([r - p for p, r, _ in seen.values()]),
        "record_to_visible": quantiles([s - r for _, r, s in seen.values()]),
        "load_before": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="100 lines")
    args = parse_with_image(parser)
    if args.quick:
        args.lines = 100
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-logs-"))
    (work / "events").mkdir()
    script = f'for i in $(seq {args.lines}); do echo "{MARK}$i $(date +%s.%N)"; sleep 0.05; done'
    (work / "events" / "lat.yaml").write_text(
        f"name: bench-log-latency\ntype: bash\noverlap: allow\nscript: '{script}'\n"
    )
    figures = {}
    with prefect_api():
        base = {k: v for k, v in cli_env().items() if k != "PREFECT_LOGGING_TO_API_BATCH_INTERVAL"}
        configurations = {
            "cronium_worker_default": base,
            "prefect_default_2s": {**base, "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "2"},
        }
        apply(work / "events")
        for label, env in configurations.items():
            figures[label] = measure(label, env, args.lines, work)
            print(f"{label}: {figures[label]}", flush=True)

    ours = figures["cronium_worker_default"]["printed_to_visible"]
    prefect = figures["prefect_default_2s"]["printed_to_visible"]
    baseline_name = "the same worker, Prefect's default batch interval (2 s)"
    rows = [
        metric(
            f"script line printed -> visible via POST /logs/filter, {label}",
            ours[key],
            "s",
            f"<= {goal} s",
            ours[key] <= goal,
            baseline=prefect[key],
            baseline_name=baseline_name,
            ratio=ours[key] / prefect[key],
        )
        for label, key, goal in (("p50", "p50_s", P50_GOAL), ("p99", "p99_s", P99_GOAL))
    ]
    path = write_result("log_latency", {"lines": args.lines, "database": "sqlite", **figures}, rows)
    print(f"\n{args.lines} lines, 20 a second; seconds from printed to visible in the API")
    print(f"{'':28}{'p50':>7}{'p99':>7}{'max':>7}   record->visible p50 / p99")
    for label, f in figures.items():
        a, b = f["printed_to_visible"], f["record_to_visible"]
        print(
            f"{label:28}{a['p50_s']:>7.2f}{a['p99_s']:>7.2f}{a['max_s']:>7.2f}"
            f"   {b['p50_s']:.2f} / {b['p99_s']:.2f}  (load before {f['load_before']})"
        )
    verdicts = ", ".join(f"{r['goal']} {'met' if r['met'] else 'NOT met'}" for r in rows)
    print(f"goals (default worker): {verdicts}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()

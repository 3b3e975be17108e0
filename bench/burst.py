"""Burst: N runs of a trivial bash event fired at once, drained by `cronium worker --limit 8`.

    python bench/burst.py [--runs 100] [--rounds 1] [--sqlite] [--quick]

Ours: from the first trigger (a flow run created through Prefect's client) to the last
run's end (its end_time on the server, same clock): one worker, limit 8, after a warm-up
run. Baseline, measured in the same run just before: `xargs -P 8` running N x `docker run
--rm IMAGE bash -c 'echo hi'`, same image. Goal: ours / baseline <= 1.5x.

Prefect runs on a throwaway PostgreSQL cluster and all N runs are created at once.
--sqlite measures Prefect on SQLite instead (what `cronium up` runs), with at most 4
creations in flight: SQLite answers 503 ("database is locked") to concurrent writes and
Prefect's client retries after 2, 4, 8... s; the table counts those errors in the server
log. Also shown, for where the time went: each run's wait (created -> Pending), hand-over
(Pending -> Running) and execution (Running -> end), the mean number of runs executing at
once, and the CPU seconds the worker, the Prefect server, PostgreSQL, the Docker daemons
and the whole machine (other users included) used. --quick: 30 runs, 1 round.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402
from common import metric, parse_with_image, prefect_api, stop, write_result  # noqa: E402
from harness import (  # noqa: E402
    CpuMeter,
    apply,
    create_runs,
    database_pids,
    descendants,
    docker_daemon_pids,
    loadavg,
    server_pid,
    start_worker,
    state_times,
    wait_final,
    wait_for_workers,
)

GOAL = 1.5
LIMIT = 8
DEPLOYMENT = "cronium-event/bench-burst"


def baseline(image: str, runs: int) -> tuple[float, dict[str, float]]:
    meter = CpuMeter({"docker_daemons": docker_daemon_pids}).start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(
        # xargs is the baseline the issue names; the image (an argument) is quoted.
        f"seq {runs} | xargs -P {LIMIT} -I{{}} docker run --rm {shlex.quote(image)} "
        "bash -c 'echo hi'",
        shell=True,
        check=True,
        capture_output=True,
    )
    took = time.perf_counter() - began
    cpu = meter.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return took, {"docker_cli": round(cli, 2), **cpu}


def locked_errors() -> int:
    log = common.server_log
    return log.read_text().count("database is locked") if log and log.exists() else 0


def ours(runs: int, gate: int | None, meter: CpuMeter) -> dict:
    locked = locked_errors()
    meter.start()
    began, ids = asyncio.run(create_runs(DEPLOYMENT, runs, gate))
    created = time.time() - began
    finished = asyncio.run(wait_final(ids, timeout=60 + 10 * runs))
    cpu = meter.stop()
    states = {r.state.type.value for r in finished}
    if states != {"COMPLETED"}:
        raise RuntimeError(f"not every run completed: {sorted(states)}")
    end = max(r.end_time.timestamp() for r in finished)
    times = asyncio.run(state_times(ids))
    waits, handovers, executions = [], [], []
    for run in finished:
        t = times[str(run.id)]
        waits.append(t["PENDING"] - t["SCHEDULED"])
        handovers.append(t["RUNNING"] - t["PENDING"])
        executions.append(run.end_time.timestamp() - t["RUNNING"])
    total = end - began
    return {
        "total_s": round(total, 3),
        "creating_s": round(created, 3),
        "wait_p50_s": round(statistics.median(waits), 3),
        "wait_max_s": round(max(waits), 3),
        "handover_p50_s": round(statistics.median(handovers), 3),
        "execution_p50_s": round(statistics.median(executions), 3),
        "execution_max_s": round(max(executions), 3),
        "mean_concurrency": round(sum(executions) / total, 2),
        "runs_per_s": round(runs / total, 2),
        "database_locked_errors": locked_errors() - locked,
        "cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sqlite", action="store_true", help="Prefect on SQLite")
    parser.add_argument("--quick", action="store_true", help="30 runs, 1 round")
    args = parse_with_image(parser)
    if args.quick:
        args.runs, args.rounds = 30, 1
    database = "sqlite" if args.sqlite else "postgresql"
    gate = 4 if args.sqlite else None
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-burst-"))
    (work / "events").mkdir()
    (work / "events" / "burst.yaml").write_text(
        "name: bench-burst\ntype: bash\noverlap: allow\nscript: echo hi\n"
    )
    rounds: list[dict] = []
    with prefect_api(postgres=not args.sqlite):
        server = server_pid()
        apply(work / "events")
        log = open(work / "worker.log", "w")
        worker = start_worker("--limit", str(LIMIT), log=log)
        try:
            asyncio.run(wait_for_workers("cronium", 1))
            asyncio.run(wait_final(asyncio.run(create_runs(DEPLOYMENT, 1, None))[1], 120))
            subprocess.run(
                ["docker", "run", "--rm", args.image, "true"], check=True, capture_output=True
            )
            for number in range(args.rounds):
                load = loadavg()
                raw, raw_cpu = baseline(args.image, args.runs)
                groups = {
                    "worker": partial(descendants, worker.pid),
                    "prefect_server": partial(descendants, server),
                    "postgresql": partial(database_pids, server),
                    "docker_daemons": docker_daemon_pids,
                }
                figures = ours(args.runs, gate, CpuMeter(groups))
                figures["baseline_s"] = round(raw, 3)
                figures["baseline_cpu_s"] = raw_cpu
                figures["ratio"] = round(figures["total_s"] / raw, 3)
                figures["load_before"] = load
                rounds.append(figures)
                print(f"round {number + 1}: {figures}", flush=True)
        finally:
            stop(worker)
            log.close()

    total = statistics.median(r["total_s"] for r in rounds)
    raw = statistics.median(r["baseline_s"] for r in rounds)
    ratio = total / raw
    rows = [
        metric(
            f"{args.runs} trivial bash runs at once, 1 worker --limit {LIMIT}, "
            f"trigger -> last end ({database})",
            total,
            "s",
            f"<= {GOAL}x",
            ratio <= GOAL,
            baseline=raw,
            baseline_name=f"xargs -P {LIMIT}: {args.runs} x docker run --rm, same image",
            ratio=ratio,
            runs_per_s=round(args.runs / total, 2),
        )
    ]
    name = "burst_sqlite" if args.sqlite else "burst"
    creation = "all at once" if gate is None else f"at most {gate} requests at once"
    path = write_result(
        name,
        {
            "runs": args.runs,
            "limit": LIMIT,
            "database": database,
            "creation": creation,
            "rounds": rounds,
        },
        rows,
    )
    print(f"\n{'':30}{'ours':>9}{'baseline':>10}{'ratio':>8}  goal")
    print(f"{'trigger -> last end, median':30}{total:>8.2f}s{raw:>9.2f}s{ratio:>7.2f}x  <= {GOAL}x")
    for r in rounds:
        print(
            f"  {database}: wait p50 {r['wait_p50_s']} s, hand-over p50 {r['handover_p50_s']} s,"
            f" execution p50 {r['execution_p50_s']} s (max {r['execution_max_s']}), mean "
            f"concurrency {r['mean_concurrency']}, 'database is locked' "
            f"{r['database_locked_errors']}, load before {r['load_before']}\n  CPU s, ours: "
            f"{r['cpu_s']}\n  CPU s, baseline: {r['baseline_cpu_s']}"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    main()

"""Drain: N sleep-bound runs through 1 `cronium worker` vs 3, on one Prefect server process
and on Prefect's scaled server, both on PostgreSQL; duplicates.

    python bench/drain.py [--runs 300] [--sleep 1] [--api-processes 2] [--quick]
                                                          (as root: starts an sshd)

Two topologies, one after the other, each on a fresh server and database: `single` (one
`prefect server start` process with its services) and `scaled` (`cronium up --redis`'s:
N API processes, the services apart, a redis-server of its own).

Each run is a remote bash event over SSH (an sshd on 127.0.0.1, tests/sshd.py) that sleeps
S seconds and appends its flow-run id to a marker file on the SSH server. Phase 1: one
worker (default --limit 8) online, then N runs created (16 requests in flight) and
drained; phase 2: the same with three workers. Figures per phase: runs per second from
the first trigger to the last run's end (server end_time); each run's wait (created ->
Pending), hand-over (-> Running) and execution (-> end); the mean number of runs the
workers held (Pending to end); CPU seconds (workers, Prefect server, PostgreSQL, the
whole machine); and from the marker file: duplicates (ids written twice) and runs never
executed.
Goals: 3 workers >= 2.5x the runs/s of 1 on one server process, >= 2.0x on the scaled server
(2 cores); 0 duplicates. The server's CPU per run (API processes, services, Redis) is
printed for each phase: the capacity model in docs/benchmarks.md is built from it.

SSH, not Docker: on this 2-core machine a container start costs dockerd ~0.2 CPU-s, so
300 of them would measure the daemon; an SSH run on a pooled connection costs little
besides the sleep, and the marker file is one place to count executions in.
--quick: 60 runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import statistics
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
from common import metric, prefect_api, print_goals, stop, write_result  # noqa: E402
from harness import (  # noqa: E402
    CpuMeter,
    apply,
    create_runs,
    database_pids,
    descendants,
    loadavg,
    scaled_helpers,
    server_pid,
    start_worker,
    state_times,
    wait_final,
    wait_for_workers,
)

SPEEDUP_GOAL = 2.5  # on one server process (the first issue's goal)
SCALED_SPEEDUP_GOAL = 2.0  # on the scaled server, on this 2-core machine (#18)
SERVER = "bench-drain-ssh"

EVENT = """\
name: {name}
type: bash
run_location: remote
servers: [{server}]
overlap: allow
script: |
  run_id=$(cronium_event | sed -n 's/.*"run_id": *"\\([^"]*\\)".*/\\1/p')
  sleep {sleep}
  echo "$run_id" >> {markers}
"""


def save_server(sshd, name: str = SERVER) -> None:
    from pydantic import SecretStr

    from cronium_prefect.blocks import SSHServer
    from tests.sshd import USER

    SSHServer(
        host="127.0.0.1",
        port=sshd.port,
        username=USER,
        private_key=SecretStr(sshd.client_key),
        host_key=sshd.host_key_line,
        connect_timeout=5,
    ).save(name, overwrite=True, _sync=True)


def phase(workers: int, runs: int, work: Path, markers: Path, groups: dict) -> dict:
    name = f"bench-drain-{workers}"
    logs = [open(work / f"{name}-worker-{i}.log", "w") for i in range(workers)]
    procs = [start_worker("--name", f"{name}-{i}", log=log) for i, log in enumerate(logs)]
    try:
        asyncio.run(wait_for_workers("cronium", workers))
        time.sleep(3)  # every worker has polled once and opened its event subscription
        load = loadavg()
        workers_tree = lambda: [pid for p in procs for pid in descendants(p.pid)]  # noqa: E731
        meter = CpuMeter({"workers": workers_tree, **groups}).start()
        began, ids = asyncio.run(create_runs(f"cronium-event/{name}", runs, 16))
        finished = asyncio.run(wait_final(ids, timeout=120 + 5 * runs))
        cpu = meter.stop()
    finally:
        stop(*procs)
        for log in logs:
            log.close()
    end = max(r.end_time.timestamp() for r in finished if r.end_time)
    times = asyncio.run(state_times(ids))
    waits = [times[i]["PENDING"] - times[i]["SCHEDULED"] for i in ids if "PENDING" in times[i]]
    handovers = [
        times[i]["RUNNING"] - times[i]["PENDING"]
        for i in ids
        if "RUNNING" in times[i] and "PENDING" in times[i]
    ]
    busy = sum(
        r.end_time.timestamp() - times[str(r.id)]["PENDING"]
        for r in finished
        if r.end_time and "PENDING" in times[str(r.id)]
    )
    executions = [
        r.end_time.timestamp() - times[str(r.id)]["RUNNING"]
        for r in finished
        if r.end_time and "RUNNING" in times[str(r.id)]
    ]
    written = markers.read_text().split() if markers.exists() else []
    states = [r.state.type.value for r in finished]
    per_worker = [
        (work / f"{name}-worker-{i}.log").read_text().count("submitted to infrastructure")
        for i in range(workers)
    ]
    return {
        "workers": workers,
        "runs": runs,
        "total_s": round(end - began, 2),
        "runs_per_s": round(runs / (end - began), 3),
        "wait_p50_s": round(statistics.median(waits), 2),
        "handover_p50_s": round(statistics.median(handovers), 2),
        "execution_p50_s": round(statistics.median(executions), 2),
        "mean_runs_in_hand": round(busy / (end - began), 2),
        "completed": states.count("COMPLETED"),
        "other_states": {s: states.count(s) for s in set(states) if s != "COMPLETED"},
        "markers": len(written),
        "duplicates": len(written) - len(set(written)),
        "never_executed": len(set(ids) - set(written)),
        "runs_per_worker": per_worker,
        "cpu_s": cpu,
        "load_before": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--sleep", type=float, default=1)
    parser.add_argument("--api-processes", type=int, default=2, help="of the scaled server")
    parser.add_argument("--quick", action="store_true", help="60 runs")
    args = parser.parse_args()
    if args.quick:
        args.runs = 60

    from tests.sshd import USER, Sshd

    work = Path(tempfile.mkdtemp(prefix="cronium-bench-drain-"))
    sshd = Sshd.create(work / "sshd")
    home = Path(pwd.getpwnam(USER).pw_dir)
    topologies = {"single": None, "scaled": args.api_processes}
    markers = {
        (t, n): home / f"drain-{t}-{n}-{uuid.uuid4().hex}.txt" for t in topologies for n in (1, 3)
    }
    phases: dict[str, list[dict]] = {}
    try:
        for topology, api_processes in topologies.items():
            folder = work / f"events-{topology}"
            folder.mkdir()
            for n in (1, 3):
                (folder / f"drain-{n}.yaml").write_text(
                    EVENT.format(
                        name=f"bench-drain-{n}",
                        server=SERVER,
                        sleep=args.sleep,
                        markers=markers[topology, n],
                    )
                )
            os.environ.pop("PREFECT_API_URL", None)  # each topology: a server of its own
            with (
                prefect_api(postgres=True, api_processes=api_processes) as url,
                this_process_on(url),
            ):
                server = server_pid()
                groups = {
                    "prefect_server": partial(descendants, server),
                    "postgresql": partial(database_pids, server),
                    "services_and_redis": scaled_helpers,
                }
                save_server(sshd)
                apply(folder)
                phases[topology] = []
                for n in (1, 3):
                    phases[topology].append(phase(n, args.runs, work, markers[topology, n], groups))
                    print(f"{topology}, {n} worker(s): {phases[topology][-1]}", flush=True)
    finally:
        sshd.remove()
        for path in markers.values():
            path.unlink(missing_ok=True)
    report(args, phases)


def this_process_on(url: str):
    """Prefect's settings in this process (read once, at its import) pointed at `url`; the
    workers, started later, read it from the environment."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings({PREFECT_API_URL: url})


def server_cpu_per_run(phase: dict) -> float:
    used = phase["cpu_s"]
    return (used["prefect_server"] + used["services_and_redis"]) / phase["runs"]


def report(args: argparse.Namespace, phases: dict[str, list[dict]]) -> None:
    rows = []
    for topology, (one, three) in phases.items():
        speedup = three["runs_per_s"] / one["runs_per_s"]
        goal = SPEEDUP_GOAL if topology == "single" else SCALED_SPEEDUP_GOAL
        where = (
            "one server process"
            if topology == "single"
            else (f"the scaled server, {args.api_processes} API processes")
        )
        rows += [
            metric(
                f"{args.runs} runs of `sleep {args.sleep:g}` over SSH, 3 workers vs 1, {where}",
                three["runs_per_s"],
                "runs/s",
                f">= {goal}x",
                speedup >= goal,
                baseline=one["runs_per_s"],
                baseline_name="the same runs, 1 worker, same server",
                ratio=speedup,
                server_cpu_per_run_s={
                    "1 worker": round(server_cpu_per_run(one), 3),
                    "3 workers": round(server_cpu_per_run(three), 3),
                },
            ),
        ]
    duplicates = sum(p["duplicates"] for pair in phases.values() for p in pair)
    rows.append(
        metric(
            "runs executed more than once (every phase)",
            duplicates,
            "runs",
            "0",
            duplicates == 0,
            never_executed=sum(p["never_executed"] for pair in phases.values() for p in pair),
        )
    )
    path = write_result(
        "drain",
        {"runs": args.runs, "sleep_s": args.sleep, "database": "postgresql", "phases": phases},
        rows,
    )
    print(f"\n{args.runs} runs of `sleep {args.sleep:g}` over SSH, PostgreSQL")
    print(f"{'server':>8}{'workers':>8}{'total s':>9}{'runs/s':>8}{'wait':>7}{'hand-over':>10}"
          f"{'exec':>7}{'held':>6}{'dups':>6}{'missing':>9}{'srv cpu/run':>12}"
          "  per worker (p50 s; held: mean runs)")  # fmt: skip
    for topology, pair in phases.items():
        for p in pair:
            print(
                f"{topology:>8}{p['workers']:>8}{p['total_s']:>9.1f}{p['runs_per_s']:>8.2f}"
                f"{p['wait_p50_s']:>7.1f}{p['handover_p50_s']:>10.2f}{p['execution_p50_s']:>7.2f}"
                f"{p['mean_runs_in_hand']:>6.1f}{p['duplicates']:>6}{p['never_executed']:>9}"
                f"{server_cpu_per_run(p):>12.3f}  {p['runs_per_worker']}"
            )
    print_goals(rows)
    for topology, pair in phases.items():
        for p in pair:
            print(f"CPU s, {topology}, {p['workers']} worker(s): {p['cpu_s']} "
                  f"(load before {p['load_before']})")  # fmt: skip
    print(f"written to {path}")


if __name__ == "__main__":
    main()

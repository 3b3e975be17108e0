"""Side by side with published peers: Windmill's open competitor-benchmark protocol, run
with Cronium workflows, beside the `docker run` floor.

    python bench/peers.py [--samples 100] [--warmups 10] [--burst 200]
                          [--api-processes 2] [--quick]        (as root: starts an sshd)

The protocol (as its harness publishes it): a flow of 3 trivial sequential steps is
triggered over REST and its state polled every 100 ms until it ends; 10 warm-ups, then 100
samples, median and P95 of trigger -> seen ended; then 200 runs fired at once, runs per
second from the first trigger to the last end.

Ours: a workflow of three steps, each a trivial bash event (`echo`), one after another
(`needs`), triggered with Prefect's REST call (POST /deployments/{id}/create_flow_run, what
`cronium trigger` sends) and polled with GET /flow_runs/{id}. Twice: Docker events (a
fresh locked-down container per step) and SSH events (an sshd on 127.0.0.1, no container).
On Prefect's scaled server (`cronium up --redis`'s: PostgreSQL, Redis, N API processes, the
services apart) and one `cronium worker --limit 16`.

The floor: the same three steps as three `docker run --rm IMAGE bash -c 'echo'` one after
another (latency, same samples), and the burst's 200 x 3 of them, 16 at once (throughput).

Goals (#18, this 2-core machine): SSH events >= 10 runs/s fired at once; Docker events'
throughput within 1.5x of the floor's. The published figures are printed beside ours with
their versions; they were measured on hardware the publication does not state.
--quick: 3 warm-ups, 10 samples, a burst of 20.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
from common import (  # noqa: E402
    metric,
    parse_with_image,
    prefect_api,
    print_goals,
    stop,
    write_result,
)
from harness import apply, start_worker, wait_final, wait_for_workers  # noqa: E402

POLL = 0.1  # the protocol's
LIMIT = 16
SSH_GOAL_RUNS_PER_S = 10
DOCKER_GOAL = 1.5
SERVER = "bench-peers-ssh"
# Windmill's competitor benchmark (3 sequential trivial steps; hardware not stated), as
# quoted in issue #18: (name, version, median latency s, runs/s fired at once).
PUBLISHED = [
    ("Prefect serve()", "3.6", 9.7, 1.3),
    ("Airflow", "2.10", 3.8, 7.4),
    ("Kestra", "1.3", 0.177, 68),
    ("Temporal", "-", 0.119, 39),
    ("Windmill", "-", 0.103, 152),
]


def definitions(kind: str) -> str:
    where = f"run_location: remote\nservers: [{SERVER}]\n" if kind == "ssh" else ""
    events = [
        f"name: peers-{kind}-{i}\ntype: bash\nstatus: active\noverlap: allow\n{where}"
        f"script: echo step {i}\n"
        for i in range(3)
    ]
    steps = [
        f"  - {{name: s{i}, event: peers-{kind}-{i}" + (f", needs: [s{i - 1}]" if i else "") + "}"
        for i in range(3)
    ]
    workflow = f"kind: workflow\nname: peers-{kind}\nstatus: active\noverlap: allow\nsteps:\n"
    return "---\n".join([*events, workflow + "\n".join(steps) + "\n"])


async def _deployment_id(client, name: str) -> str:
    response = await client.get(f"/deployments/name/cronium-workflow/{name}")
    response.raise_for_status()
    return response.json()["id"]


async def latency(url: str, name: str, warmups: int, samples: int) -> list[float]:
    """Trigger -> seen ended over REST, polled every 100 ms; warm-ups dropped."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        deployment = await _deployment_id(client, name)
        taken = []
        for _ in range(warmups + samples):
            began = time.perf_counter()
            run = await client.post(f"/deployments/{deployment}/create_flow_run", json={})
            run.raise_for_status()
            run_id = run.json()["id"]
            while True:
                await asyncio.sleep(POLL)
                state = (await client.get(f"/flow_runs/{run_id}")).json()["state"]
                if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                    break
            if state["type"] != "COMPLETED":
                raise RuntimeError(f"{name}: {state['type']} {state.get('message')}")
            taken.append(time.perf_counter() - began)
        return taken[warmups:]


async def fired_at_once(url: str, name: str, count: int) -> tuple[float, list[str]]:
    """`count` runs triggered at once over REST: the first trigger's time and the ids."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        deployment = await _deployment_id(client, name)
        began = time.time()
        answers = await asyncio.gather(
            *(
                client.post(f"/deployments/{deployment}/create_flow_run", json={})
                for _ in range(count)
            )
        )
        return began, [answer.raise_for_status().json()["id"] for answer in answers]


def throughput(url: str, name: str, count: int) -> float:
    began, ids = asyncio.run(fired_at_once(url, name, count))
    finished = asyncio.run(wait_final(ids, timeout=600 + 10 * count))
    states = {r.state.type.value for r in finished}
    if states != {"COMPLETED"}:
        raise RuntimeError(f"{name}: not every run completed: {sorted(states)}")
    return count / (max(r.end_time.timestamp() for r in finished) - began)


def floor(image: str, warmups: int, samples: int, burst: int) -> tuple[list[float], float]:
    """Three `docker run`s one after another (each sample), and the burst's 3 x N of them
    16 at once: (sample seconds, runs of 3 per second)."""
    one = ["docker", "run", "--rm", image, "bash", "-c", "echo step"]
    taken = []
    for _ in range(warmups + samples):
        began = time.perf_counter()
        for _ in range(3):
            subprocess.run(one, check=True, capture_output=True)
        taken.append(time.perf_counter() - began)
    began = time.perf_counter()
    subprocess.run(
        # The image is an argument; quoted.
        f"seq {3 * burst} | xargs -P {LIMIT} -I{{}} docker run --rm {shlex.quote(image)} "
        "bash -c 'echo step'",
        shell=True,
        check=True,
        capture_output=True,
    )
    return taken[warmups:], burst / (time.perf_counter() - began)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--warmups", type=int, default=10)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--api-processes", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 warm-ups, 10 samples, 20")
    args = parse_with_image(parser)
    if args.quick:
        args.warmups, args.samples, args.burst = 3, 10, 20

    from drain import save_server

    from tests.sshd import Sshd

    work = Path(tempfile.mkdtemp(prefix="cronium-bench-peers-"))
    sshd = Sshd.create(work / "sshd")
    (work / "defs").mkdir()
    (work / "defs" / "all.yaml").write_text(definitions("docker") + "---\n" + definitions("ssh"))
    figures: dict[str, dict] = {}
    try:
        with prefect_api(api_processes=args.api_processes) as url:
            save_server(sshd, SERVER)
            apply(work / "defs")
            log = open(work / "worker.log", "w")
            worker = start_worker("--limit", str(LIMIT), env={**os.environ}, log=log)
            try:
                asyncio.run(wait_for_workers("cronium", 1))
                for kind in ("ssh", "docker"):
                    name = f"peers-{kind}"
                    taken = asyncio.run(latency(url, name, args.warmups, args.samples))
                    figures[kind] = summary(taken)
                    print(f"{kind}, one at a time: {figures[kind]}", flush=True)
                    figures[kind]["runs_per_s"] = round(throughput(url, name, args.burst), 2)
                    print(f"{kind}: {figures[kind]}", flush=True)
            finally:
                stop(worker)
                log.close()
        taken, rate = floor(args.image, args.warmups, args.samples, args.burst)
        figures["floor"] = {**summary(taken), "runs_per_s": round(rate, 2)}
        print(f"docker run floor: {figures['floor']}", flush=True)
    finally:
        sshd.remove()
    report(args, figures)


def report(args: argparse.Namespace, figures: dict[str, dict]) -> None:
    ssh, docker, base = figures["ssh"], figures["docker"], figures["floor"]
    where = f"scaled server, {args.api_processes} API processes, worker --limit {LIMIT}"
    rows = [
        metric(
            f"3-step workflow of SSH events, {args.burst} fired at once, runs/s ({where})",
            ssh["runs_per_s"],
            "runs/s",
            f">= {SSH_GOAL_RUNS_PER_S} runs/s",
            ssh["runs_per_s"] >= SSH_GOAL_RUNS_PER_S,
            latency=ssh,
        ),
        metric(
            f"3-step workflow of Docker events, {args.burst} fired at once, runs/s ({where})",
            docker["runs_per_s"],
            "runs/s",
            f"floor/ours <= {DOCKER_GOAL}x",
            base["runs_per_s"] / docker["runs_per_s"] <= DOCKER_GOAL,
            baseline=base["runs_per_s"],
            baseline_name=f"3 x {args.burst} docker run --rm, {LIMIT} at once",
            ratio=base["runs_per_s"] / docker["runs_per_s"],
            latency=docker,
            floor_latency=base,
        ),
    ]
    path = write_result(
        "peers",
        {"samples": args.samples, "warmups": args.warmups, "burst": args.burst, **figures},
        rows,
    )
    print(f"\n{'':34}{'median':>9}{'p95':>9}{'runs/s':>9}")
    for label, f in (
        ("Cronium, SSH events", ssh),
        ("Cronium, Docker events", docker),
        ("docker run floor (3 in a row)", base),
    ):
        print(f"{label:34}{f['median_s']:>8.3f}s{f['p95_s']:>8.3f}s{f['runs_per_s']:>9.2f}")
    print("published (Windmill's competitor benchmark, hardware not stated):")
    for name, version, median, rate in PUBLISHED:
        print(f"  {name + ' ' + version:32}{median:>8.3f}s{'-':>9}{rate:>9.1f}")
    print_goals(rows)
    print(f"written to {path}")


if __name__ == "__main__":
    main()

"""Webhooks under load, and how soon a webhook's script starts.

    python bench/webhooks.py [--clients 20] [--seconds 60] [--interval 0.5] [--runs 10]

Load (bounded, loopback only): `--clients` clients, each posting an HMAC-signed webhook
every `--interval` s (or as soon as the previous answer came, if later) for `--seconds`,
to `cronium api` in front of Prefect on a throwaway PostgreSQL cluster (Cronium's tables
in the same database). Baseline, in the same run just before: the same load straight to
Prefect's API (`create_flow_run` on the deployment, no authentication). Checked: every
202 names a run that exists, the event has exactly
as many runs as there were 202s (no run without one), nothing answered 5xx. Goal: the
hook's p99 response time <= 200 ms.

Start latency: `--runs` times, a webhook -> the script's first line (`date +%s.%N`, same
clock), against the same through `cronium trigger`'s path (a flow run created from the
deployment by Prefect's client), both run by one `cronium worker`. Goal: the webhook's
p50 within 0.3 s of the trigger's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    free_port,
    metric,
    parse_with_image,
    prefect_api,
    quantiles,
    stop,
    summary,
    write_result,
)
from harness import apply, cli_env, start_worker  # noqa: E402

SECRET = "bench-signing-secret"
LOAD_EVENT = "bench-hook-load"  # in a pool no worker serves: its runs are only counted
START_EVENT = "bench-hook-start"
EVENTS = f"""
name: {LOAD_EVENT}
type: bash
status: active
pool: bench-nobody
script: "true"
webhook: {{auth: hmac, secret: bench-signing}}
---
name: {START_EVENT}
type: bash
status: active
script: echo "STARTED $(date +%s.%N)"
webhook: {{auth: hmac, secret: bench-signing}}
"""


def _signed(body: bytes) -> dict[str, str]:
    from cronium_prefect.webhook import sign

    stamp = str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-Cronium-Timestamp": stamp,
        "X-Cronium-Signature": sign(SECRET, stamp, body),
    }


async def _load(
    url: str, clients: int, seconds: float, interval: float, direct: str | None = None
) -> dict:
    """The load; with `direct` (a deployment id), the same requests straight to Prefect's
    API (`POST /deployments/{id}/create_flow_run`, no front door): the baseline."""
    import httpx

    times: list[float] = []
    statuses: dict[int, int] = {}
    run_ids: list[str] = []
    deadline = time.monotonic() + seconds

    async def client(number: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            sequence = 0
            while time.monotonic() < deadline:
                sequence += 1
                data = {"client": number, "n": sequence}
                body = json.dumps(data).encode()
                began = time.monotonic()
                if direct is None:
                    answer = await http.post(
                        f"/hooks/{LOAD_EVENT}", content=body, headers=_signed(body)
                    )
                else:
                    answer = await http.post(
                        f"/deployments/{direct}/create_flow_run",
                        json={"parameters": {"input": data, "trigger": "api"}},
                    )
                took = time.monotonic() - began
                times.append(took)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                if answer.status_code in (201, 202):
                    run_ids.append(answer.json()["run_id" if direct is None else "id"])
                await asyncio.sleep(max(0.0, interval - took))

    await asyncio.gather(*(client(n) for n in range(clients)))
    return {"times": times, "statuses": statuses, "run_ids": run_ids}


async def _runs_of(event: str) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    found: set[str] = set()
    async with get_client() as client:
        offset = 0
        while True:
            page = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[event])),
                limit=200,
                offset=offset,
            )
            found |= {str(r.id) for r in page}
            if len(page) < 200:
                return found
            offset += 200


async def _deployment_id(event: str) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return str((await client.read_deployment_by_name(f"cronium-event/{event}")).id)


async def _first_line(run_id: str, began: float) -> float:
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + 120
    async with get_client() as client:
        while time.monotonic() < deadline:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(run_id)]))
            )
            lines = [log.message for log in logs if "STARTED " in log.message]
            if lines:
                return float(lines[0].split("STARTED ", 1)[1].split()[0]) - began
            await asyncio.sleep(0.1)
    raise RuntimeError(f"run {run_id} printed no first line")


async def _by_hook(url: str) -> float:
    import httpx

    body = b'{"via": "hook"}'
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        began = time.time()
        answer = await http.post(f"/hooks/{START_EVENT}", content=body, headers=_signed(body))
    answer.raise_for_status()
    return await _first_line(answer.json()["run_id"], began)


async def _by_trigger() -> float:
    from prefect.client.orchestration import get_client

    from cronium_prefect.flows.resolve import run_now

    async with get_client() as client:
        began = time.time()
        run = await run_now(client, START_EVENT, {"via": "trigger"})
    return await _first_line(str(run.id), began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=10)
    args = parse_with_image(parser)
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-hooks-"))
    with prefect_api(postgres=True):
        import common
        from prefect.blocks.system import Secret

        database = common.database_url
        env = cli_env(PREFECT_SERVER_DATABASE_CONNECTION_URL=database)
        Secret(value=SECRET).save("bench-signing", overwrite=True)
        (work / "events").mkdir()
        (work / "events" / "hooks.yaml").write_text(EVENTS)
        apply(work / "events", env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(work / "api.log", "w")
        service = subprocess.Popen(
            [sys.executable, "-m", "cronium_prefect.cli", "api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        worker = None
        try:
            for _ in range(100):
                try:
                    import httpx

                    if httpx.get(f"{url}/health", timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            deployment = asyncio.run(_deployment_id(LOAD_EVENT))
            direct = asyncio.run(
                _load(
                    os.environ["PREFECT_API_URL"],
                    args.clients,
                    args.seconds,
                    args.interval,
                    direct=deployment,
                )
            )
            before = asyncio.run(_runs_of(LOAD_EVENT))
            loaded = asyncio.run(_load(url, args.clients, args.seconds, args.interval))
            made = asyncio.run(_runs_of(LOAD_EVENT)) - before
            worker = start_worker(env=env)
            time.sleep(3)  # the worker polls
            asyncio.run(_by_trigger())  # warm-up
            hook, trigger = [], []
            for _ in range(args.runs):
                hook.append(asyncio.run(_by_hook(url)))
                trigger.append(asyncio.run(_by_trigger()))
        finally:
            stop(*(p for p in (worker, service) if p is not None))
            log.close()
    accepted = loaded["run_ids"]
    exact = set(accepted) == made and len(accepted) == len(made)
    server_errors = sum(n for code, n in loaded["statuses"].items() if code >= 500)
    latency = quantiles(loaded["times"], (0.5, 0.99))
    plain = quantiles(direct["times"], (0.5, 0.99))
    hook_s, trigger_s = summary(hook), summary(trigger)
    gap = hook_s["median_s"] - trigger_s["median_s"]
    result = {
        "requests": len(loaded["times"]),
        "statuses": {str(k): v for k, v in loaded["statuses"].items()},
        "runs_made": len(made),
        "every_202_has_one_run_and_no_other": exact,
        "response_s": latency,
        "prefect_direct_response_s": plain,
        "prefect_direct_requests": len(direct["times"]),
        "hook_first_line": hook_s,
        "trigger_first_line": trigger_s,
        "clients": args.clients,
        "seconds": args.seconds,
        "interval_s": args.interval,
    }
    rows = [
        metric(
            f"webhook response p99, {args.clients} clients, {args.seconds:g} s",
            latency["p99_s"],
            "s",
            "<= 0.2 s, one run per 202, no 5xx",
            latency["p99_s"] <= 0.2 and exact and server_errors == 0,
            baseline=plain["p99_s"],
            baseline_name="the same load straight to Prefect's create_flow_run",
            ratio=latency["p99_s"] / plain["p99_s"],
            p50_s=round(latency["p50_s"], 4),
            requests=len(loaded["times"]),
        ),
        metric(
            "webhook -> first script line, p50",
            hook_s["median_s"],
            "s",
            "<= cronium trigger's + 0.3 s",
            gap <= 0.3,
            baseline=trigger_s["median_s"],
            baseline_name="cronium trigger's path (flow run from the deployment)",
            ratio=hook_s["median_s"] / trigger_s["median_s"],
        ),
    ]
    path = write_result("webhooks", result, rows)
    print(
        f"{len(loaded['times'])} webhooks from {args.clients} clients in {args.seconds:g} s: "
        f"statuses {result['statuses']}, p50 {latency['p50_s'] * 1000:.0f} ms, "
        f"p99 {latency['p99_s'] * 1000:.0f} ms (goal <= 200 ms); runs made {len(made)}, "
        f"one per 202 and no other: {exact}"
    )
    print(
        f"the same load straight to Prefect's API: {len(direct['times'])} requests, "
        f"p50 {plain['p50_s'] * 1000:.0f} ms, p99 {plain['p99_s'] * 1000:.0f} ms"
    )
    print(
        f"first script line: webhook p50 {hook_s['median_s']:.3f} s, trigger p50 "
        f"{trigger_s['median_s']:.3f} s, gap {gap:+.3f} s (goal <= 0.3 s)"
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()

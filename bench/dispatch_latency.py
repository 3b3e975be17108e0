"""Run-now dispatch latency: trigger -> first script line, ours vs Prefect's default path.

    python bench/dispatch_latency.py [--runs 20]

For each path the script's first line is the time it started (`date +%s.%N`, same clock),
so the figure is trigger -> script running, whatever the log shipping delay:
- ours: an applied event, run by `cronium worker` (in-process runs, 1 s polling);
- Prefect's default: the same `docker run` from a flow served with `serve()` and default
  settings (10 s polling, a fresh interpreter per run);
- raw: `docker run --rm IMAGE bash -c 'date +%s.%N'` started directly.
Goals: ours p50 <= raw p50 + 0.5 s, and ours >= 5x faster than the default path (p50).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import metric, parse_with_image, prefect_api, stop, summary, write_result  # noqa: E402

DEFAULT_FLOW = """
import subprocess
from prefect import flow

@flow(log_prints=True)
def default_dispatch():
    out = subprocess.run(["docker", "run", "--rm", "{image}", "bash", "-c", "date +%s.%N"],
                         capture_output=True, text=True, check=True).stdout
    print("STARTED", out.strip())

if __name__ == "__main__":
    default_dispatch.serve(name="default")
"""


PHASES: dict[str, list[tuple]] = {}  # deployment -> (to Pending, to Running, to first line)


async def _trigger_and_time(deployment_name: str, parameters: dict, marker: str) -> float:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(deployment_name)
        began = time.time()
        run = await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        deadline = time.monotonic() + 120
        while True:
            run = await client.read_flow_run(run.id)
            if run.state and run.state.is_final():
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{deployment_name}: run {run.id} did not finish")
            await asyncio.sleep(0.2)
        states = await client.read_flow_run_states(run.id)
        phases = {st.type.value: st.timestamp.timestamp() - began for st in states}
        for _ in range(50):  # logs are shipped in batches after the run
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id]))
            )
            lines = [log.message for log in logs if marker in log.message]
            if lines:
                first_line = float(lines[0].split(marker, 1)[1].split()[0]) - began
                PHASES.setdefault(deployment_name, []).append(
                    (phases.get("PENDING"), phases.get("RUNNING"), first_line)
                )
                return first_line
            await asyncio.sleep(0.2)
        shown = "\n".join(log.message for log in logs)
        raise RuntimeError(
            f"{deployment_name}: no '{marker}' line in run {run.id} "
            f"({run.state.name if run.state else '?'}):\n{shown}"
        )


def _raw(image: str) -> float:
    began = time.time()
    out = subprocess.run(
        ["docker", "run", "--rm", image, "bash", "-c", "date +%s.%N"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip()) - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parse_with_image(parser)
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-dispatch-"))
    cli = [sys.executable, "-m", "cronium_prefect.cli"]
    with prefect_api():
        # The workers must ship INFO lines: the script's first line is one.
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_LEVEL"}
        (work / "events").mkdir()
        (work / "events" / "e.yaml").write_text(
            'name: bench-dispatch\ntype: bash\nscript: echo "STARTED $(date +%s.%N)"\n'
        )
        subprocess.run(
            [*cli, "apply", str(work / "events")], env=env, check=True, capture_output=True
        )
        (work / "default_flow.py").write_text(
            textwrap.dedent(DEFAULT_FLOW.format(image=args.image))
        )
        ours_worker = subprocess.Popen(
            [*cli, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        served = subprocess.Popen(
            [sys.executable, str(work / "default_flow.py")],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(8)  # both have started polling
            asyncio.run(_trigger_and_time("cronium-event/bench-dispatch", {}, "STARTED "))
            ours = [
                asyncio.run(_trigger_and_time("cronium-event/bench-dispatch", {}, "STARTED "))
                for _ in range(args.runs)
            ]
            default = [
                asyncio.run(_trigger_and_time("default-dispatch/default", {}, "STARTED "))
                for _ in range(args.runs)
            ]
            raw = [_raw(args.image) for _ in range(args.runs)]
        finally:
            stop(ours_worker, served)
    ours_s, default_s, raw_s = summary(ours), summary(default), summary(raw)
    speedup = default_s["median_s"] / ours_s["median_s"]
    over_raw = ours_s["median_s"] - raw_s["median_s"]
    result = {
        "ours": ours_s,
        "prefect_default_serve": default_s,
        "raw_docker_run": raw_s,
        "speedup_vs_default_p50": round(speedup, 2),
        "p50_over_raw_s": round(over_raw, 3),
        "goals": "p50 <= raw + 0.5 s; >= 5x faster than default",
        "met": over_raw <= 0.5 and speedup >= 5,
    }
    import statistics

    # The warm-up run is not counted.
    ours_phases = PHASES.get("cronium-event/bench-dispatch", [])[1:]
    result["ours_phases_p50_s"] = {
        name: round(statistics.median(p[i] for p in ours_phases if p[i] is not None), 3)
        for i, name in enumerate(("picked_up_pending", "flow_running", "first_line"))
    }
    result["ours_phases_s"] = [[round(x, 3) if x else x for x in p] for p in ours_phases]
    rows = [
        metric(
            "run now -> first script line, p50",
            ours_s["median_s"],
            "s",
            "<= raw + 0.5 s",
            over_raw <= 0.5,
            baseline=raw_s["median_s"],
            baseline_name="docker run --rm (start to first line)",
            ratio=ours_s["median_s"] / raw_s["median_s"],
            p95_s=ours_s["p95_s"],
        ),
        metric(
            "run now -> first script line, p50, vs Prefect defaults",
            ours_s["median_s"],
            "s",
            ">= 5x faster",
            speedup >= 5,
            baseline=default_s["median_s"],
            baseline_name="Prefect serve() defaults",
            ratio=speedup,
            baseline_p95_s=default_s["p95_s"],
        ),
    ]
    path = write_result("dispatch_latency", result, rows)
    for label, figures in (
        ("cronium worker", ours_s),
        ("Prefect serve() default", default_s),
        ("raw docker run", raw_s),
    ):
        print(
            f"{label:25} p50 {figures['median_s']:.3f} s  p95 {figures['p95_s']:.3f} s "
            f"(n={figures['n']})"
        )
    print(
        f"ours vs default: {speedup:.1f}x faster (goal >= 5x); ours p50 - raw p50 = "
        f"{over_raw:.3f} s (goal <= 0.5 s)"
    )
    print(
        "ours, p50 from trigger: "
        + ", ".join(f"{k} {v:.3f} s" for k, v in result["ours_phases_p50_s"].items())
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()

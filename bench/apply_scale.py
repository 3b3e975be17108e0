"""`cronium apply` and `cronium events` at scale: 1,000 and 10,000 events.

    python bench/apply_scale.py [--quick] [--sqlite-10k] [--py-spy]

Every figure is the wall time of a whole process (imports included) against a fresh
Prefect server of its own (bench/common.py `prefect_api`; each server is started by a
stage of this script run as a child process), on events written as YAML files, one per
file: types, owners, tags and statuses mixed, every 50th event active with an hourly cron
(so Prefect's scheduler has its share of work). Per stage:
- `cronium apply DIR` of N new events, `cronium apply DIR` again (all unchanged), then
  `cronium events` 3 times (median and worst);
- the baseline for new events, Prefect's own way: one process that loops
  `cronium_event.to_deployment(...).apply()` over the same events (same parameters, tags,
  schedules, paused flag, queue, concurrency limit and version), on its own fresh server.
N = 1,000 on SQLite (ours and the baseline). N = 10,000 on SQLite when the 1,000 run's
cost per new deployment says it takes under 10 minutes (or with --sqlite-10k), else on
PostgreSQL (fsync off), and then 1,000 on PostgreSQL too, so the growth is read on one
database. --quick: 100 and 1,000 events, SQLite only.

Goals (the issue): apply 1,000 new events (SQLite) <= 60 s; re-apply 10,000 unchanged
<= 15 s; `cronium events` with 10,000 events <= 3 s. The machine may be shared: each step
records the load average and the CPU seconds of the client process and of the Prefect
server. PREFECT_API_URL is not used: every stage needs an empty server. --py-spy records
both sides of each step (raw stacks in bench/results/apply_scale-profiles/; slower).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, metric, prefect_api, write_result  # noqa: E402
from harness import CLI, cpu_seconds, descendants, server_pid  # noqa: E402

TYPES = ["bash", "python", "node"]
STATUSES = ["paused", "draft", "archived"]
LIST_REPEAT = 3
SQLITE_BUDGET_S = 600  # 10k new events on SQLite only when estimated under this
PROFILES = RESULTS / "apply_scale-profiles"


def write_events(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        active = i % 50 == 0
        lines = [
            f"name: evt-{i:05d}",
            f"type: {TYPES[i % 3]}",
            f"script: echo event {i}",
            f"status: {'active' if active else STATUSES[i % 3]}",
            f"owner: team-{i % 7}",
            f"tags: [group-{i % 20}]",
            f"overlap: {['skip', 'queue', 'allow'][i % 3]}",
        ]
        if active:
            lines.append(f'schedule: {{cron: "{i % 60} * * * *"}}')
        (folder / f"evt-{i:05d}.yaml").write_text("\n".join(lines) + "\n")
    return folder


def _py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def timed(name: str, command: list[str], cwd: Path, profile: bool) -> dict[str, Any]:
    """Run one process to its end: wall time, its CPU and the server's during it."""
    spy, recorder = _py_spy() if profile else None, None
    if spy:
        PROFILES.mkdir(parents=True, exist_ok=True)
        recorder = subprocess.Popen(
            [spy, "record", "-r", "50", "-f", "raw", "-o", str(PROFILES / f"{name}-server.txt")]
            + ["-p", str(server_pid())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        command = [spy, "record", "-r", "50", "-f", "raw", "-o"] + [
            str(PROFILES / f"{name}-client.txt"),
            "--",
            *command,
        ]
    load = os.getloadavg()[0]
    server_before, children_before = (
        cpu_seconds(descendants(server_pid())),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    with tempfile.TemporaryFile("w+") as errors:
        started, first = time.perf_counter(), None
        process = subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        lines = []
        for line in process.stdout:  # type: ignore[union-attr]
            first = first or time.perf_counter() - started
            lines.append(line)
        process.wait(timeout=7200)
        wall = time.perf_counter() - started
        errors.seek(0)
        done = subprocess.CompletedProcess(
            command, process.returncode, "".join(lines), errors.read()
        )
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = cpu_seconds(descendants(server_pid())) - server_before
    if recorder is not None:
        recorder.send_signal(2)  # py-spy writes its file on SIGINT
        recorder.wait(timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    step = {
        "wall_s": round(wall, 3),
        "first_output_s": round(first, 3) if first is not None else None,
        "client_cpu_s": round(
            children.ru_utime
            + children.ru_stime
            - children_before.ru_utime
            - children_before.ru_stime,
            2,
        ),
        "server_cpu_s": round(server_cpu, 2),
        "load_before": round(load, 2),
    }
    print(f"  {name:32} {wall:8.2f} s  {json.dumps(step)}", file=sys.stderr, flush=True)
    if "--json" in command:
        # the command's JSON line (py-spy, when it wraps the command, prints after it)
        line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("{"))
        step["output"] = json.loads(line)
    return step


def stage_ours(folder: Path, profile: bool) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    steps["apply_new"] = timed("apply-new", [*CLI, "apply", str(folder), "--json"], folder, profile)
    created = steps["apply_new"]["output"]["created"]
    steps["reapply"] = timed("reapply", [*CLI, "apply", str(folder), "--json"], folder, profile)
    unchanged = steps["reapply"]["output"]["unchanged"]
    if created != unchanged:
        raise RuntimeError(f"created {created}, then {unchanged} unchanged")
    steps["events"] = [
        timed(f"events-all-{i}", [*CLI, "events", "--all"], folder, profile and i == 0)
        for i in range(LIST_REPEAT)
    ]
    steps["events_page"] = [  # the default: the first 100 by name, and the total
        timed(f"events-{i}", [*CLI, "events"], folder, False) for i in range(LIST_REPEAT)
    ]
    return steps


def stage_baseline(folder: Path, profile: bool) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--baseline-loop", str(folder)]
    return {"apply_new": timed("baseline-apply-new", command, folder, profile)}


def baseline_loop(folder: Path) -> None:
    """Prefect's own way: `to_deployment(...).apply()` for each event, one after another."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.deployments.runner import EntrypointType

    from cronium_prefect.flows.deploy import deployment_spec, ensure_pool
    from cronium_prefect.flows.event_flow import cronium_event
    from cronium_prefect.loader import load_paths

    async def pool() -> None:  # `prefect work-pool create`, done once
        async with get_client() as client:
            await ensure_pool(client)

    asyncio.run(pool())
    events = load_paths([folder], references=False)
    for event in events:
        spec = deployment_spec(event)
        limit = None
        if "concurrency_limit" in spec:
            limit = ConcurrencyLimitConfig(
                limit=spec["concurrency_limit"],
                collision_strategy=spec["concurrency_options"].collision_strategy,
            )
        cronium_event.to_deployment(
            name=spec["name"],
            description=spec["description"],
            parameters=spec["parameters"],
            tags=spec["tags"],
            paused=spec["paused"],
            schedules=spec["schedules"],
            concurrency_limit=limit,
            work_pool_name=spec["work_pool_name"],
            work_queue_name=spec["work_queue_name"],
            version=spec["version"],
            enforce_parameter_schema=False,
            entrypoint_type=EntrypointType.MODULE_PATH,
        ).apply()
    print(json.dumps({"created": len(events)}))


def run_stage(kind: str, db: str, events: int, work: Path, profile: bool) -> dict[str, Any]:
    """One stage in a child process: its own fresh server, its own events folder."""
    print(f"{kind} on {db}, {events:,} events", file=sys.stderr, flush=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--stage", kind, "--db", db]
    command += ["--events", str(events), "--work", str(work)]
    if profile:
        command.append("--py-spy")
    # Every stage needs an empty server of its own: a PREFECT_API_URL set here is not used.
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env, timeout=14400)
    if done.returncode != 0:
        raise SystemExit(f"stage {kind}/{db}/{events} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stage_main(args: argparse.Namespace) -> None:
    folder = write_events(args.work / f"events-{args.events}-{args.stage}-{args.db}", args.events)
    with prefect_api(postgres=args.db == "postgresql"):
        stage = stage_ours if args.stage == "ours" else stage_baseline
        steps = stage(folder, args.py_spy)
    print(json.dumps({"db": args.db, "events": args.events, **steps}))


def parse_speed(count: int) -> dict[str, Any]:
    """CPU seconds to parse `count` definitions with libyaml's parser and, as the baseline
    in the same run, with the pure-Python one (documents.yaml_documents' fallback)."""
    from cronium_prefect import documents, parse_text

    texts = [f"name: n{i}\ntype: bash\nscript: echo hi\ntags: [a, b]\n" for i in range(count)]
    parse_text(texts[0])  # first use builds validators

    def cpu() -> float:
        began = time.process_time()
        for text in texts:
            parse_text(text)
        return time.process_time() - began

    fast = cpu() if documents._Yaml12CLoader is not None else None
    kept, documents._Yaml12CLoader = documents._Yaml12CLoader, None
    try:
        slow = cpu()
    finally:
        documents._Yaml12CLoader = kept
    return {"libyaml_cpu_s": fast, "pure_python_cpu_s": slow}


def _median_step(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(steps, key=lambda step: step["wall_s"])[len(steps) // 2]


def _first_output_row(name: str, steps: list[dict[str, Any]], count: int, db: str):
    """The time to a listing's first line on stdout (the goal: 1 s at 10,000 events)."""
    firsts = sorted(step["first_output_s"] for step in steps)
    median = {**_median_step(steps), "wall_s": firsts[len(firsts) // 2]}
    return _row(name, median, count, db, 1 if count == 10_000 else None, runs_s=firsts)


def _row(name: str, step: dict[str, Any], count: int, db: str, goal_s: float | None, **more):
    """One metric row for one step (its wall time; details: CPU seconds, load, DB)."""
    wall = step["wall_s"]
    return metric(
        name,
        wall,
        "s",
        f"<= {goal_s:g} s" if goal_s else "-",
        wall <= goal_s if goal_s else None,
        db=db,
        per_event_ms=round(1000 * wall / count, 2),
        step=step,
        **more,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 events, SQLite")
    parser.add_argument("--sqlite-10k", action="store_true", help="10,000 on SQLite regardless")
    parser.add_argument("--py-spy", action="store_true", help="profile each step with py-spy")
    parser.add_argument("--stage", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--db", default="sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-loop", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_loop:
        return baseline_loop(args.baseline_loop)
    if args.stage:
        return stage_main(args)

    small, large = (100, 1000) if args.quick else (1000, 10_000)
    work = Path(tempfile.mkdtemp(prefix="cronium-apply-scale-"))
    began = time.monotonic()
    try:
        stages: dict[str, dict[str, Any]] = {}
        stages["small_sqlite"] = run_stage("ours", "sqlite", small, work, args.py_spy)
        stages["baseline_sqlite"] = run_stage("baseline", "sqlite", small, work, args.py_spy)
        per_event = stages["small_sqlite"]["apply_new"]["wall_s"] / small
        large_db = "sqlite"
        if not (args.quick or args.sqlite_10k) and per_event * large > SQLITE_BUDGET_S:
            large_db = "postgresql"
            print(
                f"{large:,} new on SQLite would take ~{per_event * large:.0f} s: PostgreSQL",
                file=sys.stderr,
            )
            stages["small_postgresql"] = run_stage("ours", "postgresql", small, work, False)
        stages["large"] = run_stage("ours", large_db, large, work, args.py_spy)
        stages["parse"] = parse_speed(small)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    metrics = table(stages, small, large, large_db)
    write_result(
        "apply_scale",
        {
            "events": {"small": small, "large": large, "large_db": large_db},
            "stages": stages,
            "elapsed_s": round(time.monotonic() - began),
            "event_mix": "one YAML file each; types, owners, tags, statuses mixed; "
            "every 50th active with an hourly cron; overlap skip/queue/allow",
        },
        metrics,
    )


def table(stages: dict[str, Any], small: int, large: int, large_db: str) -> list[dict[str, Any]]:
    """The metric rows (common.metric) and the printed table; goals only at their sizes."""
    ours, base, big = stages["small_sqlite"], stages["baseline_sqlite"], stages["large"]
    label = "SQLite" if large_db == "sqlite" else "PostgreSQL, fsync off"
    new, baseline = ours["apply_new"], base["apply_new"]["wall_s"]
    rows = [
        _row(
            f"apply {small:,} new events (SQLite)",
            new,
            small,
            "sqlite",
            60 if small == 1000 else None,
            baseline=baseline,
            baseline_name="per-deployment `to_deployment().apply()` loop",
            ratio=baseline / new["wall_s"],  # speed-up
            baseline_step=base["apply_new"],
        ),
        _row(
            f"re-apply {large:,} unchanged events ({label})",
            big["reapply"],
            large,
            large_db,
            15 if large == 10_000 else None,
        ),
        _row(
            f"`cronium events --all` with {large:,} events ({label}), median of {LIST_REPEAT}",
            _median_step(big["events"]),
            large,
            large_db,
            3 if large == 10_000 else None,
            runs_s=[step["wall_s"] for step in big["events"]],
        ),
        _first_output_row(
            f"`cronium events` first line with {large:,} events ({label}), median of {LIST_REPEAT}",
            big["events_page"],
            large,
            large_db,
        ),
        _first_output_row(
            f"`cronium events --all` first line with {large:,} events ({label}), median",
            big["events"],
            large,
            large_db,
        ),
    ]
    parse = stages["parse"]
    if parse["libyaml_cpu_s"] is not None:
        rows.append(
            metric(
                f"parse {small:,} definitions (libyaml), CPU",
                parse["libyaml_cpu_s"],
                "s",
                "-",
                None,
                baseline=parse["pure_python_cpu_s"],
                baseline_name="the pure-Python YAML parser, same texts",
                ratio=parse["pure_python_cpu_s"] / parse["libyaml_cpu_s"],  # speed-up
            )
        )
    growth = [("small_sqlite", small, "SQLite", "sqlite")]
    if "small_postgresql" in stages:
        growth.append(("small_postgresql", small, "PostgreSQL, fsync off", "postgresql"))
    growth.append(("large", large, label, large_db))
    for key, count, where, db in growth:
        stage = stages[key]
        rows += [
            _row(f"growth: apply {count:,} new ({where})", stage["apply_new"], count, db, None),
            _row(f"growth: re-apply {count:,} same ({where})", stage["reapply"], count, db, None),
            _row(
                f"growth: `cronium events`, {count:,} events ({where}), median",
                _median_step(stage["events"]),
                count,
                db,
                None,
                runs_s=[step["wall_s"] for step in stage["events"]],
            ),
        ]
    print(f"\n{'metric':74}{'ours':>9}{'baseline':>10}{'ratio':>8}{'cpu c+s':>12}{'load':>6}  goal")
    for row in rows:
        step = row.get("details", {}).get("step")  # the parse row measures no process
        base_text = f"{row['baseline']:>9.1f}s" if row["baseline"] is not None else f"{'-':>10}"
        ratio = f"{row['ratio']:>7.2f}x" if row["ratio"] is not None else f"{'-':>8}"
        cpu = f"{step['client_cpu_s']:.1f}+{step['server_cpu_s']:.1f}" if step else "-"
        load = f"{step['load_before']:>6.1f}" if step else f"{'-':>6}"
        met = {True: "met", False: "NOT MET", None: ""}[row["met"]]
        print(
            f"{row['metric']:74}{row['ours']:>8.2f}s{base_text}{ratio}{cpu:>12}"
            f"{load}  {row['goal']} {met}"
        )
    print("cpu c+s: CPU seconds of the cronium process + of the Prefect server during the step")
    return rows


if __name__ == "__main__":
    main()

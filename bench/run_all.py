"""Every benchmark, one after another, each against its baseline measured in the same run;
one table and one JSON file (bench/results/all.json; the table in Markdown, all.md) at the end.

    bench/run_all [--quick] [--only NAME ...] [--skip NAME ...]

Each benchmark is its own script (`python bench/NAME.py` runs it alone) and its own
process: it starts what it needs (a Prefect server on SQLite or PostgreSQL, sshd on
127.0.0.1, a worker) and writes bench/results/NAME.json, whose metric rows are gathered
here. A benchmark that fails is reported as such, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, machine, versions  # noqa: E402

HERE = Path(__file__).parent

# name: (arguments for the full run, arguments for --quick)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "docker_overhead": (["--runs", "30"], ["--runs", "5", "--cli-runs", "2"]),
    "dispatch_latency": (["--runs", "30"], ["--runs", "5"]),
    "ssh_reuse": (["--runs", "50"], ["--runs", "10"]),
    "run_calls": ([], ["--runs", "1"]),
    "burst": ([], ["--quick"]),
    "log_latency": ([], ["--quick"]),
    "wait_latency": ([], ["--quick"]),
    "worker_rss": ([], ["--quick"]),
    "drain": ([], ["--quick"]),
    "apply_scale": ([], ["--quick"]),
    "dashboard_events": ([], ["--events", "500", "--repeat", "2"]),
    "webhooks": ([], ["--seconds", "15", "--runs", "3"]),
    "workflows": ([], ["--quick"]),
    "peers": ([], ["--quick"]),
}


def _run(name: str, arguments: list[str]) -> dict:
    """Run one benchmark as a process; its result file, or why there is none."""
    result_file = RESULTS / f"{name}.json"
    result_file.unlink(missing_ok=True)  # never report an older run's figures
    began = time.monotonic()
    done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *arguments])
    seconds = round(time.monotonic() - began, 1)
    if done.returncode != 0 or not result_file.exists():
        return {"benchmark": name, "seconds": seconds, "error": f"exit code {done.returncode}"}
    return {**json.loads(result_file.read_text()), "seconds": seconds}


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _baseline(row: dict) -> str:
    if row["baseline"] is None:
        return "-"
    named = f" ({row['baseline_name']})" if row["baseline_name"] else ""
    return f"{_cell(row['baseline'])} {row['unit']}{named}"


def table(results: list[dict]) -> str:
    header = ("benchmark", "metric", "ours", "baseline", "ratio", "goal", "met")
    rows = []
    for result in results:
        if "error" in result:
            rows.append((result["benchmark"], "FAILED: " + result["error"], "", "", "", "", ""))
            continue
        for row in result.get("metrics", []):
            met = {True: "yes", False: "NO", None: "-"}[row["met"]]
            rows.append(
                (
                    result["benchmark"],
                    row["metric"],
                    f"{_cell(row['ours'])} {row['unit']}",
                    _baseline(row),
                    _cell(row["ratio"]),
                    row["goal"],
                    met,
                )
            )
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in (header, *rows)
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(results: list[dict]) -> str:
    """The same rows as a Markdown table, for the README."""
    lines = ["| Metric | Ours | Baseline | Ratio | Goal |", "|---|---|---|---|---|"]
    for result in results:
        if "error" in result:
            lines.append(f"| {result['benchmark']}: FAILED ({result['error']}) | | | | |")
        for row in result.get("metrics", []):
            verdict = {True: " (met)", False: " (not met)", None: ""}[row["met"]]
            lines.append(
                f"| {row['metric']} | {_cell(row['ours'])} {row['unit']} | {_baseline(row)} "
                f"| {_cell(row['ratio'])} | {row['goal']}{verdict} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions: a smoke run")
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), default=None)
    parser.add_argument("--skip", nargs="*", choices=list(BENCHMARKS), default=[])
    args = parser.parse_args()
    chosen = [n for n in (args.only or BENCHMARKS) if n not in args.skip]
    started = datetime.now(timezone.utc)
    results = []
    for name in chosen:
        full, quick = BENCHMARKS[name]
        print(f"\n=== {name}", flush=True)
        results.append(_run(name, quick if args.quick else full))
    summary = {
        "date": started.isoformat(),
        "quick": args.quick,
        "machine": machine(),
        "versions": versions(),
        "benchmarks": [
            {k: r[k] for k in ("benchmark", "seconds", "error") if k in r} for r in results
        ],
        "metrics": [
            {"benchmark": r["benchmark"], **row} for r in results for row in r.get("metrics", [])
        ],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "all.json").write_text(json.dumps(summary, indent=2))
    (RESULTS / "all.md").write_text(markdown(results) + "\n")
    print()
    print(table(results))
    described = summary["machine"]
    print(
        f"\n{described['cores']} cores, {described['memory_gib']} GiB; "
        + ", ".join(f"{k} {v}" for k, v in summary["versions"].items())
    )
    print(f"written to {RESULTS / 'all.json'} (and the table in Markdown: all.md)")
    if any("error" in r for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()

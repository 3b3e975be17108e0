"""Shared plumbing for benchmarks: a Prefect API to talk to, timing, and result files."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
server_log: Path | None = None  # the output of the server prefect_api started last
database_url: str | None = None  # its PostgreSQL database, when it started one


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_with_image(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse a bench's arguments plus --image, the image its bash runs use."""
    parser.add_argument(
        "--image", default=os.environ.get("CRONIUM_TEST_IMAGE", "cronium-test:bookworm")
    )
    args = parser.parse_args()
    os.environ["CRONIUM_IMAGE_BASH"] = args.image
    return args


@contextlib.contextmanager
def prefect_api(
    postgres: bool = False,
    server_env: dict[str, str] | None = None,
    api_processes: int | None = None,
) -> Iterator[str]:
    """PREFECT_API_URL when set; else a temporary server started (and stopped) here, on
    SQLite or on a throwaway PostgreSQL cluster (tests/postgres.py), with `server_env`.
    `api_processes`: Prefect's scaled server instead, as `cronium up --redis` starts it
    (PostgreSQL, a redis-server of its own, N API processes, the services apart).

    Must be entered before anything imports Prefect, so the settings pick the URL up.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    home = Path(tempfile.mkdtemp(prefix="cronium-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    os.environ.update(
        {
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_API_URL": url,
            "CRONIUM_HOME": str(home / "cronium"),
        }
    )
    from cronium_prefect.cli.api import start_prefect_server, wait_until_healthy
    from cronium_prefect.cli.scale import prepare_database, scaled_env, start_prefect_services

    cluster, env, helpers = None, dict(server_env or {}), []
    if postgres or api_processes:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.postgres import Postgres

        cluster = Postgres.start()
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = cluster.create_database("prefect")
    global server_log, database_url
    database_url = env.get("PREFECT_API_DATABASE_CONNECTION_URL")
    server_log = home / "prefect-server.log"
    try:
        with open(server_log, "w") as log:
            if api_processes:
                from tests.redis import start_redis

                redis, redis_url = start_redis(home)
                helpers.append(redis)
                prepare_database(port, env, log)
                env.update(scaled_env(redis_url))
            server = start_prefect_server(
                port, env, log=log, api_processes=api_processes or 1, services=not api_processes
            )
            helpers.append(server)
            wait_until_healthy(url, server)
            if api_processes:
                helpers.append(start_prefect_services(env, log))
        yield url
    finally:
        stop(*reversed(helpers))
        if cluster is not None:
            cluster.stop()


def stop(*processes: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM each, then wait; one that outlives `timeout` is killed, and said so. Never
    raises: a teardown must not throw away the figures measured before it."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(
                f"warning: {' '.join(map(str, process.args))[:120]} outlived SIGTERM by "
                f"{timeout:g} s: killed",
                file=sys.stderr,
            )
            process.kill()
            process.wait()


def quantiles(values: list[float], at: tuple[float, ...] = (0.5, 0.99)) -> dict[str, float]:
    """`p50_s`, `p99_s` (or the quantiles asked for), `max_s` and `n` of `values`."""
    ordered = sorted(values)

    def value(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    found: dict[str, float] = {f"p{round(q * 100)}_s": value(q) for q in at}
    return {**found, "max_s": round(ordered[-1], 3), "n": len(ordered)}


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_s": round(statistics.median(ordered), 4),
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4),
        "mean_s": round(statistics.fmean(ordered), 4),
        "n": len(ordered),
    }


def machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    """The versions the figures were measured with."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for package in ("prefect", "prefect-docker", "docker", "paramiko", "streamlit"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    for name, command in {
        "docker_engine": ["docker", "version", "--format", "{{.Server.Version}}"],
        "openssh": ["ssh", "-V"],
    }.items():
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
            found[name] = (done.stdout or done.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return found


def metric(
    name: str,
    ours: float,
    unit: str,
    goal: str,
    met: bool | None,
    baseline: float | None = None,
    baseline_name: str | None = None,
    ratio: float | None = None,
    **details: Any,
) -> dict[str, Any]:
    """One row of the suite's table: `ratio` is how the goal reads it (e.g. ours/baseline
    for an overhead, baseline/ours for a speed-up); `met` None when there is no goal."""
    return {
        "metric": name,
        "ours": round(ours, 4),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 4),
        "baseline_name": baseline_name,
        "ratio": None if ratio is None else round(ratio, 3),
        "goal": goal,
        "met": met,
        **({"details": details} if details else {}),
    }


def print_goals(rows: list[dict[str, Any]]) -> None:
    """One line per row: the figure, its goal and whether it is met."""
    for row in rows:
        met = {True: "met", False: "NOT MET", None: "no goal"}[row["met"]]
        ratio = f"; ratio {row['ratio']}" if row.get("ratio") is not None else ""
        print(f"{row['metric']}: {row['ours']} {row['unit']} (goal {row['goal']}: {met}{ratio})")


def write_result(
    name: str, data: dict[str, Any], metrics: list[dict[str, Any]] | None = None
) -> Path:
    """bench/results/NAME.json: the raw figures, and the rows bench/run_all tabulates."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {
        "benchmark": name,
        "date": datetime.now(timezone.utc).isoformat(),
        "machine": machine(),
        "versions": versions(),
        "metrics": metrics or [],
        **data,
    }
    path.write_text(json.dumps(data, indent=2))
    return path

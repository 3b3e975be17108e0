"""Plumbing shared by the worker benchmarks (burst, drain, worker_rss, log_latency): events
applied with the CLI, `cronium worker` processes, flow runs created and awaited through
Prefect's client, and what /proc says about processes (RSS, CPU time)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

CLI = [sys.executable, "-m", "cronium_prefect.cli"]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for `cronium` subprocesses: INFO lines shipped (a caller's
    PREFECT_LOGGING_LEVEL=WARNING would drop script lines), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_LEVEL"}
    env.update(extra)
    return env


def apply(folder: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [*CLI, "apply", str(folder)], env=env or cli_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"cronium apply failed:\n{done.stdout}\n{done.stderr}")


def start_worker(
    *args: str, env: dict[str, str] | None = None, log: IO[str] | None = None
) -> subprocess.Popen:
    """`cronium worker ARGS` in the background (its output to `log`, else discarded)."""
    return subprocess.Popen(
        [*CLI, "worker", *args],
        env=env or cli_env(),
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
    )


async def wait_for_workers(pool: str, count: int, timeout: float = 90) -> None:
    """Until `count` workers of `pool` have sent a heartbeat (they then poll)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            try:
                workers = await client.read_workers_for_work_pool(pool)
                if sum(1 for w in workers if w.status.value == "ONLINE") >= count:
                    return
            except Exception:  # the pool does not exist until a worker creates it
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} worker(s) of {pool!r} did not come online")
            await asyncio.sleep(0.5)


async def create_runs(
    deployment_name: str, count: int, gate: int | None, parameters: dict | None = None
) -> tuple[float, list[str]]:
    """Create `count` runs of a deployment, at most `gate` requests at once (None: all at
    once). Returns the wall-clock time of the first request and the run ids."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(deployment_name)
        limit = asyncio.Semaphore(gate or count)

        async def one() -> str:
            async with limit:
                run = await client.create_flow_run_from_deployment(
                    deployment.id, parameters=parameters or {}
                )
            return str(run.id)

        began = time.time()
        ids = await asyncio.gather(*(one() for _ in range(count)))
        return began, list(ids)


async def read_runs(run_ids: Iterable[str]) -> list[Any]:
    """The runs (FlowRun objects), 200 per request."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    ids = [UUID(i) for i in run_ids]
    runs: list[Any] = []
    async with get_client() as client:
        for start in range(0, len(ids), 200):
            wanted = FlowRunFilter(id=FlowRunFilterId(any_=ids[start : start + 200]))
            runs += await client.read_flow_runs(flow_run_filter=wanted, limit=200)
    return runs


async def wait_final(run_ids: Iterable[str], timeout: float, every: float = 1.0) -> list[Any]:
    """Until every run is in a final state; returns the runs. Polls with a count (cheap
    for the server, whose CPU the benchmarks measure); the runs' own end times say when
    they ended, so the poll interval does not change the figures."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    ids = [UUID(i) for i in run_ids]
    final = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in FINAL]))
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            done = 0
            for start in range(0, len(ids), 200):
                wanted = FlowRunFilterId(any_=ids[start : start + 200])
                done += await client.count_flow_runs(
                    flow_run_filter=FlowRunFilter(id=wanted, state=final)
                )
            if done == len(ids):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {len(ids)} runs finished in {timeout} s")
            await asyncio.sleep(every)
    return await read_runs([str(i) for i in ids])


async def state_times(run_ids: Iterable[str]) -> dict[str, dict[str, float]]:
    """For each run, the wall-clock time it first entered each state type."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        gate = asyncio.Semaphore(8)

        async def one(run_id: str) -> tuple[str, dict[str, float]]:
            async with gate:
                states = await client.read_flow_run_states(run_id)
            times: dict[str, float] = {}
            for state in states:
                times.setdefault(state.type.value, state.timestamp.timestamp())
            return run_id, times

        return dict(await asyncio.gather(*(one(i) for i in run_ids)))


# --- /proc ---------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def descendants(pid: int) -> list[int]:
    """The process and all its descendants, alive now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    found, queue = [pid], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def rss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def pss_bytes(pids: Iterable[int]) -> int:
    """Proportional set size: shared pages (e.g. libraries of forked children) counted once."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of these processes (children that exited and were waited
    for included, through cutime/cstime)."""
    total = 0
    for pid in pids:
        try:
            fields = _stat(pid)
            total += sum(int(x) for x in fields[11:15])
        except (OSError, IndexError, ValueError):
            continue
    return total / CLOCK_TICKS


def pids_named(*names: str) -> list[int]:
    """Processes whose command name (comm) starts with one of `names`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(names):
                found.append(int(entry.name))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle since boot, all cores (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


class CpuMeter:
    """CPU seconds used between `start` and `stop` by named groups of processes and by the
    whole machine (every core; other users' work included). A group is a list of pids or
    a function that lists them, asked again at `stop`: a process tree's children that
    started meanwhile count whole, those that ended count through their parent."""

    def __init__(self, groups: dict[str, list[int] | Callable[[], list[int]]]):
        self.groups = groups
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {
            name: cpu_seconds(pids() if callable(pids) else pids)
            for name, pids in self.groups.items()
        }
        now["machine"] = machine_busy_seconds()
        return now

    def start(self) -> CpuMeter:
        self.before = self._now()
        self._began = time.monotonic()
        return self

    def stop(self) -> dict[str, float]:
        now = self._now()
        self.used = {name: round(now[name] - self.before[name], 2) for name in now}
        self.used["wall"] = round(time.monotonic() - self._began, 2)
        return self.used


def docker_daemon_pids() -> list[int]:
    return pids_named("dockerd", "containerd")


def _own_commands() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, arguments) of each process this one started, and theirs."""
    for pid in descendants(os.getpid())[1:]:
        try:
            yield pid, Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue


def server_pid() -> int:
    """The `prefect server start` process this process started (prefect_api); its
    descendants are the API processes."""
    for pid, arguments in _own_commands():
        if {b"prefect", b"server", b"start"} <= set(arguments) and b"services" not in arguments:
            return pid
    raise RuntimeError("no Prefect server among this process's children")


def scaled_helpers() -> list[int]:
    """The scaled server's services process and redis-server, with their children ([] on
    the single-process server)."""
    found = []
    for pid, arguments in _own_commands():
        if b"services" in arguments or any(a.endswith(b"redis-server") for a in arguments):
            found += descendants(pid)
    return found


def database_pids(server_pid: int) -> list[int]:
    """The PostgreSQL cluster a Prefect server process uses (its postmaster, found by the
    port in the server's PREFECT_API_DATABASE_CONNECTION_URL, and its backends); [] for
    SQLite."""
    import re

    try:
        environ = Path(f"/proc/{server_pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []
    urls = [e for e in environ if e.startswith(b"PREFECT_API_DATABASE_CONNECTION_URL=")]
    port = re.search(rb":(\d+)/", urls[0]) if urls else None
    if port is None:
        return []
    for pid in pids_named("postgres"):
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-p" in arguments and arguments[arguments.index(b"-p") + 1] == port.group(1):
            return descendants(pid)
    return []


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])

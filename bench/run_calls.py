"""Every API call and event of one run: a trivial Docker event (`echo hi`) run by `cronium
worker`, counted where they arrive — the Prefect server's access log and its event store.

    python bench/run_calls.py [--image IMAGE] [--runs 3]

A server is started here on SQLite with its access log on (PREFECT_SERVER_LOGGING_LEVEL=
INFO), one worker serves the event's pool. After a warm-up run, each measured run is
created alone and the requests the server received from its creation until 2 s after its
end are counted by method and path (ids replaced by ID), in two groups: what the worker
does whatever runs (polls for runs, its heartbeat: per worker and second, not per run),
and the run's own. The run's events are read back from the server. The figures are the
median over --runs runs; the table is what docs/benchmarks.md lists as the calls of a run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402
from common import metric, parse_with_image, prefect_api, stop, write_result  # noqa: E402
from harness import apply, create_runs, read_runs, start_worker, wait_for_workers  # noqa: E402

POOL = "bench-calls"
DEPLOYMENT = "cronium-event/bench-calls"
ACCESS = re.compile(r'^(\d\d:\d\d:\d\d\.\d+) .*uvicorn\.access - .* "(\w+) ([^ ?]+)[^"]*" (\d+)')
ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RUN_WAIT_S = 15  # a trivial run takes ~3 s; what it sends after its end, 2 s more
# The worker's own, whatever runs: not a cost of the run.
PER_WORKER = re.compile(r"/work_pools/[^/]+(/get_scheduled_flow_runs|/workers/heartbeat)?$")


def _requests(log_text: str, since: str, until: str) -> collections.Counter:
    """(method path status) -> count, for the access-log lines between two HH:MM:SS.fff."""
    found: collections.Counter = collections.Counter()
    for line in log_text.splitlines():
        match = ACCESS.match(line)
        if match and since <= match.group(1) <= until:
            path = ID.sub("ID", match.group(3)).removeprefix("/api")
            found[f"{match.group(2)} {path} {match.group(4)}"] += 1
    return found


def _events(api: str, run_id: str) -> collections.Counter:
    wanted = {
        "filter": {
            "any_resource": {"id": [f"prefect.flow-run.{run_id}"]},
            "occurred": {"since": "2000-01-01T00:00:00Z"},
        },
        "limit": 50,  # the most the server answers in one page
    }
    answer = httpx.post(f"{api}/events/filter", json=wanted, timeout=30)
    answer.raise_for_status()
    return collections.Counter(e["event"] for e in answer.json()["events"])


def _clock(timestamp: float) -> str:
    """As the server's log shows time (local, to the millisecond; a run across midnight
    would be miscounted)."""
    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S.%f")[:-3]


def one_run(api: str) -> tuple[collections.Counter, collections.Counter, collections.Counter]:
    """The calls of creating a run, the calls after, and the run's events. Waited for by
    the clock, then read once: a poll of ours would be counted with the run's calls."""
    began = time.time()
    _, (run_id,) = asyncio.run(create_runs(DEPLOYMENT, 1, None))
    created = time.time()
    time.sleep(RUN_WAIT_S)
    (run,) = asyncio.run(read_runs([run_id]))
    if run.state.type.value != "COMPLETED" or run.end_time.timestamp() + 2 > created + RUN_WAIT_S:
        raise RuntimeError(f"the run did not complete within {RUN_WAIT_S - 2} s: {run.state}")
    log = common.server_log.read_text()
    creating = _requests(log, _clock(began), _clock(created))
    calls = _requests(log, _clock(created), _clock(run.end_time.timestamp() + 2))
    return creating, calls, _events(api, run_id)


def _median(counts: list[collections.Counter]) -> dict[str, float]:
    keys = {k for found in counts for k in found}
    medians = {k: statistics.median(found[k] for found in counts) for k in keys}
    return {k: v for k, v in medians.items() if v}


def _print(title: str, counts: dict[str, float], total: bool = True) -> None:
    print(title)
    for key, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count:4g}  {key}")
    if total:
        print(f"  {sum(counts.values()):4g}  in all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parse_with_image(parser)
    if os.environ.get("PREFECT_API_URL"):
        sys.exit("run_calls.py reads the access log of a server it starts: unset PREFECT_API_URL")
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-calls-"))
    (work / "events").mkdir()
    (work / "events" / "calls.yaml").write_text(
        f"name: bench-calls\ntype: bash\npool: {POOL}\nscript: echo hi\n"
    )
    with prefect_api(server_env={"PREFECT_SERVER_LOGGING_LEVEL": "INFO"}) as api:
        apply(work / "events")
        log = open(work / "worker.log", "w")
        worker = start_worker("--pool", POOL, log=log)
        try:
            asyncio.run(wait_for_workers(POOL, 1))
            one_run(api)  # warm-up: first imports, connections, the image's first start
            measured = [one_run(api) for _ in range(args.runs)]
        finally:
            stop(worker)
            log.close()
    creating = _median([c for c, _, _ in measured])
    per_run = _median([c for _, c, _ in measured])
    events = _median([e for _, _, e in measured])
    ours = {k: v for k, v in per_run.items() if not PER_WORKER.search(k.split()[1])}
    polls = {k: v for k, v in per_run.items() if k not in ours}
    _print(f"creating the run (median of {args.runs})", creating)
    _print("then, until 2 s after its end", ours)
    _print("the worker's own meanwhile (whatever runs)", polls, total=False)
    _print("events of the run", events)
    write_result(
        "run_calls",
        {
            "runs": args.runs,
            "creating": creating,
            "calls": ours,
            "worker_calls": polls,
            "events": events,
        },
        [
            metric("API calls per run", sum(ours.values()), "calls", "fewer", None),
            metric("events per run", sum(events.values()), "events", "fewer", None),
        ],
    )


if __name__ == "__main__":
    main()

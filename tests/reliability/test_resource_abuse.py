"""Fork bombs and a memory hog, all at once beside a normal run in the same process (as
in a worker): each ends as a failure at its container's limits, its container is gone,
and the normal run next to them succeeds on time."""

from __future__ import annotations

import asyncio
import json
import time

from cronium_prefect import parse_text
from cronium_prefect.executors.docker import MANAGED_LABEL, RUN_LABEL
from cronium_prefect.flows import cronium_event
from tests.integration.helpers import record_json

from .report import report

PYTHON_BOMB = "import os\nwhile True:\n    os.fork()\n"
BASH_BOMB = "while :; do sleep 600 & done\n"  # forks until the pids limit, forever
MEMORY_HOG = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"

CASES = {
    # name: (definition, statuses it may end in, fragment of its error)
    "python fork bomb": (
        f"type: python\nresources: {{pids: 64}}\nscript: {json.dumps(PYTHON_BOMB)}\n",
        {"FAILURE"},
        "exit code",
    ),
    "bash fork bomb": (
        f"type: bash\ntimeout: 10s\nresources: {{pids: 64}}\nscript: {json.dumps(BASH_BOMB)}\n",
        {"TIMEOUT"},
        "timed out after 10s",
    ),
    "memory hog": (
        f"type: python\nresources: {{memory: 64m}}\nscript: {json.dumps(MEMORY_HOG)}\n",
        {"FAILURE"},
        "out of memory",
    ),
}


async def _run(name: str, body: str) -> tuple[dict, float]:
    (event,) = parse_text(f"name: {name}\n{body}")
    began = time.monotonic()
    state = await cronium_event(event=event, return_state=True)
    result = await state.result(raise_on_failure=False)
    record = record_json(result)
    return record, time.monotonic() - began


def test_fork_bombs_and_a_memory_hog_fail_at_their_limits_and_harm_no_one(stack, docker_client):
    async def everything():
        neighbour = _run(
            "abuse-calm-neighbour",
            "type: bash\nscript: |\n  sleep 4\n  cronium_output 7\n",
        )
        abusers = [_run(f"abuse-{i}", body) for i, (body, _, _) in enumerate(CASES.values())]
        return await asyncio.gather(neighbour, *abusers)

    (neighbour, neighbour_s), *outcomes = asyncio.run(everything())
    run_ids = {r["run_id"] for r, _ in [(neighbour, 0), *outcomes]}
    left = [
        c
        for c in docker_client.containers.list(
            all=True, sparse=True, filters={"label": MANAGED_LABEL}
        )
        if c.attrs["Labels"].get(RUN_LABEL) in run_ids
    ]
    report(
        "resource_abuse",
        {
            "neighbour": {"status": neighbour["status"], "seconds": round(neighbour_s, 1)},
            "cases": [
                {"case": case, "status": r["status"], "error": r["error"], "seconds": round(s, 1)}
                for case, (r, s) in zip(CASES, outcomes, strict=True)
            ],
            "containers_left": len(left),
        },
    )
    for (case, (_, statuses, fragment)), (record, _) in zip(CASES.items(), outcomes, strict=True):
        assert record["status"] in statuses, (case, record["error"])
        assert fragment in record["error"], (case, record["error"])
    assert neighbour["status"] == "SUCCESS" and neighbour["output"] == 7
    assert neighbour_s < 30, f"the neighbour took {neighbour_s:.0f} s beside the abusers"
    assert left == []
